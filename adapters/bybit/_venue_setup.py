"""The Bybit venue's account setup and position modes: leverage and hedge mode at start-up,
every traded symbol's mode verified from its position rows, a one-way symbol switched once
flat, else its entries refused (journaled, with an alert)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal

import trio

from adapters.bybit._venue_base import (
    _CATEGORY,
    _MODE_BLOCKED_CODES,
)
from adapters.bybit._venue_queries import _BybitQueries
from adapters.bybit.parse import (
    HEDGE,
    opt_dec,
    position_mode_of,
)
from tradebot.errors import (
    RejectedError,
    SymbolNotTradable,
)
from tradebot.events import EventType, Severity

__all__ = ["_BybitSetup"]


class _BybitSetup(_BybitQueries):
    """Account setup and position modes."""

    # --- account setup and position modes -----------------------------------------------------

    async def setup_account(self, leverage_by_symbol: Mapping[str, int]) -> None:
        """Hedge mode for all USDT contracts, verified per symbol, and leverage per symbol.

        1. ``POST /v5/position/switch-mode`` ``coin=USDT, mode=3``. Neither 0 nor 110025
           ("not modified") proves every symbol switched: symbols with an open position or
           orders stay one-way (110024 / 110028 are not fatal here either).
        2. Every symbol of ``leverage_by_symbol`` (and any verified before) is checked with
           :meth:`verify_position_modes`: switched by symbol if flat, otherwise entries on
           it are refused (journaled, alert), see :attr:`blocked_symbols`.
        3. ``set-leverage`` per symbol (110043 "not modified" is success).

        Raises:
            ValueError: a leverage < 1.
            VenueError: a request failed (other than the mode answers above).
        """
        for symbol, lev in leverage_by_symbol.items():
            if lev < 1:
                raise ValueError(f"{symbol}: leverage must be >= 1, got {lev}")
        try:
            await self.http.call(
                "POST",
                "/v5/position/switch-mode",
                {"category": _CATEGORY, "coin": "USDT", "mode": 3},
                mutating=True,
            )
        except RejectedError as exc:
            if exc.code not in _MODE_BLOCKED_CODES:
                raise
        symbols = sorted(set(leverage_by_symbol) | self._hedge_ok | set(self._mode_blocked))
        self._hedge_ok.clear()
        await self.verify_position_modes(symbols)
        for symbol, lev in sorted(leverage_by_symbol.items()):
            await self.http.call(
                "POST",
                "/v5/position/set-leverage",
                {
                    "category": _CATEGORY,
                    "symbol": symbol,
                    "buyLeverage": str(lev),
                    "sellLeverage": str(lev),
                },
                mutating=True,
            )

    async def verify_position_modes(self, symbols: Sequence[str]) -> dict[str, str]:
        """Check each symbol's position mode from ``/v5/position/list?symbol=`` (hedge
        mode: rows with ``positionIdx`` 1 and 2; one-way: one row with 0).

        A symbol still in one-way mode is switched by symbol (``switch-mode`` with
        ``symbol``) when it has no position and no open order, then checked again;
        otherwise entries on it are refused with a journaled reason and an ``ALERT_RAISED``
        (critical) until a later check (every entry on it re-checks) finds it switchable.

        Returns:
            ``{symbol: "hedge" | reason}``.

        Raises:
            VenueError: a query failed (the symbol's mode stays unverified).
        """
        out: dict[str, str] = {}
        for symbol in symbols:
            reason = await self._ensure_hedge(symbol)
            out[symbol] = reason or HEDGE
        return out

    async def _ensure_hedge(self, symbol: str) -> str | None:
        """None when ``symbol`` is (now) in hedge mode, else why entries must be refused."""
        lock = self._mode_locks.setdefault(symbol, trio.Lock())
        async with lock:
            if symbol in self._hedge_ok:
                return None
            reason = await self._check_mode(symbol)
            if reason is None:
                self._hedge_ok.add(symbol)
                self._one_way.discard(symbol)
                if self._mode_blocked.pop(symbol, None) is not None:
                    self._journal(
                        EventType.ALERT_RAISED,
                        {
                            "reason": "position_mode_resolved",
                            "message": f"{symbol} is in hedge mode now; entries allowed",
                        },
                        Severity.INFO,
                        symbol,
                    )
                return None
            self._one_way.add(symbol)
            if self._mode_blocked.get(symbol) != reason:
                self._journal(
                    EventType.ALERT_RAISED,
                    {
                        "reason": "position_mode_one_way",
                        "message": f"{symbol}: entries refused: {reason}",
                    },
                    Severity.CRITICAL,
                    symbol,
                )
            self._mode_blocked[symbol] = reason
            return reason

    async def _modes_of(self, symbol: str) -> tuple[set[str], bool]:
        rows = await self._position_rows(symbol)
        modes = {position_mode_of(r) for r in rows}
        has_position = any((opt_dec(r, "size") or Decimal(0)) > 0 for r in rows)
        return modes, has_position

    async def _check_mode(self, symbol: str) -> str | None:
        modes, has_position = await self._modes_of(symbol)
        if modes == {HEDGE}:
            return None
        if not modes:
            return "position_mode: unknown (the position list has no row for the symbol)"
        if has_position:
            return "position_mode: one-way with an open position (switch it when flat)"
        if await self._open_order_rows(symbol):
            return "position_mode: one-way with open orders (switch it when they are gone)"
        try:
            await self.http.call(
                "POST",
                "/v5/position/switch-mode",
                {"category": _CATEGORY, "symbol": symbol, "mode": 3},
                mutating=True,
            )
        except RejectedError as exc:
            if exc.code not in _MODE_BLOCKED_CODES:
                raise
            return f"position_mode: one-way, switch refused ({exc.code} {exc.venue_message})"
        modes, _ = await self._modes_of(symbol)
        if modes == {HEDGE}:
            return None
        return f"position_mode: still {'/'.join(sorted(modes))} after switching by symbol"

    async def _entry_allowed(self, symbol: str) -> None:
        why = self._not_tradable.get(symbol)
        if why is not None:
            raise SymbolNotTradable(
                f"bybit {symbol}: entries refused: {why}", code="not_tradable", venue_message=why
            )
        if symbol in self._hedge_ok:
            return
        reason = await self._ensure_hedge(symbol)
        if reason is not None:
            raise SymbolNotTradable(
                f"bybit {symbol}: entries refused: {reason}",
                code="position_mode",
                venue_message=reason,
            )
