"""Payloads of entries, stops, orders, fills and exchange requests.

Projected: ENTRY_INTENT → ``positions`` + the entry ``orders`` row; the stop events →
``positions.stop_price`` and the stop's ``orders`` row; the order events → ``orders``
status; FILL → ``fills`` (+ order fill state, position exit price / PnL / fees).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import attrs

from tradebot.domain import OrderRole, OrderStatus, PositionSide, Side
from tradebot.events._base import Payload, PositionScoped, payload
from tradebot.events._catalog import EventType as E

__all__ = [
    "ClockResynced",
    "EmergencyStopPlaced",
    "EntryAcked",
    "EntryFilled",
    "EntryIntent",
    "EntryOutcomeUnknown",
    "EntryPartialFill",
    "EntryRejected",
    "EntryResolved",
    "EntrySubmitted",
    "ExchangeError",
    "ExchangeRequest",
    "ExchangeResponse",
    "FillRecorded",
    "Funding",
    "OrderCancelled",
    "OrderIntent",
    "OrderRejected",
    "OrderSubmitted",
    "OrderUpdated",
    "RateLimitHit",
    "StopCancelled",
    "StopConfirmed",
    "StopGapFill",
    "StopIntent",
    "StopMoved",
    "StopPlaced",
    "StopRejected",
    "StopRetry",
    "StopTriggered",
]

# Events of one order carry its client order id in ``Event.client_order_id``.

# -- entries ------------------------------------------------------------------------------


@payload(E.ENTRY_INTENT)
@attrs.frozen(kw_only=True)
class EntryIntent(PositionScoped):
    """The intent to open (durable before any exchange call; docs/ARCHITECTURE.md §4).

    The event's ``position_id``, ``symbol`` and ``client_order_id`` (the entry's) are set.

    Attributes:
        qty: the entry's quantity, base units (> 0).
        reference_price: the mark price used for sizing, USDT.
        intended_stop: the initial stop price, USDT.
        stop_client_order_id: the first stop order's client order id.
        signal_id / wave_ts: the signal and wave that opened it.
        score_week / score_month: the signal's scores.
        attached_stop: the stop rides on the entry order (Bybit ``stopLoss``).
        venue: the venue (``"bybit"``, ``"binance"``, ``"paper"`` ...).
        account: config ``bot.account`` ("" = ``default``).
    """

    qty: Decimal
    reference_price: Decimal
    intended_stop: Decimal
    stop_client_order_id: str = ""
    signal_id: str = ""
    wave_ts: datetime | None = None
    score_week: Decimal | None = None
    score_month: Decimal | None = None
    attached_stop: bool = False
    venue: str = ""
    account: str = ""


@payload(E.ENTRY_SUBMITTED)
@attrs.frozen(kw_only=True)
class EntrySubmitted(PositionScoped):
    """The entry order goes to the venue: ``qty`` base units, the attached ``stop_price``
    (USDT) where the venue takes one on the entry (Bybit), else None."""

    qty: Decimal
    stop_price: Decimal | None = None


@payload(E.ENTRY_ACKED)
@attrs.frozen(kw_only=True)
class EntryAcked(PositionScoped):
    """The venue answered the entry: its ``status`` and ``venue_order_id``."""

    status: OrderStatus
    venue_order_id: str = ""


@payload(E.ENTRY_FILLED)
@attrs.frozen(kw_only=True)
class EntryFilled(PositionScoped):
    """The entry filled: ``filled_qty`` of ``requested_qty`` (base units) at
    ``avg_fill_price`` (USDT; the reference price when the venue gave none)."""

    filled_qty: Decimal
    requested_qty: Decimal
    avg_fill_price: Decimal | None = None


@payload(E.ENTRY_PARTIAL_FILL)
@attrs.frozen(kw_only=True)
class EntryPartialFill(EntryFilled):
    """Part of the entry filled; ``still_working``: the rest is still on the book (the
    filled part is protected at once)."""

    still_working: bool = False


@payload(E.ENTRY_REJECTED)
@attrs.frozen(kw_only=True)
class EntryRejected(PositionScoped):
    """The entry was refused: by the position supervisor's precheck (``reason``, ``qty``)
    or by the venue (``error``, its ``code``, e.g. ``"110007"``)."""

    reason: str = ""
    error: str = ""
    code: str = ""
    qty: Decimal | None = None


@payload(E.ENTRY_OUTCOME_UNKNOWN)
@attrs.frozen(kw_only=True)
class EntryOutcomeUnknown(PositionScoped):
    """No answer for the entry (timeout/5xx after sending): it is looked up by client id,
    never resubmitted (docs/ARCHITECTURE.md §1 invariant 4)."""

    error: str


@payload(E.ENTRY_RESOLVED)
@attrs.frozen(kw_only=True)
class EntryResolved(PositionScoped):
    """An entry of unknown outcome was looked up by client order id.

    Attributes:
        found: the venue has the order; status: its status (None when not found).
        via: ``lookup_while_pending`` when found while the submission still waited.
        after: ``restart`` when resolved by a restarted actor.
        error: why the order lookup failed when ``via`` is ``position_list`` (no order list
            showed the entry, the side holds its position).
    """

    found: bool
    status: OrderStatus | None = None
    via: str = ""
    after: str = ""
    error: str = ""


# -- stops ----------------------------------------------------------------------------------


@payload(E.STOP_INTENT)
@attrs.frozen(kw_only=True)
class StopIntent(PositionScoped):
    """A stop is about to be placed or moved (durable first).

    ``client_order_id`` of the event: the new stop order's (absent for a position-level
    stop, Bybit trading-stop).

    Attributes:
        stop_price: the trigger price (mark price), USDT.
        reason: ``initial``, ``trailing:...``, ``repair:...``, ``emergency`` ...
        attempt: placement attempt (1 = first), for a new stop.
        old_stop_price: the stop it replaces (an amend in place), USDT.
    """

    stop_price: Decimal
    reason: str
    attempt: int | None = None
    old_stop_price: Decimal | None = None


@payload(E.STOP_PLACED)
@attrs.frozen(kw_only=True)
class StopPlaced(PositionScoped):
    """A new stop is live at ``stop_price`` (USDT); the venue's ids of the stop order
    (``venue_algo_id``: Binance algo orders' ``algoId``)."""

    stop_price: Decimal
    reason: str = ""
    venue_order_id: str = ""
    venue_algo_id: str = ""


@payload(E.STOP_CONFIRMED)
@attrs.frozen(kw_only=True)
class StopConfirmed(PositionScoped):
    """The initial stop is confirmed on the venue for ``qty`` (base units): the position
    is ACTIVE. ``stop_price`` in USDT."""

    stop_price: Decimal | None
    qty: Decimal


@payload(E.STOP_REJECTED)
@attrs.frozen(kw_only=True)
class StopRejected(PositionScoped):
    """A stop (or a move of it) was refused; the old stop stays in force.

    Attributes:
        reason: ``would_trigger_immediately`` (Bybit 110092/110093, Binance -2021),
            ``amend_failed``, ``replace_failed``, ``early_stop_failed`` ...
        error / code: the venue error and its code.
        stop_price: the refused price, USDT.
    """

    reason: str
    error: str = ""
    code: str = ""
    stop_price: Decimal | None = None


@payload(E.STOP_RETRY)
@attrs.frozen(kw_only=True)
class StopRetry(PositionScoped):
    """Placing a stop failed transiently; attempt ``attempt`` is retried after
    ``retry_in_s`` seconds."""

    attempt: int
    error: str
    code: str = ""
    retry_in_s: float | None = None


@payload(E.STOP_MOVED)
@attrs.frozen(kw_only=True)
class StopMoved(PositionScoped):
    """The live stop moved from ``old_stop_price`` to ``stop_price`` (USDT; never looser,
    docs/ARCHITECTURE.md §1 invariant 3)."""

    stop_price: Decimal
    old_stop_price: Decimal | None = None
    reason: str = ""
    venue_order_id: str = ""
    venue_algo_id: str = ""


@payload(E.STOP_CANCELLED)
@attrs.frozen(kw_only=True)
class StopCancelled(PositionScoped):
    """A stop order was cancelled (replaced, or left over after the close)."""

    stop_price: Decimal | None = None


@payload(E.STOP_TRIGGERED)
@attrs.frozen(kw_only=True)
class StopTriggered(PositionScoped):
    """The stop at ``stop_price`` (USDT) triggered and the position is flat."""

    stop_price: Decimal | None = None


@payload(E.STOP_GAP_FILL)
@attrs.frozen(kw_only=True)
class StopGapFill(Payload):
    """A stop filled worse than its trigger price by more than the bound (an incident of
    the run report; journaled by the AccountRouter next to the fill's ``order.fill``).

    Attributes:
        position_side: the side the stop protected.
        trigger_price / fill_price: USDT.
        slippage_pct: how much worse than the trigger, percent of the trigger (> bound).
        bound_pct: the bound (``tradebot.price_checks.DEFAULT_GAP_FILL_PCT`` by default).
        qty: base units filled; trade_id: the venue's execution id.
        fill_ts: the venue's execution time (aware UTC).
    """

    position_side: PositionSide
    trigger_price: Decimal
    fill_price: Decimal
    slippage_pct: Decimal
    bound_pct: Decimal
    qty: Decimal
    trade_id: str = ""
    fill_ts: datetime | None = None


@payload(E.EMERGENCY_STOP_PLACED)
@attrs.frozen(kw_only=True)
class EmergencyStopPlaced(PositionScoped):
    """The wide emergency stop (flatten failed): ``placed`` false = it failed too
    (``error``), the position is unprotected and a critical alert follows."""

    stop_price: Decimal | None = None
    placed: bool = True
    error: str = ""


# -- orders and fills -------------------------------------------------------------------------


@payload(E.ORDER_INTENT)
@attrs.frozen(kw_only=True)
class OrderIntent(PositionScoped):
    """A reduce-only order is about to be sent (durable first).

    Attributes:
        role: CLOSE (market), TAKE_PROFIT (market) or AGED_EXIT (limit at ``price``).
        qty: base units.
        price: the limit price, USDT (None = market).
        reason: why (close reason).
        level: the take-profit level (0-based).
        mark_price: the mark price that made it due, USDT.
        phase: the aged-exit phase (``BREAKEVEN``, ``STEPPING``).
    """

    role: OrderRole
    qty: Decimal
    price: Decimal | None = None
    reason: str = ""
    level: int | None = None
    mark_price: Decimal | None = None
    phase: str = ""


@payload(E.ORDER_SUBMITTED)
@attrs.frozen(kw_only=True)
class OrderSubmitted(PositionScoped):
    """An order was sent; the venue's ids when already known."""

    venue_order_id: str = ""
    venue_algo_id: str = ""


@payload(E.ORDER_UPDATE)
@attrs.frozen(kw_only=True)
class OrderUpdated(PositionScoped):
    """An order changed on the venue (private stream).

    Attributes:
        status: the new status; filled_qty: filled so far, base units.
        unrouted: the AccountRouter found no owner for this account event (its class
            name); status is then None.
    """

    status: OrderStatus | None = None
    filled_qty: Decimal | None = None
    unrouted: str = ""


@payload(E.ORDER_CANCELLED)
@attrs.frozen(kw_only=True)
class OrderCancelled(PositionScoped):
    """An order (take-profit, aged exit ...) was cancelled."""


@payload(E.ORDER_REJECTED)
@attrs.frozen(kw_only=True)
class OrderRejected(PositionScoped):
    """An order was refused (``error``, ``code``), or a message could not be handled
    (``reason`` = ``unknown_message``, ``message`` its repr). ``level``: a take-profit's."""

    error: str = ""
    code: str = ""
    reason: str = ""
    message: str = ""
    level: int | None = None


@payload(E.FILL)
@attrs.frozen(kw_only=True)
class FillRecorded(Payload):
    """One execution of the account, journaled once by the AccountRouter.

    The event's ``client_order_id`` is ours ("" for an order the venue generated: a
    triggered position-level stop, a liquidation), ``position_id`` the owner when known.

    Attributes:
        qty: base units (> 0); price: USDT (> 0).
        fee_usdt: > 0 a cost, < 0 a rebate.
        side / position_side: the order's side and the position side it belongs to.
        trade_id: the venue's execution id; venue_order_id: the venue's order id.
        is_maker: maker (limit resting) or taker.
        reason: "", ``stop``, ``liquidation``, ``adl`` or ``funding``.
        realized_pnl_usdt: the venue's realized PnL of this execution, when it reports one.
        fill_ts: the venue's execution time (aware UTC).
        trigger_price: on a stop's fill, the stop's trigger price (USDT).
        slippage_pct: on a stop's fill, how much worse than the trigger it filled, percent
            of the trigger (<= 0: at or better).
    """

    qty: Decimal
    price: Decimal
    fee_usdt: Decimal
    side: Side
    position_side: PositionSide
    trade_id: str
    venue_order_id: str = ""
    is_maker: bool = False
    reason: str = ""
    realized_pnl_usdt: Decimal | None = None
    fill_ts: datetime | None = None
    trigger_price: Decimal | None = None
    slippage_pct: Decimal | None = None


@payload(E.FUNDING)
@attrs.frozen(kw_only=True)
class Funding(PositionScoped):
    """A funding payment: ``amount_usdt`` > 0 paid, < 0 received; ``funding_rate`` per
    interval (a fraction), ``mark_price`` in USDT, ``qty`` the position size (base)."""

    amount_usdt: Decimal
    funding_rate: Decimal | None = None
    mark_price: Decimal | None = None
    qty: Decimal | None = None


# -- exchange requests (adapters) -------------------------------------------------------------


@payload(E.EXCHANGE_REQUEST)
@attrs.frozen(kw_only=True)
class ExchangeRequest(Payload):
    """A REST request about to be sent (``params`` with secrets redacted)."""

    request_id: str
    venue: str
    method: str
    path: str
    params: Mapping[str, Any] = attrs.field(factory=dict)
    priority: str = ""  # the rate budget's class (PROTECTIVE, ENTRY, QUERY ...), if any


@payload(E.EXCHANGE_RESPONSE)
@attrs.frozen(kw_only=True)
class ExchangeResponse(Payload):
    """The venue's answer to a request.

    Attributes:
        ret_code / ret_msg: the envelope's code and message (data keys ``retCode``,
            ``retMsg``: Bybit v5's names).
        result: the reply's result as journaled (bulky market-data lists summarized); any
            JSON value.
        latency_ms: round trip, milliseconds.
    """

    request_id: str
    venue: str
    path: str
    ret_code: int | None = attrs.field(default=None, metadata={"key": "retCode"})
    ret_msg: str = attrs.field(default="", metadata={"key": "retMsg"})
    result: Any = None
    status: int | None = None  # HTTP status (Binance replies carry no envelope code)
    used_weight_1m: str | None = None  # Binance X-MBX-USED-WEIGHT-1M header, as sent
    order_count_10s: str | None = None  # Binance X-MBX-ORDER-COUNT-10S header, as sent
    latency_ms: float | None = None


@payload(E.EXCHANGE_ERROR)
@attrs.frozen(kw_only=True)
class ExchangeError(PositionScoped):
    """A venue call or stream failed. Three emitters: the REST client (``request_id``,
    ``path``, ``code``, ``venue_message``, ``ret_code``, ``latency_ms``), the WebSocket
    streams (``stream``, ``url``, ``frame`` or ``reply``) and the PositionActor's retries
    (``what``, ``attempt``, ``retry_in_s``).

    Attributes:
        error: the error (class name, or a short description).
        message: the full error text.
        code: our error code (the venue's code as a string, ``network``, ``http_503``).
        venue_message: the venue's own message.
        ret_code: the envelope's code (data key ``retCode``).
        latency_ms: round trip, milliseconds.
        frame: the start of an unparsable frame; reply: a refused subscription's reply.
        what: the operation retried (``place_entry``, ``positions``, ``verify`` ...).
        attempt: the failed attempt (1 = first); retry_in_s: the wait before the next.
    """

    error: str
    message: str = ""
    code: str = ""
    venue: str = ""
    request_id: str = ""
    path: str = ""
    venue_message: str = ""
    ret_code: int | None = attrs.field(default=None, metadata={"key": "retCode"})
    latency_ms: float | None = None
    stream: str = ""
    url: str = ""
    frame: str = ""
    reply: Mapping[str, Any] | None = None
    what: str = ""
    attempt: int | None = None
    retry_in_s: float | None = None
    status: int | None = None  # HTTP status, when the failure came with one


@payload(E.CLOCK_RESYNC)
@attrs.frozen(kw_only=True)
class ClockResynced(Payload):
    """The venue clock offset was measured (Bybit ``GET /v5/market/time``), milliseconds:
    the old and new offset (venue − local) and the request's round trip."""

    old_offset_ms: int
    offset_ms: int
    rtt_ms: int
    venue: str = ""


@payload(E.RATE_LIMITED)
@attrs.frozen(kw_only=True)
class RateLimitHit(Payload):
    """The venue rate-limited a request; retry after ``retry_after_s`` seconds (from
    ``X-Bapi-Limit-Reset-Timestamp`` when given)."""

    request_id: str
    path: str
    retry_after_s: float | None = None
    venue: str = ""
    status: int | None = None  # HTTP status (Binance 429 / 418)
    used_weight_1m: str | None = None  # Binance X-MBX-USED-WEIGHT-1M header, as sent
