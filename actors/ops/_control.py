"""Operator commands of a running account: status, positions, close, pause, resume.

One implementation behind the control API (``/control/*``, the ``tradebot`` operator CLI)
and the Telegram commands. Every command is journaled ``operator.command`` (command,
arguments, source) before it runs. ``close`` is a message to the position's owner (the
PositionSupervisor asks that PositionActor; the actor does the reduce-only close and is the
only one touching its stop).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from actors.ops._state import OpsState
from tradebot.domain import PositionSide
from tradebot.events import Event, OperatorCommand, Severity

__all__ = ["CommandError", "Operator", "parse_close_args"]


class CommandError(ValueError):
    """A command's arguments are invalid (``str(exc)`` says which and why)."""


def parse_close_args(
    symbol: object, side: object, fraction: object = None
) -> tuple[str, PositionSide, Decimal | None]:
    """Validate close arguments: ``symbol`` a non-empty symbol, ``side`` ``LONG``/``SHORT``
    (any case), ``fraction`` None or a decimal in (0, 1].

    Raises:
        CommandError: naming the bad argument.
    """
    if not isinstance(symbol, str) or not symbol.strip() or len(symbol) > 40:
        raise CommandError("symbol: expected an instrument symbol like BTCUSDT")
    if not isinstance(side, str) or side.upper() not in ("LONG", "SHORT"):
        raise CommandError(f"side: expected LONG or SHORT (got {side!r})")
    frac: Decimal | None = None
    if fraction is not None and fraction != "":
        if isinstance(fraction, float | bool):
            raise CommandError('fraction: expected a decimal string like "0.5"')
        try:
            frac = Decimal(str(fraction))
        except InvalidOperation:
            raise CommandError(f"fraction: not a number ({fraction!r})") from None
        if not frac.is_finite() or not Decimal(0) < frac <= Decimal(1):
            raise CommandError(f"fraction: must be in (0, 1] (got {fraction})")
    return symbol.strip().upper(), PositionSide(side.upper()), frac


class Operator:
    """Runs operator commands against one account (see the module docstring).

    Args:
        state: the account's :class:`OpsState` (its account, journal, clock).
        close_timeout_s: how long a close may take before the reply says so, seconds.
    """

    def __init__(self, state: OpsState, close_timeout_s: float = 60.0) -> None:
        self.state = state
        self.close_timeout_s = close_timeout_s

    def _journal(self, command: str, args: dict[str, Any], source: str) -> None:
        acct = self.state.account
        acct.journal.emit(
            Event.of(
                OperatorCommand(command=command, args=args, source=source),
                acct.clock.now(),
                severity=Severity.WARNING if command in ("close", "pause") else Severity.INFO,
            )
        )

    async def status(self) -> dict[str, Any]:
        await self.state.refresh()
        return self.state.summary()

    async def positions(self) -> list[dict[str, Any]]:
        await self.state.refresh()
        return [p.to_json() for p in self.state.positions]

    async def close(
        self, symbol: str, side: PositionSide, fraction: Decimal | None, source: str
    ) -> dict[str, Any]:
        """Close one position (all, or ``fraction`` of it). Returns ``{"ok", "detail",
        "position"}``; ``ok`` False when there is no such position or the close failed."""
        args: dict[str, Any] = {"symbol": symbol, "side": side.value}
        if fraction is not None:
            args["fraction"] = str(fraction)
        self._journal("close", args, source)
        positions = self.state.account.positions
        if positions.actor(symbol, side) is None:
            return {"ok": False, "detail": f"no open position {symbol} {side.value}"}
        before = positions.actor(symbol, side)
        qty_before = before.status().qty if before is not None else Decimal(0)
        status = await positions.close(
            symbol,
            side,
            f"operator_close ({source})",
            timeout_s=self.close_timeout_s,
            fraction=fraction,
        )
        if status is None:
            return {"ok": False, "detail": "the position's actor did not answer in time"}
        done = status.lifecycle.value in ("CLOSED", "ROLLED_BACK") or (
            fraction is not None and status.qty < qty_before
        )
        return {
            "ok": done,
            "detail": f"{symbol} {side.value}: {status.lifecycle.value}, qty {status.qty}",
            "position": {
                "position_id": status.position_id,
                "lifecycle": status.lifecycle.value,
                "qty": str(status.qty),
                "close_reason": status.close_reason,
            },
        }

    async def set_paused(self, paused: bool, source: str, reason: str = "") -> dict[str, Any]:
        self._journal("pause" if paused else "resume", {"reason": reason} if reason else {}, source)
        changed = await self.state.account.set_entries_paused(paused, source=source, reason=reason)
        return {
            "ok": True,
            "entries_paused": self.state.account.entries.paused,
            "changed": changed,
        }
