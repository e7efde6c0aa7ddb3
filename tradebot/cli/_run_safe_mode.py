"""``tradebot run``'s safe mode: which failures are one, and what it does.

Owns the classification of an error escaping the account tree (:func:`_classify`: the
tree gave up — a supervisor's restart intensity exceeded —, the venue refused our
credentials while running, a venue or network error), the journal watch
(:func:`_watch_journal`: events lost, or down with more than :data:`SPOOL_LIMIT_EVENTS`
not durable) and the safe-mode exit (:func:`_safe_mode`): with the tree stopped (no new
entries), every open position on the venue is checked for a stop, then
``bot.safe_mode`` with the reason and the counts and a critical ``alert.raised`` are
journaled; exit code 3, so systemd restarts the process.
"""

from __future__ import annotations

from typing import Any, TextIO

import trio

from tradebot.cli._run_steps import EXIT_SAFE_MODE, _err
from tradebot.errors import FatalVenueError, SupervisorEscalation, VenueError
from tradebot.events import AlertRaised, Event, SafeModeEntered, Severity

__all__ = ["SPOOL_LIMIT_EVENTS"]

SPOOL_LIMIT_EVENTS = 1_000_000
"""Journal down with more events than this not durable (or any event lost) → safe mode."""
JOURNAL_CHECK_INTERVAL_S = 1.0


class _SafeMode(Exception):
    def __init__(self, reason: str, error: str, supervisor: str = "", child: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.error = error
        self.supervisor = supervisor
        self.child = child


def _classify(exc: BaseException) -> _SafeMode | None:
    """Which safe-mode reason an error escaping the tree is (None: not one)."""
    from tradebot.cli._errors import _leaves

    for leaf in _leaves(exc):
        if isinstance(leaf, _SafeMode):
            return leaf
    for leaf in _leaves(exc):
        cause: BaseException | None = leaf
        while cause is not None:
            if isinstance(cause, FatalVenueError):
                return _SafeMode("authentication", _err(cause))
            cause = cause.__cause__
    for leaf in _leaves(exc):
        if isinstance(leaf, SupervisorEscalation):
            return _SafeMode(
                "restart_intensity",
                _err(leaf.__cause__ or leaf),
                supervisor=str(getattr(leaf, "supervisor", "")),
                child=str(getattr(leaf, "child", "")),
            )
    for leaf in _leaves(exc):
        if isinstance(leaf, VenueError | OSError):
            return _SafeMode("venue_error", _err(leaf))
    return None


async def _watch_journal(journal: Any) -> None:
    """Run until cancelled; raise :class:`_SafeMode` when the journal is beyond its spool
    limit (events lost, or down with more than :data:`SPOOL_LIMIT_EVENTS` not durable)."""
    stats = getattr(journal, "stats", None)
    while True:
        await trio.sleep(JOURNAL_CHECK_INTERVAL_S)
        lost = int(getattr(stats, "lost", 0)) if stats is not None else 0
        up = bool(getattr(journal, "is_up", True))
        backlog = int(getattr(journal, "backlog", 0))
        if lost > 0 or (not up and backlog > SPOOL_LIMIT_EVENTS):
            raise _SafeMode(
                "journal_unreachable",
                f"journal down: {backlog} events not durable, {lost} lost",
            )


async def _safe_mode(
    sm: _SafeMode, port: Any, journal: Any, clock: Any, out: TextIO
) -> tuple[int, str, int | None]:
    """The tree is stopped (no new entries): verify every stop, journal, alert."""
    positions: int | None = None
    protected: int | None = None
    unprotected: list[str] = []
    with trio.move_on_after(30):
        try:
            found = await port.positions()
            positions, protected = 0, 0
            for p in found:
                if p.qty <= 0:
                    continue
                positions += 1
                stops = await port.stops(p.symbol, p.position_side)
                if stops:
                    protected += 1
                else:
                    unprotected.append(f"{p.symbol}:{p.position_side.value}")
        except Exception as exc:  # the venue cannot be asked: say so in the alert
            sm.error = f"{sm.error}; stops not verified: {_err(exc)}"[:2000]
    journal.emit(
        Event.of(
            SafeModeEntered(
                reason=sm.reason,
                supervisor=sm.supervisor,
                child=sm.child,
                error=sm.error,
                positions=positions,
                protected=protected,
                unprotected=tuple(unprotected),
            ),
            clock.now(),
            severity=Severity.CRITICAL,
        )
    )
    checked = (
        f"{positions} open position(s), {protected} with a stop on the venue"
        if positions is not None
        else "stops NOT verified (venue unreachable)"
    )
    journal.emit(
        Event.of(
            AlertRaised(
                message=f"safe mode ({sm.reason}): no new entries, exiting for a restart; "
                f"{checked}"
                + (f"; WITHOUT a stop: {', '.join(unprotected)}" if unprotected else ""),
                key=f"safe_mode:{sm.reason}",
                reason="safe_mode",
                error=sm.error,
            ),
            clock.now(),
            severity=Severity.CRITICAL,
        )
    )
    print(f"safe mode ({sm.reason}): {sm.error}; {checked}", file=out, flush=True)
    return EXIT_SAFE_MODE, f"safe mode: {sm.reason}", positions
