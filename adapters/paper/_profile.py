"""Capability profiles of the paper exchange: what it does natively, its fees and its errors.

A profile makes the paper engine behave like one venue family:

* :func:`bybit_like` — Bybit v5 linear: the stop is a *position-level* ``stopLoss``
  (``tpslMode=Full``, ``slTriggerBy=MarkPrice``) attached to the entry and moved in place
  with ``/v5/position/trading-stop``; errors carry Bybit ``retCode`` values.
* :func:`binance_like` — Binance USDⓈ-M after the 2025-12-09 algo migration: the stop is a
  separate algo ``STOP_MARKET`` order (``closePosition=true`` or a quantity) in its own id
  space (``algoId``/``clientAlgoId``), never amended (cancel and replace); errors carry
  Binance codes.

Source of every code: ../shared/reference/exchanges.md sections 2-4 (codes marked
"unverified" there are documented as such below).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

import attrs

from tradebot.errors import (
    DuplicateClientOrderId,
    InsufficientBalance,
    OrderValidationError,
    ReduceOnlyRejected,
    RejectedError,
    SymbolNotTradable,
    UnknownOrder,
    WouldTriggerImmediately,
    ZeroPosition,
)
from tradebot.ports import Capabilities

__all__ = ["ERROR_KEYS", "ErrorSpec", "VenueProfile", "binance_like", "bybit_like"]


@attrs.frozen
class ErrorSpec:
    """How the venue answers one kind of refusal: exception class, code and message."""

    error: type[RejectedError]
    code: str
    message: str


# Every refusal the engine can produce, by key. Profiles map each key to an ErrorSpec.
ERROR_KEYS = (
    "would_trigger_conditional",  # conditional order whose trigger is already crossed
    "would_trigger_position_stop",  # position-level stop on the wrong side of the mark
    "zero_position_stop",  # position-level stop on a flat side
    "insufficient_balance",
    "min_notional",
    "qty_invalid",  # below min qty / not on step / above max
    "price_invalid",  # not on tick / <= 0
    "reduce_only_no_position",
    "reduce_only_exceeds",  # reduce-only qty above position (only when not trimmed)
    "unknown_symbol",
    "symbol_closed",
    "symbol_reduce_only",
    "unknown_order",
    "duplicate_client_id",
    "not_supported",  # method the venue does not have (amend stop on Binance, ...)
    "conditional_on_regular_endpoint",  # Binance -4120
    "no_mark_price",  # paper-only: no mark known for the symbol yet
    "leverage_invalid",
    "too_many_conditional",
)


@attrs.frozen
class VenueProfile:
    """Everything venue-specific the paper engine needs.

    Attributes:
        capabilities: the record the PositionActor adapts to.
        maker_fee_rate: fraction of notional charged on maker fills (0.0002 = 0.02%).
        taker_fee_rate: fraction of notional charged on taker fills.
        market_slippage_bps: adverse slippage applied to market fills (buy up, sell down),
            in basis points of the mark; 0 by default. The fill price is rounded to the
            tick in the adverse direction.
        default_leverage: leverage of a symbol until ``set_leverage`` (1..max_leverage).
        max_leverage: largest accepted leverage.
        position_level_stop: the protective stop lives on the position (Bybit trading-stop)
            instead of being an order.
        conditional_orders_are_algo: conditional (trigger) orders live in a separate id
            space (Binance algo service); placing one as a regular order fails with
            ``conditional_on_regular_endpoint``.
        reduce_only_trims: a reduce-only order larger than the position is trimmed to the
            position (Bybit) instead of rejected (Binance -2022).
        client_id_unique_among_open_only: duplicate client ids are refused only while the
            first order is still open (Binance ``newClientOrderId``: "unique among open
            orders"); otherwise any earlier use is a duplicate (Bybit ``orderLinkId``).
        cancel_reduce_only_on_flat: when a position side goes flat, its open reduce-only
            and close-position orders are cancelled by the venue. False leaves them for the
            owner to clean up (Binance algo stops are not documented to auto-cancel: we
            choose the harsher behaviour so zombie cleanup is exercised).
        maintenance_margin_rate: fraction of notional; sets the liquidation price.
        liquidation: model liquidation (isolated-margin approximation, see the engine).
        stop_requires_position: a close-position stop on a flat side is refused
            (``zero_position_stop``). Binance behaviour is unverified (reference section 3):
            the binance-like default accepts it; set True to test the other outcome.
        errors: refusal key → ErrorSpec (see ``ERROR_KEYS``).
    """

    capabilities: Capabilities
    maker_fee_rate: Decimal
    taker_fee_rate: Decimal
    errors: Mapping[str, ErrorSpec]
    market_slippage_bps: Decimal = Decimal(0)
    default_leverage: int = 10
    max_leverage: int = 100
    position_level_stop: bool = False
    conditional_orders_are_algo: bool = False
    reduce_only_trims: bool = True
    client_id_unique_among_open_only: bool = False
    cancel_reduce_only_on_flat: bool = True
    stop_requires_position: bool = False
    maintenance_margin_rate: Decimal = Decimal("0.005")
    liquidation: bool = True

    @property
    def venue(self) -> str:
        return self.capabilities.venue

    def error(self, key: str, detail: str = "") -> RejectedError:
        """Build the venue's exception for refusal ``key`` (with ``code`` set).

        Raises:
            KeyError: for a key not in ``ERROR_KEYS`` (a programming error).
        """
        spec = self.errors[key]
        msg = spec.message if not detail else f"{spec.message} ({detail})"
        return spec.error(f"[{spec.code}] {msg}", code=spec.code, venue_message=msg)


def _spec(error: type[RejectedError], code: str, message: str) -> ErrorSpec:
    return ErrorSpec(error=error, code=code, message=message)


# Bybit v5 retCodes (reference section 4). 110074 ("contract is not live") is our
# best knowledge of Bybit's closed-symbol code; marked unverified.
_BYBIT_ERRORS: dict[str, ErrorSpec] = {
    "would_trigger_conditional": _spec(
        WouldTriggerImmediately, "110092", "expect Falling, but trigger_price[...] >= current[...]"
    ),
    "would_trigger_position_stop": _spec(
        WouldTriggerImmediately,
        "10001",
        "StopLoss set for the position should be on the protective side of base_price",
    ),
    "zero_position_stop": _spec(ZeroPosition, "10001", "can not set tp/sl/ts for zero position"),
    "insufficient_balance": _spec(InsufficientBalance, "110007", "ab not enough for new order"),
    "min_notional": _spec(
        OrderValidationError, "110094", "Order does not meet minimum order value"
    ),
    "qty_invalid": _spec(OrderValidationError, "10001", "Qty invalid"),
    "price_invalid": _spec(OrderValidationError, "10001", "Price invalid"),
    "reduce_only_no_position": _spec(
        ReduceOnlyRejected, "110017", "current position is zero, cannot fix reduce-only order qty"
    ),
    "reduce_only_exceeds": _spec(
        ReduceOnlyRejected, "110017", "reduce-only order qty exceeds position"
    ),
    "unknown_symbol": _spec(SymbolNotTradable, "10001", "params error: symbol invalid"),
    "symbol_closed": _spec(
        SymbolNotTradable, "110074", "This contract is not live (unverified code)"
    ),
    "symbol_reduce_only": _spec(
        SymbolNotTradable, "110074", "symbol only allows reduce-only orders (unverified code)"
    ),
    "unknown_order": _spec(UnknownOrder, "110001", "order not exists or too late to cancel"),
    "duplicate_client_id": _spec(DuplicateClientOrderId, "110072", "OrderLinkedID is duplicate"),
    "not_supported": _spec(RejectedError, "10001", "not supported by this venue"),
    "conditional_on_regular_endpoint": _spec(RejectedError, "10001", "params error"),
    "no_mark_price": _spec(RejectedError, "paper_no_mark", "no mark price for symbol yet"),
    "leverage_invalid": _spec(RejectedError, "10001", "leverage invalid"),
    "too_many_conditional": _spec(RejectedError, "110009", "too many stop orders"),
}

# Binance USDⓈ-M codes (reference section 4).
_BINANCE_ERRORS: dict[str, ErrorSpec] = {
    "would_trigger_conditional": _spec(
        WouldTriggerImmediately, "-2021", "Order would immediately trigger."
    ),
    "would_trigger_position_stop": _spec(
        WouldTriggerImmediately, "-2021", "Order would immediately trigger."
    ),
    "zero_position_stop": _spec(ZeroPosition, "-2022", "ReduceOnly Order is rejected."),
    "insufficient_balance": _spec(InsufficientBalance, "-2019", "Margin is insufficient."),
    "min_notional": _spec(
        OrderValidationError, "-4164", "Order's notional must be no smaller than the minimum"
    ),
    "qty_invalid": _spec(OrderValidationError, "-1013", "Filter failure: LOT_SIZE"),
    "price_invalid": _spec(OrderValidationError, "-1013", "Filter failure: PRICE_FILTER"),
    "reduce_only_no_position": _spec(ReduceOnlyRejected, "-2022", "ReduceOnly Order is rejected."),
    "reduce_only_exceeds": _spec(ReduceOnlyRejected, "-2022", "ReduceOnly Order is rejected."),
    "unknown_symbol": _spec(SymbolNotTradable, "-1121", "Invalid symbol."),
    "symbol_closed": _spec(
        SymbolNotTradable, "-4140", "Invalid symbol status for opening position."
    ),
    "symbol_reduce_only": _spec(
        SymbolNotTradable, "-4140", "Invalid symbol status for opening position."
    ),
    "unknown_order": _spec(UnknownOrder, "-2011", "Unknown order sent."),
    "duplicate_client_id": _spec(DuplicateClientOrderId, "-4116", "ClientOrderId is duplicated."),
    "not_supported": _spec(
        RejectedError, "-4120", "untriggered conditional orders cannot be modified"
    ),
    "conditional_on_regular_endpoint": _spec(
        RejectedError,
        "-4120",
        "Order type not supported for this endpoint. Please use the Algo Order API endpoints instead.",
    ),
    "no_mark_price": _spec(RejectedError, "paper_no_mark", "no mark price for symbol yet"),
    "leverage_invalid": _spec(RejectedError, "-4028", "Leverage is not valid"),
    "too_many_conditional": _spec(RejectedError, "-4045", "Reach max stop order limit."),
}


def bybit_like(
    *,
    maker_fee_rate: Decimal = Decimal("0.0002"),
    taker_fee_rate: Decimal = Decimal("0.00055"),
    market_slippage_bps: Decimal = Decimal(0),
    default_leverage: int = 10,
    liquidation: bool = True,
) -> VenueProfile:
    """Bybit-v5-linear-like profile (VIP0 fees 0.02% maker / 0.055% taker).

    ``capabilities``: venue ``paper-bybit``, attached stop, amend in place, no stop client id.
    """
    return VenueProfile(
        capabilities=Capabilities(
            venue="paper-bybit",
            attached_stop=True,
            amend_stop=True,
            stop_has_client_id=False,
            max_conditional_per_symbol=10,
        ),
        maker_fee_rate=maker_fee_rate,
        taker_fee_rate=taker_fee_rate,
        market_slippage_bps=market_slippage_bps,
        default_leverage=default_leverage,
        max_leverage=100,
        errors=_BYBIT_ERRORS,
        position_level_stop=True,
        conditional_orders_are_algo=False,
        reduce_only_trims=True,
        client_id_unique_among_open_only=False,
        cancel_reduce_only_on_flat=True,
        stop_requires_position=True,
        liquidation=liquidation,
    )


def binance_like(
    *,
    maker_fee_rate: Decimal = Decimal("0.0002"),
    taker_fee_rate: Decimal = Decimal("0.0005"),
    market_slippage_bps: Decimal = Decimal(0),
    default_leverage: int = 10,
    stop_requires_position: bool = False,
    liquidation: bool = True,
) -> VenueProfile:
    """Binance-USDⓈ-M-like profile (VIP0 fees 0.02% maker / 0.05% taker).

    ``capabilities``: venue ``paper-binance``, no attached stop, no amend, stops are algo
    orders with ``clientAlgoId``; conditional cap 200 across symbols is modelled per symbol
    as 10 like Bybit (enough for our one-stop-per-position design).
    """
    return VenueProfile(
        capabilities=Capabilities(
            venue="paper-binance",
            attached_stop=False,
            amend_stop=False,
            stop_has_client_id=True,
            max_conditional_per_symbol=10,
        ),
        maker_fee_rate=maker_fee_rate,
        taker_fee_rate=taker_fee_rate,
        market_slippage_bps=market_slippage_bps,
        default_leverage=default_leverage,
        max_leverage=125,
        errors=_BINANCE_ERRORS,
        position_level_stop=False,
        conditional_orders_are_algo=True,
        reduce_only_trims=False,
        client_id_unique_among_open_only=True,
        cancel_reduce_only_on_flat=False,
        stop_requires_position=stop_requires_position,
        liquidation=liquidation,
    )
