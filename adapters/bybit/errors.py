"""The one place where Bybit v5 ``retCode`` values become :mod:`tradebot.errors`.

Source: the Bybit v5 error-code page (https://bybit-exchange.github.io/docs/v5/error) and
../shared/reference/exchanges.md sections 1, 3 and 4. Every code the adapter can meet is a
row of :data:`RET_CODES` with the doc text it came from; an unknown non-zero code is a
:class:`~tradebot.errors.RejectedError` (the venue said no and we do not know why: do not
retry blindly).

Each row says what the *caller must do* (:class:`Action`)::

    SUCCESS              the requested state already holds (110043 leverage not modified)
    VERIFY               "not modified" that is not proof: the caller checks the state
                         (34040 trading-stop: also "you didn't pass a required parameter";
                         110025 switch-mode by coin: symbols with positions/orders stay
                         one-way) → no exception; BybitHttp.call returns the code
    RESYNC_RETRY         request time outside the recv window: re-sync the server clock,
                         re-sign, retry once (BybitHttp does it) → TransientError
    RETRY_LATER          nothing changed, retry after a delay → RateLimited (rate codes,
                         ``retry_after_s``) or TransientError
    UNKNOWN_IF_MUTATING  the venue may have acted: for a write look the client id up
                         → OutcomeUnknown; for a read → TransientError
    ORDER_FINAL          the order is already filled/cancelled: look it up → OrderAlreadyFinal
    INSUFFICIENT_BALANCE stop new entries (management continues) → InsufficientBalance
    NOT_TRADABLE         block the instrument for entries → SymbolNotTradable
    FATAL                no retry helps: safe mode, alert → FatalVenueError
    REJECTED             a definitive refusal of this request → the row's RejectedError class

Protective calls (stop moves, closes) retry ``RETRY_LATER`` codes within their budget
(:meth:`adapters.bybit.http.BybitHttp.call`, ``retry_budget_s``).
"""

from __future__ import annotations

import enum
from typing import Final

import attrs

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

__all__ = [
    "CLOCK_SKEW_CODE",
    "RESYNC_CODES",
    "RET_CODES",
    "SUCCESS_CODES",
    "VERIFY_CODES",
    "Action",
    "CodeRule",
    "error_for",
    "http_error_for",
    "is_position_mode_mismatch",
    "retry_after_default_s",
]

CLOCK_SKEW_CODE: Final = 10002


class Action(enum.Enum):
    """What the caller must do with a retCode (see the module docstring)."""

    SUCCESS = "success"
    VERIFY = "verify"
    RESYNC_RETRY = "resync_retry"
    RETRY_LATER = "retry_later"
    UNKNOWN_IF_MUTATING = "unknown_if_mutating"
    ORDER_FINAL = "order_final"
    INSUFFICIENT_BALANCE = "insufficient_balance"
    NOT_TRADABLE = "not_tradable"
    FATAL = "fatal"
    REJECTED = "rejected"


@attrs.frozen
class CodeRule:
    """One row of the table.

    Attributes:
        action: what the caller must do.
        doc: the text of the Bybit v5 error page for the code (or of the page named).
        error: the exception class for REJECTED rows (others derive it from ``action``).
        retry_after_s: the default back-off for RETRY_LATER rows (s, >= 0); a
            ``X-Bapi-Limit-Reset-Timestamp`` header overrides it for rate codes.
        rate: the code is a rate limit (→ RateLimited rather than TransientError).
    """

    action: Action
    doc: str
    error: type[RejectedError] = RejectedError
    retry_after_s: float = 0.0
    rate: bool = False


_A = Action
R = CodeRule

