"""Bybit retCode → error tree: the table, and every mapped code end to end over loopback
(the sandbox answers the next request with the code; the adapter must raise the class)."""

from __future__ import annotations

import pytest
import trio
from _bybit_support import D, bybit_env

from adapters.bybit.errors import RET_CODES, SUCCESS_CODES, error_for, http_error_for
from tradebot.domain import PositionSide
from tradebot.errors import (
    DuplicateClientOrderId,
    FatalVenueError,
    InsufficientBalance,
    OrderValidationError,
    OutcomeUnknown,
    RateLimited,
    ReduceOnlyRejected,
    RejectedError,
    SymbolNotTradable,
    TransientError,
    UnknownOrder,
    VenueError,
    WouldTriggerImmediately,
    ZeroPosition,
)
from tradebot.ports import EntryRequest

# (retCode, retMsg, expected class for a mutating request, expected for a read)
EXPECTED: list[tuple[int, str, type[VenueError] | None, type[VenueError] | None]] = [
    (34040, "not modified", None, None),
    (110025, "Position mode is not modified", None, None),
    (110043, "leverage not modified", None, None),
    (10000, "Server Timeout", OutcomeUnknown, TransientError),
    (10001, "params error", RejectedError, RejectedError),
    (10001, "can not set tp/sl/ts for zero position", ZeroPosition, ZeroPosition),
    (
        10001,
        "StopLoss:99 set for Buy position should lower than base_price:98??MarkPrice",
        WouldTriggerImmediately,
        WouldTriggerImmediately,
    ),
    (10002, "invalid request, please check your server timestamp", TransientError, TransientError),
    (10003, "API key is invalid.", FatalVenueError, FatalVenueError),
    (10004, "error sign!", FatalVenueError, FatalVenueError),
    (10005, "Permission denied", FatalVenueError, FatalVenueError),
    (10006, "Too many visits!", RateLimited, RateLimited),
    (10007, "User authentication failed", FatalVenueError, FatalVenueError),
    (10009, "IP has been banned", FatalVenueError, FatalVenueError),
    (10010, "Unmatched IP", FatalVenueError, FatalVenueError),
    (10016, "Server error", OutcomeUnknown, TransientError),
    (10017, "Route not found", FatalVenueError, FatalVenueError),
    (10018, "Exceeded the IP Rate Limit", RateLimited, RateLimited),
    (10027, "Transactions are forbidden", FatalVenueError, FatalVenueError),
    (10029, "Symbol not allowed", SymbolNotTradable, SymbolNotTradable),
    (33004, "API key expired", FatalVenueError, FatalVenueError),
    (110001, "order not exists or too late to cancel", UnknownOrder, UnknownOrder),
    (110003, "Order price is out of permissible range", OrderValidationError, OrderValidationError),
    (110004, "Wallet balance is insufficient", InsufficientBalance, InsufficientBalance),
    (110007, "ab not enough for new order", InsufficientBalance, InsufficientBalance),
    (
        110009,
        "The number of stop orders exceeds the maximum allowable limit",
        RejectedError,
        RejectedError,
    ),
    (110012, "Insufficient available balance", InsufficientBalance, InsufficientBalance),
    (110017, "Reduce-only rule not satisfied", ReduceOnlyRejected, ReduceOnlyRejected),
    (110020, "Not allowed to have more than 500 active orders", RejectedError, RejectedError),
    (110024, "You have an existing position", RejectedError, RejectedError),
    (110028, "You have existing open orders", RejectedError, RejectedError),
    (110040, "The order will trigger a forced liquidation", RejectedError, RejectedError),
    (110060, "TP/SL mode is Full", RejectedError, RejectedError),
    (110061, "Partial TP/SL orders limit", RejectedError, RejectedError),
    (110072, "OrderLinkedID is duplicate", DuplicateClientOrderId, DuplicateClientOrderId),
    (110079, "The order is processing and can not be operated", TransientError, TransientError),
    (
        110092,
        "expect Rising, but trigger_price <= current",
        WouldTriggerImmediately,
        WouldTriggerImmediately,
    ),
    (
        110093,
        "expect Falling, but trigger_price >= current",
        WouldTriggerImmediately,
        WouldTriggerImmediately,
    ),
    (110094, "Order does not meet minimum order value", OrderValidationError, OrderValidationError),
    (999999, "something new", RejectedError, RejectedError),
]


def test_every_table_code_is_covered() -> None:
    tested = {code for code, *_ in EXPECTED}
    assert set(RET_CODES) <= tested, set(RET_CODES) - tested
    assert {0, 34040, 110025, 110043} == SUCCESS_CODES


@pytest.mark.parametrize(("code", "msg", "mutating_cls", "read_cls"), EXPECTED)
def test_error_for_table(
    code: int, msg: str, mutating_cls: type[VenueError] | None, read_cls: type[VenueError] | None
) -> None:
    for mutating, cls in ((True, mutating_cls), (False, read_cls)):
        err = error_for(code, msg, mutating=mutating)
        if cls is None:
            assert err is None
        else:
            assert type(err) is cls
            assert err.code == str(code) and err.venue_message == msg


def test_http_status_mapping() -> None:
    assert isinstance(http_error_for(403, "", mutating=False), RateLimited)
    assert http_error_for(403, "", mutating=False).retry_after_s >= 600  # type: ignore[attr-defined]
    assert type(http_error_for(502, "", mutating=True)) is OutcomeUnknown
    assert type(http_error_for(502, "", mutating=False)) is TransientError
    assert type(http_error_for(401, "", mutating=False)) is FatalVenueError
    assert type(http_error_for(404, "", mutating=False)) is FatalVenueError


@pytest.mark.parametrize(("code", "msg", "mutating_cls", "read_cls"), EXPECTED)
async def test_each_code_over_loopback(
    code: int, msg: str, mutating_cls: type[VenueError] | None, read_cls: type[VenueError] | None
) -> None:
    """A mutating call (entry) and a read (positions) meet ``code`` from the sandbox."""
    with trio.fail_after(10):
        async with bybit_env() as (sb, venue):
            if code == 10002:
                # 10002 is retried once after a re-sync; inject it twice so it surfaces.
                sb.inject("/v5/order/create", ret_code=code, ret_msg=msg, times=2)
            else:
                sb.inject("/v5/order/create", ret_code=code, ret_msg=msg)
            entry = EntryRequest(
                "BTCUSDT", PositionSide.LONG, D("0.010"), f"tb-e-{code}", D("98000")
            )
            if mutating_cls is None:
                ack = await venue.place_entry(entry)  # "not modified": success, no exception
                assert ack.client_order_id == entry.client_order_id
            else:
                with pytest.raises(mutating_cls) as info:
                    await venue.place_entry(entry)
                assert info.value.code == str(code)
            sb.inject(
                "/v5/position/list", ret_code=code, ret_msg=msg, times=2 if code == 10002 else 1
            )
            if read_cls is None:
                await venue.positions("BTCUSDT")
            else:
                with pytest.raises(read_cls):
                    await venue.positions("BTCUSDT")
