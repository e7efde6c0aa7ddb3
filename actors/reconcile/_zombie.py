"""The Reconciler's one write to the venue: cancelling a zombie order (docs/ARCHITECTURE.md
§1 invariant 1, §7).

A zombie is an open order carrying our client-order-id prefix (``tb-<position_id>-…``)
whose position has no live owner: a stop left after a close, a take-profit or aged exit
after flat. No PositionActor owns it, so the stop-ownership rule is not at stake; still,
the Reconciler never holds a :class:`tradebot.ports.StopPort`. It holds this
:class:`ZombieCanceller`, which can do exactly one thing — cancel one order it is handed —
and refuses anything that is not ours (``tests/test_architecture.py`` allows this module,
and only it, its one ``cancel_stop`` call).
"""

from __future__ import annotations

from tradebot.domain import OrderType
from tradebot.ids import parse_client_order_id
from tradebot.ports import ExchangePort, OrderState, StopState

__all__ = ["ZombieCanceller"]


class ZombieCanceller:
    """Cancels zombie orders, nothing else.

    Args:
        port: the account's exchange port (kept private; only :meth:`cancel_zombie` uses
            it).
    """

    def __init__(self, port: ExchangePort) -> None:
        self.__port = port

    async def cancel_zombie(self, order: OrderState) -> None:
        """Cancel ``order`` (a regular order by client id; a conditional/algo stop order
        through the venue's stop cancel, which is the only route to it on Binance).

        Raises:
            ValueError: the order does not carry our client-order-id prefix (foreign orders
                are never touched).
            UnknownOrder: the venue no longer has it (already gone: harmless).
            VenueError: other venue errors (``tradebot.errors`` tree).
        """
        if parse_client_order_id(order.client_order_id) is None:
            raise ValueError(f"not our order: {order.client_order_id!r}")
        if order.order_type is OrderType.STOP_MARKET and order.trigger_price is not None:
            await self.__port.cancel_stop(
                StopState(
                    symbol=order.symbol,
                    position_side=order.position_side,
                    trigger_price=order.trigger_price,
                    client_order_id=order.client_order_id,
                    venue_order_id=order.venue_order_id,
                    qty=order.qty if order.qty > 0 else None,
                )
            )
            return
        await self.__port.cancel_order(order.symbol, order.client_order_id)