RET_CODES: Final[dict[int, CodeRule]] = {
    # --- "not modified" -----------------------------------------------------------------
    34040: R(
        _A.VERIFY,
        "Not modified. Please note that you did not modify the TP/SL, or you didn't pass "
        "a required parameter",
    ),
    110025: R(_A.VERIFY, "Position mode is not modified"),
    110043: R(_A.SUCCESS, "Set leverage has not been modified"),
    # --- clock --------------------------------------------------------------------------
    10002: R(
        _A.RESYNC_RETRY,
        "The request time exceeds the time window range (invalid request, please check "
        "your server timestamp or recv_window param)",
    ),
    -1: R(_A.RESYNC_RETRY, "request expired (the request reached the engine after expiry)"),
    # --- retry after a delay (nothing changed on the venue) -----------------------------
    429: R(
        _A.RETRY_LATER,
        "System level frequency protection (high server load), please retry",
        retry_after_s=1.0,
        rate=True,
    ),
    10006: R(
        _A.RETRY_LATER,
        "Too many visits. Exceeded the API Rate Limit",
        retry_after_s=1.0,
        rate=True,
    ),
    10018: R(_A.RETRY_LATER, "Exceeded the IP Rate Limit", retry_after_s=1.0, rate=True),
    110079: R(
        _A.RETRY_LATER,
        "The order is processing and can not be operated, please try again later",
        retry_after_s=0.5,
    ),
    110063: R(
        _A.RETRY_LATER,
        "Settlement in progress! {{key0}} not available for trading",
        retry_after_s=5.0,
    ),
    # --- outcome unknown for a write ----------------------------------------------------
    10000: R(_A.UNKNOWN_IF_MUTATING, "Server Timeout"),
    10016: R(_A.UNKNOWN_IF_MUTATING, "Server error (internal error, please retry)"),
    10014: R(_A.UNKNOWN_IF_MUTATING, "Invalid duplicate request"),
    # --- order already final ------------------------------------------------------------
    110008: R(_A.ORDER_FINAL, "The order has been completed or cancelled"),
    110010: R(_A.ORDER_FINAL, "The order has been cancelled"),
    # --- insufficient balance: stop new entries -----------------------------------------
    110004: R(_A.INSUFFICIENT_BALANCE, "Wallet balance is insufficient"),
    110006: R(
        _A.INSUFFICIENT_BALANCE,
        "Cannot afford estimated position_margin (the assets are estimated to be unable "
        "to cover the position margin)",
    ),
    110007: R(_A.INSUFFICIENT_BALANCE, "Available balance is insufficient"),
    110012: R(_A.INSUFFICIENT_BALANCE, "Insufficient available balance"),
    110044: R(_A.INSUFFICIENT_BALANCE, "Available margin is insufficient"),
    110045: R(_A.INSUFFICIENT_BALANCE, "Wallet balance is insufficient"),
    # --- symbol not tradable: block the instrument for entries --------------------------
    10029: R(_A.NOT_TRADABLE, "The requested symbol is invalid, please check symbol whitelist"),
    110023: R(
        _A.NOT_TRADABLE,
        "This contract only supports position reduction operation, please contact "
        "customer service for details",
    ),
    110042: R(
        _A.NOT_TRADABLE,
        "Currently, due to pre-delivery status, you can only reduce your position on this contract",
    ),
    110066: R(_A.NOT_TRADABLE, "Trading is currently not allowed"),
    110074: R(_A.NOT_TRADABLE, "This contract is not live"),
    30228: R(
        _A.NOT_TRADABLE,
        "No new positions during delisting (the symbol is being delisted: reduce-only)",
    ),
    # --- fatal: safe mode ---------------------------------------------------------------
    10003: R(
        _A.FATAL,
        "API key is invalid. Check whether the key and domain are matched (mainnet / "
        "testnet / demo)",
    ),
    10004: R(_A.FATAL, "Error sign, please check your signature generation algorithm"),
    10005: R(_A.FATAL, "Permission denied, please check your API key permissions"),
    10007: R(_A.FATAL, "User authentication failed"),
    10008: R(_A.FATAL, "Common banned, please check your account mode (account banned)"),
    10009: R(_A.FATAL, "IP has been banned"),
    10010: R(_A.FATAL, "Unmatched IP, please check your API key's bound IP addresses"),
    10017: R(_A.FATAL, "Route not found (the request path is wrong)"),
    10024: R(_A.FATAL, "Compliance rules triggered"),
    10027: R(_A.FATAL, "Transactions are forbidden"),
    10028: R(_A.FATAL, "The API can only be accessed by unified account users"),
    33004: R(_A.FATAL, "Your api key has expired"),
    # --- definitive refusals of one request ---------------------------------------------
    10001: R(
        _A.REJECTED,
        "Request parameter error (catch-all: refined by retMsg, see _refine_10001)",
    ),
    110001: R(_A.REJECTED, "Order does not exist", UnknownOrder),
    110003: R(_A.REJECTED, "Order price exceeds the allowable range", OrderValidationError),
    110009: R(_A.REJECTED, "The number of stop orders exceeds the maximum allowable limit"),
    110017: R(
        _A.REJECTED,
        "Reduce-only rule not satisfied / orderQty will be truncated to zero",
        ReduceOnlyRejected,
    ),
    110020: R(_A.REJECTED, "Not allowed to have more than 500 active orders"),
    110024: R(_A.REJECTED, "You have an existing position, so position mode cannot be switched"),
    110028: R(_A.REJECTED, "You have existing open orders, so position mode cannot be switched"),
    110040: R(
        _A.REJECTED, "The order will trigger a forced liquidation, please re-submit the order"
    ),
    110060: R(_A.REJECTED, "Under full TP/SL mode, it is not allowed to modify TP/SL"),
    110061: R(_A.REJECTED, "Not allowed to have more than 20 partial TP/SL orders"),
    110072: R(_A.REJECTED, "OrderLinkedID is duplicate", DuplicateClientOrderId),
    110092: R(
        _A.REJECTED,
        "expect Rising, but trigger_price[XXXXX] <= current[XXXXX]",
        WouldTriggerImmediately,
    ),
    110093: R(
        _A.REJECTED,
        "expect Falling, but trigger_price[XXXXX] >= current[XXXXX]",
        WouldTriggerImmediately,
    ),
    110094: R(_A.REJECTED, "Order does not meet minimum order value", OrderValidationError),
}

SUCCESS_CODES: Final = frozenset(
    {0} | {c for c, r in RET_CODES.items() if r.action in (Action.SUCCESS, Action.VERIFY)}
)
VERIFY_CODES: Final = frozenset(c for c, r in RET_CODES.items() if r.action is Action.VERIFY)
RESYNC_CODES: Final = frozenset(c for c, r in RET_CODES.items() if r.action is Action.RESYNC_RETRY)


