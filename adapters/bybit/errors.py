"""The one place where Bybit v5 ``retCode`` values become :mod:`tradebot.errors`.

Source: Bybit v5 error-code page (https://bybit-exchange.github.io/docs/v5/error) and
../shared/reference/exchanges.md sections 1, 3 and 4. Every code the adapter can meet is in
:data:`RET_CODES`; an unknown non-zero code is a :class:`~tradebot.errors.RejectedError`
(the venue said no and we do not know why: do not retry blindly).

Kinds:

* ``success``   — "not modified" answers that mean the state we asked for already holds
  (34040 trading-stop unchanged, 110025 position mode unchanged, 110043 leverage unchanged).
* ``clock``     — 10002 timestamp outside the recv window: re-sync the server time, re-sign,
  retry once (done by :class:`adapters.bybit.http.BybitHttp`).
* ``transient`` / ``rate``   — safe to retry after backoff (nothing changed on the venue).
* ``unknown_if_mutating`` — server timeout / internal error: for an order-changing request
  the outcome is unknown (look the client order id up); for a read it is transient.
* ``fatal``     — authentication, permission, IP: no retry helps.
* a :class:`~tradebot.errors.RejectedError` subclass — definitive refusal.
"""

from __future__ import annotations

from typing import Final

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

__all__ = [
    "CLOCK_SKEW_CODE",
    "RET_CODES",
    "SUCCESS_CODES",
    "error_for",
    "http_error_for",
]

CLOCK_SKEW_CODE: Final = 10002

# kind is either a marker string or a VenueError subclass.
RET_CODES: Final[dict[int, str | type[VenueError]]] = {
    # --- "not modified": the requested state already holds (success) ---
    34040: "success",  # trading-stop: not modified
    110025: "success",  # switch-mode: position mode not modified
    110043: "success",  # set-leverage: leverage not modified
    # --- request / auth layer ---
    10000: "unknown_if_mutating",  # server timeout
    10001: RejectedError,  # parameter error (refined by retMsg, see error_for)
    10002: "clock",  # request time outside recv_window
    10003: "fatal",  # invalid API key (also key/environment mismatch)
    10004: "fatal",  # signature error
    10005: "fatal",  # permission denied
    10006: "rate",  # too many visits (per-UID endpoint limit)
    10007: "fatal",  # user authentication failed
    10009: "fatal",  # IP banned
    10010: "fatal",  # unmatched IP (whitelist)
    10016: "unknown_if_mutating",  # internal server error
    10017: "fatal",  # route not found: wrong URL / path
    10018: "rate",  # exceeded the IP rate limit
    10027: "fatal",  # transactions are forbidden
    10029: SymbolNotTradable,  # symbol not in the allowed list
    33004: "fatal",  # API key expired
    # --- trading ---
    110001: UnknownOrder,  # order does not exist
    110003: OrderValidationError,  # price out of range
    110004: InsufficientBalance,  # wallet balance insufficient
    110007: InsufficientBalance,  # available balance insufficient
    110009: RejectedError,  # too many stop orders (10 conditional per symbol)
    110012: InsufficientBalance,  # insufficient available balance
    110017: ReduceOnlyRejected,  # reduce-only with no position / qty truncated to zero
    110020: RejectedError,  # too many active orders
    110024: RejectedError,  # switch-mode blocked: open position
    110028: RejectedError,  # switch-mode blocked: open orders
    110040: RejectedError,  # order would trigger liquidation
    110060: RejectedError,  # amend not allowed under Full TP/SL mode
    110061: RejectedError,  # too many Partial TP/SL orders
    110072: DuplicateClientOrderId,  # orderLinkId already used
    110079: "transient",  # order is being processed, try later
    110092: WouldTriggerImmediately,  # expect Rising, trigger <= current
    110093: WouldTriggerImmediately,  # expect Falling, trigger >= current
    110094: OrderValidationError,  # below min notional
}

SUCCESS_CODES: Final = frozenset({0} | {c for c, k in RET_CODES.items() if k == "success"})


def _refine_10001(ret_msg: str) -> type[RejectedError]:
    """10001 is Bybit's catch-all; the retMsg says what really happened.

    Messages seen on the venue (exchanges.md sections 3/10):
    ``"can not set tp/sl/ts for zero position"``; ``"StopLoss:... set for Buy position
    should lower than base_price:..."`` (stop already through the market);
    ``"position idx not match position mode"``.
    """
    m = ret_msg.lower()
    if "zero position" in m:
        return ZeroPosition
    if "base_price" in m or "should lower than" in m or "should higher than" in m:
        return WouldTriggerImmediately
    return RejectedError


def error_for(ret_code: int, ret_msg: str, *, mutating: bool) -> VenueError | None:
    """Map a Bybit envelope to our error tree.

    Args:
        ret_code: the envelope's ``retCode``.
        ret_msg: the envelope's ``retMsg`` (kept verbatim in ``venue_message``).
        mutating: True for requests that can change venue state (order create/amend/cancel,
            trading-stop, ...): a server timeout then means the outcome is unknown.

    Returns:
        None for success codes (0, 34040, 110025, 110043); otherwise the exception to
        raise (not raised here). 10002 maps to :class:`TransientError` with code
        ``"10002"``; the HTTP layer re-syncs and retries once before surfacing it.
    """
    if ret_code in SUCCESS_CODES:
        return None
    code = str(ret_code)
    kind = RET_CODES.get(ret_code)
    msg = f"bybit {ret_code}: {ret_msg}"
    if kind is None:
        return RejectedError(msg, code=code, venue_message=ret_msg)
    if kind == "clock" or kind == "transient":
        return TransientError(msg, code=code, venue_message=ret_msg)
    if kind == "rate":
        return RateLimited(msg, code=code, venue_message=ret_msg, retry_after_s=1.0)
    if kind == "fatal":
        return FatalVenueError(msg, code=code, venue_message=ret_msg)
    if kind == "unknown_if_mutating":
        cls: type[VenueError] = OutcomeUnknown if mutating else TransientError
        return cls(msg, code=code, venue_message=ret_msg)
    assert not isinstance(kind, str)
    if kind is RejectedError and ret_code == 10001:
        kind = _refine_10001(ret_msg)
    return kind(msg, code=code, venue_message=ret_msg)


def http_error_for(status: int, body: str, *, mutating: bool) -> VenueError:
    """Map a non-200 HTTP status (no usable envelope) to our error tree.

    403 is Bybit's IP rate-limit ban ("access too frequent", wait >= 10 min);
    429 a rate limit; 401 authentication; 5xx may have been accepted for a mutating
    request (outcome unknown) and is transient for a read.
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
