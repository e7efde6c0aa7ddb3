"""The Bybit venue's state and metadata: its capabilities, the constructor (HTTP client,
budgets, stream settings, lookup and retry windows), the journaling helper, the orders it
sent (for resolving outcomes by client id), instruments, balance and the symbols whose
entries are blocked."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import attrs
import httpx
import trio

from adapters.bybit.budget import EndpointBudgets
from adapters.bybit.fills import ExecutionTracker
from adapters.bybit.http import BybitHttp, ServerClock
from adapters.bybit.parse import (
    POSITION_TPSL_TYPES,
    ParseError,
    parse_instrument,
    parse_wallet_usdt,
)
from adapters.bybit.urls import BybitUrls
from adapters.bybit.ws import StreamSettings, TickerCache
from tradebot.domain import (
    Instrument,
    InstrumentStatus,
    PositionSide,
)
from tradebot.events import Event, EventType, JournalPort, Severity
from tradebot.ports import (
    Balance,
    Capabilities,
    Clock,
)

__all__ = ["BYBIT_CAPABILITIES", "_BybitVenueBase"]


BYBIT_CAPABILITIES = Capabilities(
    venue="bybit",
    attached_stop=True,
    amend_stop=True,
    stop_has_client_id=False,
    max_conditional_per_symbol=10,
)

_CATEGORY = "linear"
_POSITION_TPSL_TYPES = POSITION_TPSL_TYPES
_MODE_BLOCKED_CODES = ("110024", "110028")  # switch-mode refused: open position / orders
_EXEC_SPAN_MS = 7 * 24 * 3600 * 1000  # /v5/execution/list: endTime - startTime <= 7 days
_MAX_SUBMITTED = 10_000


@attrs.frozen
class _Submitted:
    """An order this venue object sent (for resolving its outcome by client id)."""

    symbol: str
    position_side: PositionSide
    reduce_only: bool
    sent_at: float  # trio.current_time() of the latest submission


def _s(value: Decimal) -> str:
    """Decimal → venue string (no exponent)."""
    return format(value, "f")


class _BybitVenueBase:
    """State, journaling helpers and metadata of :class:`adapters.bybit.venue.BybitVenue`
    (its docstring gives the constructor's arguments)."""

    def __init__(
        self,
        urls: BybitUrls,
        api_key: str = "",
        api_secret: str = "",
        *,
        journal: JournalPort | None = None,
        clock: Clock | None = None,
        recv_window_ms: int = 5000,
        budgets: EndpointBudgets | None = None,
        stream_settings: StreamSettings | None = None,
        server_clock: ServerClock | None = None,
        timeout_s: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        order_lookup_window_s: float = 10.0,
        order_lookup_backoff_s: float = 0.25,
        protective_retry_s: float = 10.0,
        startup_backfill_s: float = 3600.0,
        backfill_overlap_s: float = 5.0,
    ) -> None:
        if order_lookup_window_s < 0 or order_lookup_backoff_s <= 0 or protective_retry_s < 0:
            raise ValueError(
                "need order_lookup_window_s >= 0, order_lookup_backoff_s > 0, "
                "protective_retry_s >= 0"
            )
        self.urls = urls
        self._api_key = api_key
        self._api_secret = api_secret
        self.journal = journal
        self.clock = clock
        self.http = BybitHttp(
            urls.rest_url,
            api_key,
            api_secret,
            recv_window_ms=recv_window_ms,
            journal=journal,
            clock=clock,
            server_clock=server_clock,
            budgets=budgets,
            timeout_s=timeout_s,
            transport=transport,
        )
        self.stream_settings = stream_settings or StreamSettings()
        self.tickers = TickerCache()
        self.mark_max_age_s = 5.0
        self.order_lookup_window_s = order_lookup_window_s
        self.order_lookup_backoff_s = order_lookup_backoff_s
        self.protective_retry_s = protective_retry_s
        self.startup_backfill_s = startup_backfill_s
        self.backfill_overlap_s = backfill_overlap_s
        self.fills = ExecutionTracker()
        self._instruments: dict[str, Instrument] = {}
        self._submitted: OrderedDict[str, _Submitted] = OrderedDict()
        self._hedge_ok: set[str] = set()  # symbols verified in hedge mode
        self._one_way: set[str] = set()  # symbols seen in one-way mode (positionIdx 0)
        self._mode_blocked: dict[str, str] = {}  # symbol → why entries are refused
        self._not_tradable: dict[str, str] = {}  # symbol → venue code that refused entries
        self._mode_locks: dict[str, trio.Lock] = {}

    @property
    def capabilities(self) -> Capabilities:
        return BYBIT_CAPABILITIES

    async def sync_time(self) -> int:
        """Measure the venue clock offset (ms); call once at start-up."""
        return await self.http.sync_time()

    # --- journal / helpers --------------------------------------------------------------------

    def _journal(
        self,
        type_: EventType,
        data: dict[str, Any],
        severity: Severity = Severity.INFO,
        symbol: str | None = None,
        client_order_id: str | None = None,
    ) -> None:
        if self.journal is None:
            return
        ts = self.clock.now() if self.clock is not None else datetime.now(UTC)
        self.journal.emit(
            Event(
                type=type_,
                ts=ts,
                data=data,
                severity=severity,
                symbol=symbol,
                client_order_id=client_order_id,
            )
        )

    def _idx(self, symbol: str, position_side: PositionSide) -> int:
        """``positionIdx`` for an order/stop on ``symbol``: 1/2 in hedge mode, 0 for a
        symbol seen in one-way mode (protective calls on an adopted one-way position)."""
        return 0 if symbol in self._one_way else position_side.bybit_position_idx

    def _note_submit(self, cid: str, symbol: str, side: PositionSide, reduce_only: bool) -> None:
        self._submitted[cid] = _Submitted(symbol, side, reduce_only, trio.current_time())
        self._submitted.move_to_end(cid)
        while len(self._submitted) > _MAX_SUBMITTED:
            self._submitted.popitem(last=False)

    # --- metadata -----------------------------------------------------------------------------

    async def instruments(self) -> Mapping[str, Instrument]:
        """All linear USDT perpetuals by symbol (cached; :meth:`refresh_instruments` reloads).

        A symbol this account cannot enter (:attr:`blocked_symbols`: left in one-way mode,
        or refused by the venue as not tradable) is reported ``REDUCE_ONLY``, so the
        instrument filter of the wave processor refuses it with that reason.
        """
        if not self._instruments:
            await self.refresh_instruments()
        out = dict(self._instruments)
        for symbol in self.blocked_symbols:
            inst = out.get(symbol)
            if inst is not None and inst.status is InstrumentStatus.TRADING:
                out[symbol] = attrs.evolve(inst, status=InstrumentStatus.REDUCE_ONLY)
        return out

    async def refresh_instruments(self) -> Mapping[str, Instrument]:
        """Reload ``/v5/market/instruments-info`` following ``nextPageCursor`` to the end.

        Only USDT-settled ``LinearPerpetual`` contracts are kept. A symbol blocked because
        the venue refused it as not tradable is unblocked when it is listed ``Trading``.
        """
        found: dict[str, Instrument] = {}
        cursor = ""
        for _ in range(1000):  # defensive bound against a cursor that never ends
            params: dict[str, Any] = {"category": _CATEGORY, "limit": 1000}
            if cursor:
                params["cursor"] = cursor
            _, result = await self.http.call(
                "GET", "/v5/market/instruments-info", params, signed=False
            )
            for row in result.get("list", []):
                if row.get("contractType", "LinearPerpetual") != "LinearPerpetual":
                    continue
                if row.get("settleCoin", "USDT") != "USDT":
                    continue
                inst = parse_instrument(row)
                found[inst.symbol] = inst
            cursor = str(result.get("nextPageCursor") or "")
            if not cursor:
                break
        self._instruments = found
        for symbol in list(self._not_tradable):
            listed = found.get(symbol)
            if listed is not None and listed.status is InstrumentStatus.TRADING:
                del self._not_tradable[symbol]
        return dict(found)

    async def balance(self) -> Balance:
        """USDT of the unified trading account (``/v5/account/wallet-balance``
        ``accountType=UNIFIED``, docs https://bybit-exchange.github.io/docs/v5/account/wallet-balance).

        ``available_usdt`` is the USDT available for new margin (the coin's ``equity`` less
        its position and order initial margin), not the account-level USD
        ``totalAvailableBalance`` (see :func:`adapters.bybit.parse.parse_wallet_usdt`).
        """
        _, result = await self.http.call(
            "GET", "/v5/account/wallet-balance", {"accountType": "UNIFIED", "coin": "USDT"}
        )
        accounts = result.get("list") or []
        if not accounts:
            raise ParseError("wallet-balance returned no account")
        return parse_wallet_usdt(accounts[0])  # one account per accountType

    @property
    def blocked_symbols(self) -> Mapping[str, str]:
        """Symbols entries are refused on, with the reason: left in one-way position mode
        (``"position_mode: ..."``) or refused by the venue as not tradable
        (``"not_tradable: <retCode> ..."``)."""
        return {**self._not_tradable, **self._mode_blocked}
