"""The PositionActor's messages, its status reply and the open ticket.

Consumes (what the actor's mailbox accepts — :data:`PositionMessage` is the union of ALL of
them, the internal timer :class:`_ManageTick` included):

* :class:`MarkChanged` — posted by a listener on the symbol's ``LatestValue[MarkPrice]``
  cell whenever it changes (conflated: at most one pending; the handler reads the newest);
* :class:`AccountEventMsg` — order/fill/position updates routed by the AccountRouter;
* :class:`VerifyProtection` — periodic timer, stream gaps, reconciler findings;
* :class:`AgeTick` — the aged-exit clock (timer);
* :class:`_ManageTick` — the periodic verification with the aged clock folded in (timer);
* :class:`Close` — operator / shutdown policy; replies a :class:`PositionStatus`;
* :class:`Query` — replies a :class:`PositionStatus`.

Emits: nothing (values only). Owns: nothing.
"""

from __future__ import annotations

import typing
from datetime import datetime
from decimal import Decimal

import attrs
import trio

from tradebot.domain import PositionSide
from tradebot.policies import TrailingState
from tradebot.ports import AccountEvent, OpenOutcome, OpenRequest

from ._lifecycle import Lifecycle

__all__ = [
    "MESSAGE_TYPES",
    "AccountEventMsg",
    "AgeTick",
    "Close",
    "MarkChanged",
    "OpenTicket",
    "PositionMessage",
    "PositionStatus",
    "Query",
    "VerifyProtection",
    "_ManageTick",
]


@attrs.frozen
class MarkChanged:
    """The symbol's mark-price cell changed (the actor reads the newest value itself)."""


@attrs.frozen
class AccountEventMsg:
    """An order/fill/position/stream-gap event for this position."""

    event: AccountEvent


@attrs.frozen
class VerifyProtection:
    """Check the stop on the exchange and repair it. ``reason``: ``"periodic"``,
    ``"stream_gap"``, ``"reconciler"``, ``"recovered"``, ..."""

    reason: str = "periodic"


@attrs.frozen
class AgeTick:
    """Re-evaluate the aged-exit schedule."""


@attrs.frozen
class _ManageTick:
    """Timer (internal): the periodic stop verification with the aged-exit clock folded in.

    Used when ``execution.age_tick_s`` is a whole multiple of
    ``protection.verify_interval_s`` (the defaults: 60 s and 30 s): one timer task and one
    message per verification instead of two timers that fire together anyway.
    """


@attrs.frozen
class Close:
    """Close the position at market (reduce-only) and end the actor; ``reason`` is journaled.

    ``fraction`` (None = all): a reduce-only partial close of ``fraction`` of the current
    quantity, in (0, 1], floored to the instrument's quantity step. The actor stays ACTIVE
    and keeps its stop; a part below ``min_qty`` is refused (journaled ``order.rejected``);
    a remainder below ``min_qty`` closes the whole position instead. Only an ACTIVE position
    is partially closed (any other state: nothing happens, the status says why not).
    """

    reason: str
    fraction: Decimal | None = attrs.field(default=None)

    @fraction.validator
    def _check_fraction(self, _attribute: object, value: Decimal | None) -> None:
        if value is not None and not (Decimal(0) < value <= Decimal(1)):
            raise ValueError(f"Close.fraction must be in (0, 1] (got {value})")


@attrs.frozen
class Query:
    """Ask for a :class:`PositionStatus`."""


PositionMessage = (
    MarkChanged | AccountEventMsg | VerifyProtection | AgeTick | _ManageTick | Close | Query
)
"""Every message a PositionActor handles."""

MESSAGE_TYPES: tuple[type, ...] = typing.get_args(PositionMessage)
"""The classes of :data:`PositionMessage` (anything else is journaled as unknown)."""


@attrs.frozen
class PositionStatus:
    """A snapshot of the actor's view (reply to :class:`Query`).

    Prices in USDT, quantities in base units, times aware UTC. ``stop_verified_at``: the
    last verification (this incarnation) that found the stop in place on the exchange,
    journaled or quiet (None: none yet).
    """

    position_id: str
    symbol: str
    position_side: PositionSide
    lifecycle: Lifecycle
    qty: Decimal
    filled_qty: Decimal
    entry_price: Decimal | None
    stop_price: Decimal | None
    stop_client_order_id: str
    trailing: TrailingState
    tp_levels_done: frozenset[int]
    aged_exit_price: Decimal | None
    opened_at: datetime | None
    mark_price: Decimal | None
    close_reason: str
    stop_verified_at: datetime | None = None


@attrs.define
class OpenTicket:
    """Hand-off between the opener and the actor that opens the position.

    The actor calls :meth:`resolve` exactly once, when the position is ACTIVE or definitively
    not opened. A restarted actor gets the same ticket and resolves it after recovery.
    """

    request: OpenRequest
    done: trio.Event = attrs.Factory(trio.Event)
    outcome: OpenOutcome | None = None

    def resolve(self, outcome: OpenOutcome) -> None:
        if self.outcome is None:
            self.outcome = outcome
            self.done.set()

    async def wait(self) -> OpenOutcome:
        await self.done.wait()
        assert self.outcome is not None
        return self.outcome
