"""Bybit retCode → error tree: the table, and every mapped code end to end over loopback
(the sandbox answers the next request with the code; the adapter must raise the class)."""

from __future__ import annotations

import pytest
import trio
from _bybit_support import D, bybit_env

from adapters.bybit.errors import (
    RESYNC_CODES,
    RET_CODES,
    SUCCESS_CODES,
    VERIFY_CODES,
    Action,
    error_for,
    http_error_for,
    is_position_mode_mismatch,
)
from tradebot.domain import PositionSide
from tradebot.errors import (
    DuplicateClientOrderId,
    FatalVenueError,
    InsufficientBalance,
    OrderAlreadyFinal,
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

# (retCode, retMsg, expected class for a mutating request, expected for a read).
# retMsg None = the doc text of the table row (the reply the venue documents).
EXPECTED: list[tuple[int, str | None, type[VenueError] | None, type[VenueError] | None]] = [
    # "not modified": no exception (34040 / 110025 are checked by the caller, see
    # test_trading_stop_34040_is_success_only_when_the_position_shows_it)
    (34040, None, None, None),
    (110025, None, None, None),
    (110043, None, None, None),
    # clock: re-sync and retry once, then surface as transient
    (10002, None, TransientError, TransientError),
    (-1, None, TransientError, TransientError),
    # retry after a delay
    (429, None, RateLimited, RateLimited),
    (10006, None, RateLimited, RateLimited),
    (10018, None, RateLimited, RateLimited),
    (110079, None, TransientError, TransientError),
    (
        110063,
        "Settlement in progress! BTCUSDT not available for trading",
        TransientError,
        TransientError,
    ),
    # outcome unknown for writes, transient for reads
    (10000, None, OutcomeUnknown, TransientError),
    (10016, None, OutcomeUnknown, TransientError),
    (10014, None, OutcomeUnknown, TransientError),
    # order already final: look it up
    (110008, None, OrderAlreadyFinal, OrderAlreadyFinal),
    (110010, None, OrderAlreadyFinal, OrderAlreadyFinal),
    # insufficient balance: stop new entries
    (110004, None, InsufficientBalance, InsufficientBalance),
    (110006, None, InsufficientBalance, InsufficientBalance),
    (110007, None, InsufficientBalance, InsufficientBalance),
    (110012, None, InsufficientBalance, InsufficientBalance),
    (110044, None, InsufficientBalance, InsufficientBalance),
    (110045, None, InsufficientBalance, InsufficientBalance),
    # symbol not tradable: block the instrument
    (10029, None, SymbolNotTradable, SymbolNotTradable),
    (110023, None, SymbolNotTradable, SymbolNotTradable),
    (110042, None, SymbolNotTradable, SymbolNotTradable),
    (110066, None, SymbolNotTradable, SymbolNotTradable),
    (110074, None, SymbolNotTradable, SymbolNotTradable),
    (30228, None, SymbolNotTradable, SymbolNotTradable),
    # fatal: safe mode
    (10003, None, FatalVenueError, FatalVenueError),
    (10004, None, FatalVenueError, FatalVenueError),
    (10005, None, FatalVenueError, FatalVenueError),
    (10007, None, FatalVenueError, FatalVenueError),
    (10008, None, FatalVenueError, FatalVenueError),
    (10009, None, FatalVenueError, FatalVenueError),
    (10010, None, FatalVenueError, FatalVenueError),
    (10017, None, FatalVenueError, FatalVenueError),
    (10024, None, FatalVenueError, FatalVenueError),
    (10027, None, FatalVenueError, FatalVenueError),
    (10028, None, FatalVenueError, FatalVenueError),
    (33004, None, FatalVenueError, FatalVenueError),
    # definitive refusals
    (10001, "params error", RejectedError, RejectedError),
    (10001, "position idx not match position mode", RejectedError, RejectedError),
    (10001, "can not set tp/sl/ts for zero position", ZeroPosition, ZeroPosition),
    (
        10001,
        "StopLoss:99 set for Buy position should lower than base_price:98??MarkPrice",
        WouldTriggerImmediately,
        WouldTriggerImmediately,
    ),
    (
        10001,
        "The number of contracts exceeds maximum limit allowed: too large",
        OrderValidationError,
        OrderValidationError,
    ),
    (110001, None, UnknownOrder, UnknownOrder),
    (110003, None, OrderValidationError, OrderValidationError),
    (110009, None, RejectedError, RejectedError),
    (110017, None, ReduceOnlyRejected, ReduceOnlyRejected),
    (110020, None, RejectedError, RejectedError),
    (110024, None, RejectedError, RejectedError),
    (110028, None, RejectedError, RejectedError),
    (110040, None, RejectedError, RejectedError),
    (110060, None, RejectedError, RejectedError),
    (110061, None, RejectedError, RejectedError),
    (110072, None, DuplicateClientOrderId, DuplicateClientOrderId),
    (110092, None, WouldTriggerImmediately, WouldTriggerImmediately),
    (110093, None, WouldTriggerImmediately, WouldTriggerImmediately),
    (110094, None, OrderValidationError, OrderValidationError),
    (999999, "something new", RejectedError, RejectedError),
]


def _msg(code: int, msg: str | None) -> str:
    return msg if msg is not None else RET_CODES[code].doc


def test_every_table_code_is_covered_and_documented() -> None:
    tested = {code for code, *_ in EXPECTED}
    assert set(RET_CODES) <= tested, set(RET_CODES) - tested
    assert {0, 34040, 110025, 110043} == SUCCESS_CODES
    assert {34040, 110025} == VERIFY_CODES  # "not modified" that is not proof
    assert {10002, -1} == RESYNC_CODES
    for code, rule in RET_CODES.items():
        assert len(rule.doc) > 10, code  # every row carries the doc text it came from
    # the codes land in the class that says what to do
    for codes, action in (
        ((429, 10006, 10018, 110079, 110063), Action.RETRY_LATER),
        ((10000, 10016, 10014), Action.UNKNOWN_IF_MUTATING),
        ((110008, 110010), Action.ORDER_FINAL),
        ((110004, 110006, 110007, 110012, 110044, 110045), Action.INSUFFICIENT_BALANCE),
        ((10029, 110023, 110042, 110066, 110074, 30228), Action.NOT_TRADABLE),
        ((10003, 10004, 10005, 10008, 10024, 10028, 33004), Action.FATAL),
    ):
        assert {RET_CODES[c].action for c in codes} == {action}, codes


def test_position_mode_mismatch_is_recognized() -> None:
    err = error_for(10001, "position idx not match position mode", mutating=True)
    assert err is not None and is_position_mode_mismatch(err)
    other = error_for(10001, "params error", mutating=True)
    assert other is not None and not is_position_mode_mismatch(other)


@pytest.mark.parametrize(("code", "msg", "mutating_cls", "read_cls"), EXPECTED)
def test_error_for_table(
    code: int,
    msg: str | None,
    mutating_cls: type[VenueError] | None,
    read_cls: type[VenueError] | None,
) -> None:
    msg = _msg(code, msg)
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
    code: int,
    msg: str | None,
    mutating_cls: type[VenueError] | None,
    read_cls: type[VenueError] | None,
) -> None:
    """A mutating call (entry) and a read (positions) meet ``code`` in a reply of the
    documented shape (HTTP 200 envelope) from the sandbox."""
    msg = _msg(code, msg)
    resync = code in RESYNC_CODES
    with trio.fail_after(10):
        async with bybit_env() as (sb, venue):
            await venue.verify_position_modes(["BTCUSDT"])  # not part of the code's reply
            if resync:
                # retried once after a re-sync; inject it twice so it surfaces.
                sb.inject("/v5/order/create", ret_code=code, ret_msg=msg, times=2)
            else:
                sb.inject("/v5/order/create", ret_code=code, ret_msg=msg)
            entry = EntryRequest(
                "BTCUSDT", PositionSide.LONG, D("0.010"), f"tb-e-{code}", D("98000")
            )
            if mutating_cls is None:
                ack = await venue.place_entry(entry)  # "not modified": success, no exception
                assert ack.client_order_id == entry.client_order_id
            elif "position idx not match" in msg:
                # the venue re-verifies the symbol's mode and refuses the entry as such
                with pytest.raises(SymbolNotTradable) as not_tradable:
                    await venue.place_entry(entry)
                assert not_tradable.value.code == "position_mode"
                assert isinstance(not_tradable.value.__cause__, mutating_cls)
            else:
                with pytest.raises(mutating_cls) as info:
                    await venue.place_entry(entry)
                assert info.value.code == str(code)
            sb.inject("/v5/position/list", ret_code=code, ret_msg=msg, times=2 if resync else 1)
            if read_cls is None:
                await venue.positions("BTCUSDT")
            else:
                with pytest.raises(read_cls):
                    await venue.positions("BTCUSDT")