def _refine_10001(ret_msg: str) -> type[RejectedError]:
    """10001 is Bybit's catch-all; the retMsg says what really happened.

    Messages seen on the venue (exchanges.md sections 3/10):
    ``"can not set tp/sl/ts for zero position"``; ``"StopLoss:... set for Buy position
    should lower than base_price:..."`` (stop already through the market);
    ``"position idx not match position mode"`` (stays a plain RejectedError: the venue
    re-verifies the symbol's mode, see :func:`is_position_mode_mismatch`);
    ``"The number of contracts exceeds maximum limit allowed: too large"`` (qty above
    ``maxOrderQty`` / ``maxMktOrderQty``).
    """
    m = ret_msg.lower()
    if "zero position" in m:
        return ZeroPosition
    if "base_price" in m or "should lower than" in m or "should higher than" in m:
        return WouldTriggerImmediately
    if "exceeds maximum limit" in m or "too large" in m:
        return OrderValidationError
    return RejectedError


def is_position_mode_mismatch(err: VenueError) -> bool:
    """True for 10001 "position idx not match position mode": the symbol is not in the
    position mode we think (e.g. still one-way after a coin-wide switch)."""
    return err.code == "10001" and "position idx not match" in err.venue_message.lower()


_ACTION_ERROR: Final[dict[Action, type[VenueError]]] = {
    Action.RESYNC_RETRY: TransientError,
    Action.ORDER_FINAL: OrderAlreadyFinal,
    Action.INSUFFICIENT_BALANCE: InsufficientBalance,
    Action.NOT_TRADABLE: SymbolNotTradable,
    Action.FATAL: FatalVenueError,
}


def error_for(ret_code: int, ret_msg: str, *, mutating: bool) -> VenueError | None:
    """Map a Bybit envelope to our error tree.

    Args:
        ret_code: the envelope's ``retCode``.
        ret_msg: the envelope's ``retMsg`` (kept verbatim in ``venue_message``).
        mutating: True for requests that can change venue state (order create/amend/cancel,
            trading-stop, ...): a server timeout then means the outcome is unknown.

    Returns:
        None for 0 and the SUCCESS / VERIFY codes (34040, 110025, 110043; the caller
        checks VERIFY codes against the venue's state); otherwise the exception to raise
        (not raised here). RESYNC codes (10002, -1) map to :class:`TransientError`; the
        HTTP layer re-syncs and retries once before surfacing it.
    """
    if ret_code in SUCCESS_CODES:
        return None
    code = str(ret_code)
    rule = RET_CODES.get(ret_code)
    msg = f"bybit {ret_code}: {ret_msg}"
    if rule is None:
        return RejectedError(msg, code=code, venue_message=ret_msg)
    if rule.action is Action.RETRY_LATER:
        if rule.rate:
            return RateLimited(
                msg, code=code, venue_message=ret_msg, retry_after_s=rule.retry_after_s
            )
        return TransientError(msg, code=code, venue_message=ret_msg)
    if rule.action is Action.UNKNOWN_IF_MUTATING:
        cls: type[VenueError] = OutcomeUnknown if mutating else TransientError
        return cls(msg, code=code, venue_message=ret_msg)
    if rule.action is Action.REJECTED:
        kind = _refine_10001(ret_msg) if ret_code == 10001 else rule.error
        return kind(msg, code=code, venue_message=ret_msg)
    return _ACTION_ERROR[rule.action](msg, code=code, venue_message=ret_msg)


def retry_after_default_s(ret_code: int) -> float:
    """The table's back-off for a RETRY_LATER code (0 for others)."""
    rule = RET_CODES.get(ret_code)
    return rule.retry_after_s if rule is not None else 0.0


def http_error_for(status: int, body: str, *, mutating: bool) -> VenueError:
    """Map a non-200 HTTP status (no usable envelope) to our error tree.

    403 is Bybit's IP rate-limit ban ("access too frequent", wait >= 10 min);
    429 system-level frequency protection (retry); 401 authentication; 5xx may have been
    accepted for a mutating request (outcome unknown) and is transient for a read.
    """
    code = f"http_{status}"
    text = body[:200]
    if status == 403:
        return RateLimited(
            f"bybit HTTP 403: {text}", code=code, venue_message=text, retry_after_s=600.0
        )
    if status == 429:
        return RateLimited(f"bybit HTTP 429: {text}", code=code, venue_message=text)
    if status == 401:
        return FatalVenueError(f"bybit HTTP 401: {text}", code=code, venue_message=text)
    if status >= 500:
        cls: type[VenueError] = OutcomeUnknown if mutating else TransientError
        return cls(f"bybit HTTP {status}: {text}", code=code, venue_message=text)
    if status == 404:
        return FatalVenueError(
            f"bybit HTTP 404 (wrong URL?): {text}", code=code, venue_message=text
        )
    return RejectedError(f"bybit HTTP {status}: {text}", code=code, venue_message=text)
