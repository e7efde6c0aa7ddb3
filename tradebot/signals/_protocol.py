"""The signal message protocol (docs/ARCHITECTURE.md §9): parse and validate, never raise.

Wire format (JSON text; a binary frame must be UTF-8 JSON)::

    {"type": "wave", "timestamp": "2025-05-21T11:00:00Z",
     "signals": [{"id": "…", "symbol": "BTCUSDT", "exchange": "bybit", "action": "BUY",
                  "score_week": "72.5", "score_month": "65.1"}]}

    {"type": "signal", "timestamp": "2025-05-21T11:00:00Z", "id": "…", "symbol": …}

Legacy names are accepted: ``pair_symbol`` (symbol), ``exchange_name`` (exchange),
``recommended_action`` (action), ``signal_id`` (id), ``wave_ts`` (timestamp). Control
messages (``heartbeat``, ``ping``, ``pong``, ``subscribed``, ``welcome``, ``ack``, ``info``)
are recognised and ignored.

Validation rules (each failure is a :class:`Rejection` with a machine-readable ``reason``;
the reason's prefix before ``:`` is stable, the rest is detail):

* message size <= ``ProtocolLimits.max_message_bytes`` (``message_too_large``), UTF-8
  (``invalid_utf8``), JSON (``invalid_json``), an object (``not_an_object``), a known
  ``type`` (``unknown_type``, ``missing_field:type``);
* wave timestamp: ISO-8601 with an offset (``Z``/``+00:00``) or epoch seconds/ms, on a
  15-minute boundary (``timestamp_not_on_wave_boundary``), between 2000 and 2100;
* wave ``signals`` is a list of <= ``max_signals_per_wave`` (``too_many_signals``);
* signal: ``id`` ``[A-Za-z0-9_.:-]{1,64}``; ``symbol`` ``[A-Z0-9]{1,28}USDT`` (upper-cased;
  a USDT-margined perpetual) and, when ``known_symbols`` is given, listed
  (``unknown_symbol``); ``exchange`` ``[a-z][a-z0-9_-]{0,31}`` (lower-cased); ``action``
  BUY/SELL/LONG/SHORT; scores optional, JSON numbers (parsed exactly as Decimal, never via
  float) or decimal strings, finite (``score_not_finite`` for NaN/Infinity), within
  ``[min_score, max_score]`` (``negative_score``, ``score_out_of_range`` — e.g. ``1e400``);
  a duplicate id inside one wave is rejected (``duplicate_signal_id``).

The parser is pure and allocation-light: the benchmark target is >= 50,000 signals/s
through validation, filtering and ranking (``benchmarks/bench_signals.py``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import attrs

from tradebot.domain import PositionSide

__all__ = [
    "WAVE_INTERVAL",
    "Control",
    "Message",
    "ProtocolLimits",
    "Rejection",
    "Signal",
    "Wave",
    "excerpt_of",
    "parse_message",
    "parse_wave_ts",
    "wave_floor",
    "wave_id_for",
]

WAVE_INTERVAL = timedelta(minutes=15)
EXCERPT_CHARS = 200

_ID_RE = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")
_SYMBOL_RE = re.compile(r"[A-Z0-9]{1,28}USDT")
_VENUE_RE = re.compile(r"[a-z][a-z0-9_\-]{0,31}")
_CONTROL_TYPES = frozenset({"heartbeat", "ping", "pong", "subscribed", "welcome", "ack", "info"})
_ACTIONS = {
    "BUY": PositionSide.LONG,
    "LONG": PositionSide.LONG,
    "SELL": PositionSide.SHORT,
    "SHORT": PositionSide.SHORT,
}
_MIN_TS = datetime(2000, 1, 1, tzinfo=UTC)
_MAX_TS = datetime(2100, 1, 1, tzinfo=UTC)


@attrs.frozen
class ProtocolLimits:
    """Validation limits of the signal protocol (config ``[signals]``).

    Attributes:
        max_message_bytes: largest accepted message, bytes (UTF-8) or characters; the
            WebSocket client also closes the connection (code 1009) on a larger frame.
        max_signals_per_wave: largest accepted wave (the service we replace sent ~85).
        min_score: smallest valid score (inclusive); negative scores are hostile.
        max_score: largest valid score (inclusive).
        known_symbols: when given, a symbol outside this set is rejected ``unknown_symbol``
            (pass the venue's instrument list).
    """

    max_message_bytes: int = 1_048_576
    max_signals_per_wave: int = 1000
    min_score: Decimal = Decimal(0)
    max_score: Decimal = Decimal(100)
    known_symbols: frozenset[str] | None = None


DEFAULT_LIMITS = ProtocolLimits()


@attrs.frozen(slots=True)
class Signal:
    """One validated trading signal.

    Attributes:
        signal_id: the service's id (``[A-Za-z0-9_.:-]{1,64}``).
        symbol: upper-case USDT perpetual symbol, e.g. ``"BTCUSDT"``.
        venue: lower-case exchange name as sent, e.g. ``"bybit"``, ``"binance"``.
        position_side: LONG (BUY) or SHORT (SELL).
        score_week: weekly score in ``[min_score, max_score]`` or None when absent.
        score_month: monthly score, same range, or None.
        wave_ts: the wave the signal belongs to: aware UTC, on a 15-minute boundary.
    """

    signal_id: str
    symbol: str
    venue: str
    position_side: PositionSide
    score_week: Decimal | None
    score_month: Decimal | None
    wave_ts: datetime

    @property
    def action(self) -> str:
        """``"BUY"`` for LONG, ``"SELL"`` for SHORT (the protocol's action)."""
        return "BUY" if self.position_side is PositionSide.LONG else "SELL"

    @property
    def wave_id(self) -> str:
        return wave_id_for(self.wave_ts)


@attrs.frozen(slots=True)
class Rejection:
    """A message or a signal that failed validation.

    Attributes:
        reason: ``code`` or ``code:detail`` (see the module docstring for codes).
        excerpt: at most 200 characters of the offending input, printable.
        wave_ts: the wave it claimed to belong to, when that much could be parsed.
        signal_id: the signal id, when that much could be parsed.
    """

    reason: str
    excerpt: str
    wave_ts: datetime | None = None
    signal_id: str | None = None

    @property
    def code(self) -> str:
        """The stable part of ``reason`` (before the first ``:``)."""
        return self.reason.split(":", 1)[0]


@attrs.frozen(slots=True)
class Wave:
    """A batch of signals for one 15-minute wave.

    Attributes:
        wave_ts: aware UTC wave time on a 15-minute boundary.
        signals: the valid signals, in message order (ids unique).
        rejections: signals of this message that failed validation.
    """

    wave_ts: datetime
    signals: tuple[Signal, ...]
    rejections: tuple[Rejection, ...] = ()

    @property
    def wave_id(self) -> str:
        return wave_id_for(self.wave_ts)


@attrs.frozen(slots=True)
class Control:
    """A recognised control message (heartbeat, subscribed, ...); carries no signal."""

    kind: str


Message = Wave | Signal | Control | Rejection


def wave_id_for(wave_ts: datetime) -> str:
    """Stable wave id, e.g. ``"wave-20250521T1100Z"`` (persisted in ``waves``)."""
    return wave_ts.astimezone(UTC).strftime("wave-%Y%m%dT%H%MZ")


def wave_floor(ts: datetime) -> datetime:
    """The 15-minute wave boundary at or before ``ts`` (aware UTC)."""
    ts = ts.astimezone(UTC)
    return ts.replace(minute=ts.minute - ts.minute % 15, second=0, microsecond=0)


def excerpt_of(raw: Any, limit: int = EXCERPT_CHARS) -> str:
    """A short printable excerpt of any raw input (bytes shown with escapes). Never raises."""
    try:
        if isinstance(raw, (bytes, bytearray, memoryview)):
            text = bytes(raw[: limit * 4]).decode("utf-8", errors="backslashreplace")
        elif isinstance(raw, str):
            text = raw[: limit * 2]
        else:
            text = json.dumps(_plain(raw), ensure_ascii=False, separators=(",", ":"))[: limit * 2]
        text = text.replace("\x00", "\\x00")
        return text if len(text) <= limit else text[: limit - 1] + "…"
    except Exception:  # pragma: no cover - defensive: an excerpt must never fail
        return f"<{type(raw).__name__}>"


def _plain(value: Any) -> Any:
    if isinstance(value, _NonFinite):
        return value.text
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in list(value.items())[:50]}
    if isinstance(value, list):
        return [_plain(v) for v in value[:50]]
    return value


_MISSING: Any = object()


class _NonFinite:
    """A JSON ``NaN``/``Infinity``/``-Infinity`` literal, kept for a precise rejection."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


_DECODER = json.JSONDecoder(parse_float=Decimal, parse_constant=_NonFinite)


def _decode(text: str) -> Any:
    return _DECODER.decode(text)


_TS_CACHE: dict[Any, datetime | str] = {}


def parse_wave_ts(value: Any) -> datetime | str:
    """Parse a wave timestamp.

    Args:
        value: ISO-8601 text with an offset (``"2025-05-21T11:00:00Z"``) or epoch seconds /
            milliseconds (int; values > 1e11 are milliseconds).

    Returns:
        The aware UTC datetime on a 15-minute boundary, or a rejection reason (str).
    """
    key = (
        value
        if (isinstance(value, str) and len(value) <= 40)
        or (isinstance(value, int) and not isinstance(value, bool))
        else None
    )
    if key is not None:
        hit = _TS_CACHE.get(key)
        if hit is not None:
            return hit
    result = _parse_wave_ts(value)
    if key is not None:
        if len(_TS_CACHE) > 4096:
            _TS_CACHE.clear()
        _TS_CACHE[key] = result
    return result


def _parse_wave_ts(value: Any) -> datetime | str:
    if value is None:
        return "missing_field:timestamp"
    if isinstance(value, str):
        if len(value) > 40:
            return "invalid_timestamp:too long"
        try:
            ts = datetime.fromisoformat(value)
        except ValueError:
            return "invalid_timestamp:not ISO-8601"
        if ts.tzinfo is None or ts.utcoffset() is None:
            return "invalid_timestamp:no UTC offset"
    elif isinstance(value, int) and not isinstance(value, bool):
        seconds = value / 1000 if abs(value) > 100_000_000_000 else value
        try:
            ts = datetime.fromtimestamp(seconds, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return "timestamp_out_of_range"
    else:
        return f"invalid_timestamp:expected string or integer, got {_type_name(value)}"
    ts = ts.astimezone(UTC)
    if not (_MIN_TS <= ts < _MAX_TS):
        return "timestamp_out_of_range"
    if ts.minute % 15 or ts.second or ts.microsecond:
        return "timestamp_not_on_wave_boundary"
    return ts


def _type_name(value: Any) -> str:
    if isinstance(value, _NonFinite):
        return value.text
    if isinstance(value, Decimal):
        return "number"
    return type(value).__name__


_STR_DEC_CACHE: dict[str, Decimal | None] = {}
_SYMBOL_CACHE: dict[str, str | None] = {}
_VENUE_CACHE: dict[str, str | None] = {}
_CACHE_MAX = 20_000  # per cache; cleared when full (bounded memory under hostile input)


def _str_decimal(value: str) -> Decimal | None:
    hit = _STR_DEC_CACHE.get(value, _MISSING)
    if hit is not _MISSING:
        return hit  # type: ignore[no-any-return]
    try:
        d: Decimal | None = Decimal(value.strip())
    except InvalidOperation:
        d = None
    if len(_STR_DEC_CACHE) >= _CACHE_MAX:
        _STR_DEC_CACHE.clear()
    _STR_DEC_CACHE[value] = d
    return d


def _score(value: Any, name: str, limits: ProtocolLimits) -> Decimal | str | None:
    if value is None:
        return None
    kind = type(value)
    d: Decimal
    if kind is Decimal:
        d = value
    elif kind is str:
        if len(value) > 40:
            return f"invalid_score:{name} too long"
        parsed = _str_decimal(value)
        if parsed is None:
            return f"invalid_score:{name} not a decimal"
        d = parsed
    elif kind is int:
        d = Decimal(value)
    elif isinstance(value, _NonFinite):
        return f"score_not_finite:{name}={value.text}"
    else:
        return f"invalid_score:{name} has type {_type_name(value)}"
    if not d.is_finite():
        return f"score_not_finite:{name}={value}"
    if d < limits.min_score:
        if d < 0:
            return f"negative_score:{name}={excerpt_of(str(d), 40)}"
        return f"score_out_of_range:{name}={d}"
    if d > limits.max_score:
        return f"score_out_of_range:{name}={excerpt_of(str(d), 40)}"
    return d


def _normalize(
    value: str, cache: dict[str, str | None], upper: bool, pattern: re.Pattern[str]
) -> str | None:
    hit = cache.get(value, _MISSING)
    if hit is not _MISSING:
        return hit  # type: ignore[no-any-return]
    norm: str | None = value.upper() if upper else value.lower()
    if len(value) > 40 or not pattern.fullmatch(norm):  # type: ignore[arg-type]
        norm = None
    if len(cache) >= _CACHE_MAX:
        cache.clear()
    cache[value] = norm
    return norm


def validate_signal(
    obj: Any, wave_ts: datetime, limits: ProtocolLimits = DEFAULT_LIMITS
) -> Signal | Rejection:
    """Validate one signal object that belongs to wave ``wave_ts``. Never raises."""
    if type(obj) is not dict:
        return Rejection(f"signal_not_an_object:{_type_name(obj)}", excerpt_of(obj), wave_ts)
    raw_id = obj.get("id")
    if raw_id is None:
        raw_id = obj.get("signal_id")
    if raw_id is None:
        return Rejection("missing_field:id", excerpt_of(obj), wave_ts)
    if type(raw_id) is str:
        signal_id = raw_id
    elif type(raw_id) is int:
        signal_id = str(raw_id)
    else:
        return Rejection(f"invalid_id:type {_type_name(raw_id)}", excerpt_of(obj), wave_ts)
    if not _ID_RE.fullmatch(signal_id):
        return Rejection("invalid_id", excerpt_of(obj), wave_ts)

    symbol = obj.get("symbol")
    if symbol is None:
        symbol = obj.get("pair_symbol")
        if symbol is None:
            return _reject("missing_field:symbol", obj, wave_ts, signal_id)
    symbol = _normalize(symbol, _SYMBOL_CACHE, True, _SYMBOL_RE) if type(symbol) is str else None
    if symbol is None:
        return _reject("invalid_symbol", obj, wave_ts, signal_id)
    known = limits.known_symbols
    if known is not None and symbol not in known:
        return _reject(f"unknown_symbol:{symbol}", obj, wave_ts, signal_id)

    venue = obj.get("exchange")
    if venue is None:
        venue = obj.get("exchange_name")
        if venue is None:
            return _reject("missing_field:exchange", obj, wave_ts, signal_id)
    venue = _normalize(venue, _VENUE_CACHE, False, _VENUE_RE) if type(venue) is str else None
    if venue is None:
        return _reject("invalid_exchange", obj, wave_ts, signal_id)

    action = obj.get("action")
    if action is None:
        action = obj.get("recommended_action")
        if action is None:
            return _reject("missing_field:action", obj, wave_ts, signal_id)
    side = _ACTIONS.get(action) if type(action) is str else None
    if side is None and type(action) is str and len(action) < 16:
        side = _ACTIONS.get(action.strip().upper())
    if side is None:
        return _reject("invalid_action", obj, wave_ts, signal_id)

    score_week = _score(obj.get("score_week"), "score_week", limits)
    if type(score_week) is str:
        return _reject(score_week, obj, wave_ts, signal_id)
    score_month = _score(obj.get("score_month"), "score_month", limits)
    if type(score_month) is str:
        return _reject(score_month, obj, wave_ts, signal_id)

    own_ts = obj.get("timestamp")
    if own_ts is not None and parse_wave_ts(own_ts) != wave_ts:
        return _reject("timestamp_mismatch", obj, wave_ts, signal_id)
    return Signal(signal_id, symbol, venue, side, score_week, score_month, wave_ts)  # type: ignore[arg-type]


def _reject(reason: str, obj: Any, wave_ts: datetime, signal_id: str) -> Rejection:
    return Rejection(reason, excerpt_of(obj), wave_ts, signal_id)


def _text_field(obj: Mapping[str, Any], key: str, legacy: str) -> Any:
    value = obj.get(key)
    if value is None:
        value = obj.get(legacy)
    return value


def parse_message(data: str | bytes, limits: ProtocolLimits = DEFAULT_LIMITS) -> Message:
    """Parse and validate one protocol message. Never raises.

    Args:
        data: the message as received (text frame ``str`` or binary frame ``bytes``).
        limits: validation limits.

    Returns:
        A :class:`Wave` (valid signals plus per-signal rejections), a single
        :class:`Signal`, a :class:`Control` message, or a :class:`Rejection` of the whole
        message with the reason.
    """
    try:
        return _parse_message(data, limits)
    except Exception as exc:  # defensive: a hostile message must never escape as an error
        return Rejection(f"internal_error:{type(exc).__name__}", excerpt_of(data))


def _parse_message(data: str | bytes, limits: ProtocolLimits) -> Message:
    if len(data) > limits.max_message_bytes:
        return Rejection(
            f"message_too_large:{len(data)} > {limits.max_message_bytes}", excerpt_of(data)
        )
    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            return Rejection(f"invalid_utf8:at byte {exc.start}", excerpt_of(data))
    elif isinstance(data, str):
        text = data
    else:
        return Rejection(f"not_an_object:{type(data).__name__}", excerpt_of(data))
    try:
        obj = _decode(text)
    except RecursionError:
        return Rejection("invalid_json:nested too deeply", excerpt_of(text))
    except ValueError as exc:  # JSONDecodeError, int digit limit
        return Rejection(f"invalid_json:{str(exc)[:80]}", excerpt_of(text))
    if not isinstance(obj, dict):
        return Rejection(f"not_an_object:{_type_name(obj)}", excerpt_of(text))

    kind = obj.get("type")
    if kind is None:
        if "signals" in obj:
            kind = "wave"
        elif "symbol" in obj or "pair_symbol" in obj:
            kind = "signal"
        else:
            return Rejection("missing_field:type", excerpt_of(text))
    if not isinstance(kind, str):
        return Rejection("unknown_type", excerpt_of(text))
    kind = kind.lower()

    if kind == "wave":
        ts = parse_wave_ts(_text_field(obj, "timestamp", "wave_ts"))
        if isinstance(ts, str):
            return Rejection(ts, excerpt_of(text))
        items = obj.get("signals")
        if not isinstance(items, list):
            return Rejection("invalid_signals:expected a list", excerpt_of(text), ts)
        if len(items) > limits.max_signals_per_wave:
            return Rejection(
                f"too_many_signals:{len(items)} > {limits.max_signals_per_wave}",
                excerpt_of(text),
                ts,
            )
        signals: list[Signal] = []
        rejections: list[Rejection] = []
        seen: set[str] = set()
        for item in items:
            result = validate_signal(item, ts, limits)
            if type(result) is Signal:
                if result.signal_id in seen:
                    rejections.append(
                        Rejection("duplicate_signal_id", excerpt_of(item), ts, result.signal_id)
                    )
                    continue
                seen.add(result.signal_id)
                signals.append(result)
            else:
                rejections.append(result)  # type: ignore[arg-type]
        return Wave(ts, tuple(signals), tuple(rejections))
    if kind == "signal":
        ts = parse_wave_ts(_text_field(obj, "timestamp", "wave_ts"))
        if isinstance(ts, str):
            return Rejection(ts, excerpt_of(text))
        body = {k: v for k, v in obj.items() if k not in ("timestamp", "wave_ts", "type")}
        return validate_signal(body, ts, limits)
    if kind in _CONTROL_TYPES:
        return Control(kind)
    return Rejection(f"unknown_type:{excerpt_of(kind, 32)}", excerpt_of(text))
