"""Runtime invariant monitor for paper and replay runs (docs/ARCHITECTURE.md §1, invariants 2 and 3).

The monitor looks at the *venue's* view (the paper engine's positions, live stops and mark
prices) after every engine step — every mark update, funding settlement and request — and
checks, for every open position side:

* ``unprotected``: it has at least one live protective stop. Time without one is measured
  per position (engine time between the step that left it naked and the step that protected
  or closed it). A window up to ``unprotected_grace_ms`` is the allowed bounded gap (Binance:
  stop placed after the fill, one round trip; 0 in virtual time without injected latency);
  a longer window is a violation.
* ``duplicate_stops``: it has exactly one live stop. Make-before-break replacement (Binance)
  legitimately shows two for the span of the replace; two or more stops for longer than
  ``duplicate_grace_ms`` is a violation.
* ``stop_zero``: no stop has a trigger price <= 0.
* ``stop_wrong_side``: every stop is on the protective side of the current mark (long: below,
  short: above). The engine triggers a stop on the mark step that reaches it, so after any
  step a surviving stop at or through the mark means a stop that did not protect.
* ``stop_loosened``: the *effective* stop (the tightest live one: long max trigger, short min)
  never moves against the position while it stays open (long non-decreasing, short
  non-increasing).

A violation that persists (the same wrong-side or zero trigger seen on many steps) is
counted once per position life; each loosening move counts.

A position's life on the venue runs from the first step where its side is non-flat to the
first step where it is flat again; ``stop_coverage_pct`` is the protected share of the total
position time (100 when there was no position time).

The monitor is venue-agnostic: the caller passes what the venue shows (see :meth:`observe`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import attrs

from tradebot.domain import PositionSide
from tradebot.ports import PositionState, StopState

__all__ = ["InvariantMonitor", "InvariantSummary", "InvariantViolation"]


@attrs.frozen
class InvariantViolation:
    """One broken invariant.

    Attributes:
        ts: engine time of the step where it was seen (UTC).
        symbol, position_side: the position side.
        kind: ``"unprotected"``, ``"duplicate_stops"``, ``"stop_zero"``, ``"stop_wrong_side"``,
            ``"stop_loosened"``.
        detail: human-readable specifics (prices, durations).
    """

    ts: datetime
    symbol: str
    position_side: PositionSide
    kind: str
    detail: str


@attrs.frozen
class InvariantSummary:
    """What the monitor measured over a run.

    Attributes:
        violations: every violation, in the order seen.
        position_time_ms: sum over positions of their open time on the venue, ms.
        unprotected_ms: sum of the time open positions had no live stop, ms.
        max_unprotected_ms: the longest single unprotected window, ms.
        positions_seen: positions (position-side lives) observed.
        steps: engine steps observed.
    """

    violations: tuple[InvariantViolation, ...]
    position_time_ms: int
    unprotected_ms: int
    max_unprotected_ms: int
    positions_seen: int
    steps: int

    @property
    def stop_coverage_pct(self) -> Decimal:
        """Percent of position time with a live stop, two decimals; 100 with no position time."""
        if self.position_time_ms <= 0:
            return Decimal("100.00")
        covered = Decimal(self.position_time_ms - self.unprotected_ms)
        return (covered * 100 / Decimal(self.position_time_ms)).quantize(Decimal("0.01"))


@attrs.define
class _Life:
    opened_ms: int
    naked_since_ms: int | None = None
    dup_since_ms: int | None = None
    dup_flagged: bool = False
    naked_flagged: bool = False
    effective_stop: Decimal | None = None
    flagged: set[tuple[str, Decimal]] = attrs.field(factory=set)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ms(ts: datetime) -> int:
    """Aware datetime → Unix ms, exact (no float)."""
    d = ts - _EPOCH
    return (d.days * 86_400 + d.seconds) * 1000 + d.microseconds // 1000


class InvariantMonitor:
    """Checks the stop invariants after every venue step and measures unprotected time.

    Args:
        unprotected_grace_ms: longest allowed window without a stop (>= 0).
        duplicate_grace_ms: longest allowed window with two or more stops (>= 0).
    """

    def __init__(
        self, *, unprotected_grace_ms: int = 5_000, duplicate_grace_ms: int = 5_000
    ) -> None:
        if unprotected_grace_ms < 0 or duplicate_grace_ms < 0:
            raise ValueError("grace windows must be >= 0")
        self.unprotected_grace_ms = unprotected_grace_ms
        self.duplicate_grace_ms = duplicate_grace_ms
        self._lives: dict[tuple[str, PositionSide], _Life] = {}
        self._violations: list[InvariantViolation] = []
        self._position_time_ms = 0
        self._unprotected_ms = 0
        self._max_unprotected_ms = 0
        self._positions_seen = 0
        self._steps = 0
        self._last_ms = 0
        self._open_by_symbol: dict[str, int] = {}
        # per symbol, what the last full observation saw: (key, life, live stops)
        self._views: dict[
            str, list[tuple[tuple[str, PositionSide], _Life, Sequence[StopState]]]
        ] = {}
        # per symbol with a view: the open interval of marks (lo, hi; None = unbounded)
        # for which re-running the checks on that view can find nothing new
        self._bands: dict[str, tuple[Decimal | None, Decimal | None]] = {}
        self._mark_ts: datetime | None = None  # observe_mark's last ts and its Unix ms
        self._mark_ms = 0

    # --- observation ------------------------------------------------------------------

    def watching(self, symbol: str) -> bool:
        """True while the monitor tracks an open position of ``symbol``. A venue step about
        a symbol the monitor does not watch that produced no account event cannot have
        opened anything, so a driver may skip :meth:`observe` for it (:meth:`skip`)."""
        return self._open_by_symbol.get(symbol, 0) > 0

    def skip(self) -> None:
        """Count a step that needed no check (see :meth:`watching`)."""
        self._steps += 1

    def observe(
        self,
        ts: datetime,
        positions: Iterable[PositionState],
        stops_of: Callable[[str, PositionSide], Sequence[StopState]],
        mark_of: Callable[[str], Decimal | None],
        *,
        symbol: str | None = None,
    ) -> None:
        """Check one venue step.

        Args:
            ts: engine time of the step (aware UTC).
            positions: the venue's non-flat position sides — all of them, or only those of
                ``symbol`` when ``symbol`` is given.
            stops_of: live protective stops of a position side (venue view).
            mark_of: current mark price of a symbol (None if unknown).
            symbol: when given, only this symbol's positions are checked and closed (the
                step concerned only it); None = the whole account.
        """
        now = _ms(ts)
        self._steps += 1
        self._last_ms = max(self._last_ms, now)
        seen: set[tuple[str, PositionSide]] = set()
        views = self._views
        if symbol is None:
            views.clear()
            self._bands.clear()
        else:
            views.pop(symbol, None)
            self._bands.pop(symbol, None)
        fresh: dict[str, list[tuple[tuple[str, PositionSide], _Life, Sequence[StopState]]]] = {}
        for pos in positions:
            if pos.qty <= 0:
                continue
            key = (pos.symbol, pos.position_side)
            seen.add(key)
            life = self._lives.get(key)
            if life is None:
                life = _Life(opened_ms=now)
                self._lives[key] = life
                self._open_by_symbol[key[0]] = self._open_by_symbol.get(key[0], 0) + 1
                self._positions_seen += 1
            stops = stops_of(*key)
            self._check(ts, now, key, life, stops, mark_of(pos.symbol))
            fresh.setdefault(key[0], []).append((key, life, stops))
        views.update(fresh)
        for sym, view in fresh.items():
            band = self._quiet_band(view)
            if band is not None:
                self._bands[sym] = band
        if symbol is not None and self._open_by_symbol.get(symbol, 0) == sum(
            1 for k in seen if k[0] == symbol
        ):
            return  # every tracked side of ``symbol`` is still open: nothing closed
        for key in [k for k in self._lives if k not in seen and (symbol is None or k[0] == symbol)]:
            self._close(ts, now, key)

    def observe_quiet_mark(
        self,
        ts: datetime,
        symbol: str,
        mark: Decimal,
        positions_of: Callable[[str], Iterable[PositionState]],
        stops_of: Callable[[str, PositionSide], Sequence[StopState]],
        mark_of: Callable[[str], Decimal | None],
    ) -> None:
        """Check a mark step of ``symbol`` that produced no account event (a venue's
        quiet-mark hook): skipped (:meth:`skip`) while the monitor watches no open position
        of ``symbol``, checked from the last view (:meth:`observe_mark`) when it has one,
        else observed in full with ``positions_of(symbol)`` (arguments as :meth:`observe`).
        """
        if not self.watching(symbol):
            self.skip()
        elif not self.observe_mark(ts, symbol, mark):
            self.observe(ts, positions_of(symbol), stops_of, mark_of, symbol=symbol)

    def observe_mark(self, ts: datetime, symbol: str, mark: Decimal) -> bool:
        """Check a mark-price step of ``symbol`` that produced no account event.

        Such a step changes no position and no stop (every change is a venue step with its
        events or a request), so the sides and stops the last :meth:`observe` of
        ``symbol`` (or of the whole account) saw still hold, and only ``mark`` (USDT) and
        the time are new: the same checks run on them without asking the venue again (the
        replay's per-step hook, issue 15 item 5). The caller must call :meth:`observe` for
        every other step, so that view stays current.

        Returns:
            False (nothing checked, nothing counted) when there is no view of ``symbol``
            yet or it has no open side; the caller then calls :meth:`observe`.
        """
        view = self._views.get(symbol)
        if not view:
            return False
        if ts is self._mark_ts:  # the marks of one instant share their datetime
            now = self._mark_ms
        else:
            now = self._mark_ms = _ms(ts)
            self._mark_ts = ts
        self._steps += 1
        if now > self._last_ms:
            self._last_ms = now
        band = self._bands.get(symbol)
        if band is not None:
            lo, hi = band
            if (lo is None or mark > lo) and (hi is None or mark < hi):
                return True  # the checks below would find what they found before
        for key, life, stops in view:
            self._check(ts, now, key, life, stops, mark)
        return True

    @staticmethod
    def _quiet_band(
        view: list[tuple[tuple[str, PositionSide], _Life, Sequence[StopState]]],
    ) -> tuple[Decimal | None, Decimal | None] | None:
        """The marks for which :meth:`_check` on ``view`` (just checked) changes nothing.

        Only when every side has exactly one live stop and no window is open: then the
        checks that depend on the time (unprotected, duplicate) cannot start, those on the
        stops alone (zero, loosened) already ran, and the only one on the mark, "stop on the
        wrong side", cannot fire while a long's mark stays above its stop and a short's
        below. None = no such band (every mark is checked).
        """
        lo: Decimal | None = None
        hi: Decimal | None = None
        for key, life, stops in view:
            if len(stops) != 1 or life.naked_since_ms is not None or life.dup_since_ms is not None:
                return None
            trig = stops[0].trigger_price
            if key[1] is PositionSide.LONG:
                lo = trig if lo is None or trig > lo else lo
            else:
                hi = trig if hi is None or trig < hi else hi
        return lo, hi

    def _check(
        self,
        ts: datetime,
        now: int,
        key: tuple[str, PositionSide],
        life: _Life,
        stops: Sequence[StopState],
        mark: Decimal | None,
    ) -> None:
        side = key[1]
        # unprotected windows
        if not stops:
            if life.naked_since_ms is None:
                life.naked_since_ms = now
            elif not life.naked_flagged and now - life.naked_since_ms > self.unprotected_grace_ms:
                life.naked_flagged = True
                self._violate(
                    ts, key, "unprotected", f"no live stop for {now - life.naked_since_ms} ms"
                )
            return
        if life.naked_since_ms is not None:
            self._end_naked(ts, key, life, now)
        # duplicates
        if len(stops) > 1:
            if life.dup_since_ms is None:
                life.dup_since_ms = now
            elif not life.dup_flagged and now - life.dup_since_ms > self.duplicate_grace_ms:
                life.dup_flagged = True
                self._violate(
                    ts,
                    key,
                    "duplicate_stops",
                    f"{len(stops)} live stops for {now - life.dup_since_ms} ms: "
                    + ", ".join(str(s.trigger_price) for s in stops),
                )
        else:
            life.dup_since_ms = None
            life.dup_flagged = False
        triggers = [s.trigger_price for s in stops]
        for trig in triggers:
            if trig <= 0 and ("zero", trig) not in life.flagged:
                life.flagged.add(("zero", trig))
                self._violate(ts, key, "stop_zero", f"stop trigger {trig}")
        if mark is not None:
            for trig in triggers:
                through = trig >= mark if side is PositionSide.LONG else trig <= mark
                if through and ("wrong_side", trig) not in life.flagged:
                    life.flagged.add(("wrong_side", trig))
                    self._violate(
                        ts, key, "stop_wrong_side", f"{side.value} stop {trig} vs mark {mark}"
                    )
        effective = max(triggers) if side is PositionSide.LONG else min(triggers)
        prev = life.effective_stop
        if prev is not None:
            loosened = effective < prev if side is PositionSide.LONG else effective > prev
            if loosened:
                self._violate(
                    ts, key, "stop_loosened", f"{side.value} stop moved {prev} -> {effective}"
                )
        life.effective_stop = effective

    def _end_naked(
        self, ts: datetime, key: tuple[str, PositionSide], life: _Life, now: int
    ) -> None:
        assert life.naked_since_ms is not None
        window = now - life.naked_since_ms
        self._unprotected_ms += window
        self._max_unprotected_ms = max(self._max_unprotected_ms, window)
        if not life.naked_flagged and window > self.unprotected_grace_ms:
            self._violate(ts, key, "unprotected", f"no live stop for {window} ms")
        life.naked_since_ms = None
        life.naked_flagged = False

    def _close(self, ts: datetime, now: int, key: tuple[str, PositionSide]) -> None:
        life = self._lives.pop(key)
        self._open_by_symbol[key[0]] -= 1
        if life.naked_since_ms is not None:
            self._end_naked(ts, key, life, now)
        self._position_time_ms += now - life.opened_ms

    def _violate(self, ts: datetime, key: tuple[str, PositionSide], kind: str, detail: str) -> None:
        self._violations.append(InvariantViolation(ts, key[0], key[1], kind, detail))

    # --- results ----------------------------------------------------------------------

    @property
    def violations(self) -> list[InvariantViolation]:
        return list(self._violations)

    def open_positions(self) -> int:
        """Position sides open on the venue now."""
        return len(self._lives)

    @property
    def positions_seen(self) -> int:
        """Position lives observed so far."""
        return self._positions_seen

    def summary(self, end_ts: datetime | None = None) -> InvariantSummary:
        """Totals so far; positions still open are counted up to ``end_ts`` (default: the
        latest step seen) without being closed."""
        end = _ms(end_ts) if end_ts is not None else self._last_ms
        position_ms = self._position_time_ms
        unprotected = self._unprotected_ms
        max_window = self._max_unprotected_ms
        violations = list(self._violations)
        for key, life in self._lives.items():
            position_ms += max(0, end - life.opened_ms)
            if life.naked_since_ms is not None:
                w = max(0, end - life.naked_since_ms)
                unprotected += w
                max_window = max(max_window, w)
                if not life.naked_flagged and w > self.unprotected_grace_ms:
                    violations.append(
                        InvariantViolation(
                            end_ts or _EPOCH + timedelta(milliseconds=end),
                            key[0],
                            key[1],
                            "unprotected",
                            f"no live stop for {w} ms at end",
                        )
                    )
        return InvariantSummary(
            violations=tuple(violations),
            position_time_ms=position_ms,
            unprotected_ms=unprotected,
            max_unprotected_ms=max_window,
            positions_seen=self._positions_seen,
            steps=self._steps,
        )
