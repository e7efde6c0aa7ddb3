"""The one place where Binance USDⓈ-M error codes become :mod:`tradebot.errors`.

Source: the USDⓈ-M Futures "Error Codes" page
(https://developers.binance.com/docs/derivatives/usds-margined-futures/error-code) and
../shared/reference/exchanges.md sections 0-4 and 10. Every code the adapter can meet is a
row of :data:`ERROR_CODES` with the venue's own name and doc text; an unknown code is a
:class:`~tradebot.errors.RejectedError` (the venue said no and we do not know why: do not
retry blindly).

Binance answers business errors with HTTP 4xx and ``{"code": -NNNN, "msg": "..."}``; a
few setup endpoints answer success as ``{"code": 200, "msg": "success"}``.

Kinds:

* ``success``   — "no need to change" answers: the state we asked for already holds
  (-4046 margin type, -4059 position side) and the ``code: 200`` envelope.
* ``clock``     — -1021 / -5028 timestamp outside the recvWindow: re-sync the server time,
  re-sign, retry once (done by :class:`adapters.binance.http.BinanceHttp`).
* ``transient`` — refused before processing (-1001, -1008, -4131): safe to retry after backoff.
* ``rate``      — -1003 / -1015: back off (``retry_after_s`` from the message or header).
* ``unknown``   — -1006 / -1007 (and -1000 for writes): the request may have been executed;
  a write's outcome is unknown (look the client id up), a read is transient.
* ``fatal``     — authentication, signature (-1022 is never retried unchanged), permission.
* ``listen_key``— -1125 "This listenKey does not exist.": create a new key.
* a :class:`~tradebot.errors.RejectedError` subclass — definitive refusal.
"""

from __future__ import annotations

import re
import time
from typing import Final

import attrs

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
)

__all__ = [
    "CLOCK_CODES",
    "ERROR_CODES",
    "INVALID_LISTEN_KEY",
    "SUCCESS_CODES",
    "CodeSpec",
    "banned_until_ms",
    "error_for",
    "http_error_for",
]


@attrs.frozen
class CodeSpec:
    """One row of the error table: the venue's name for the code, what we do, its doc text."""

    name: str
    kind: str | type[VenueError]
    doc: str


def _c(name: str, kind: str | type[VenueError], doc: str) -> CodeSpec:
    return CodeSpec(name, kind, doc)


ERROR_CODES: Final[dict[int, CodeSpec]] = {
    # --- 10xx general server or network issues ---
    -1000: _c("UNKNOWN", "unknown", "An unknown error occured while processing the request."),
    -1001: _c(
        "DISCONNECTED",
        "transient",
        "Internal error; unable to process your request. Please try again.",
    ),
    -1002: _c("UNAUTHORIZED", "fatal", "You are not authorized to execute this request."),
    -1003: _c(
        "TOO_MANY_REQUESTS",
        "rate",
        "Too many requests queued. / Too much request weight used; current limit is %s "
        "request weight per %s. / Way too much request weight used; IP banned until %s.",
    ),
    -1006: _c(
        "UNEXPECTED_RESP",
        "unknown",
        "An unexpected response was received from the message bus. Execution status unknown.",
    ),
    -1007: _c(
        "TIMEOUT",
        "unknown",
        "Timeout waiting for response from backend server. Send status unknown; "
        "execution status unknown.",
    ),
    -1008: _c(
        "SERVER_BUSY",
        "transient",
        "Server is currently overloaded with other requests. Please try again in a few minutes.",
    ),
    -1011: _c("NON_WHITE_LIST", "fatal", "This IP cannot access this route."),
    -1013: _c("INVALID_MESSAGE", OrderValidationError, "INVALID_MESSAGE (filter failure)."),
    -1014: _c("UNKNOWN_ORDER_COMPOSITION", RejectedError, "Unsupported order combination."),
    -1015: _c(
        "TOO_MANY_ORDERS",
        "rate",
        "Too many new orders; current limit is %s orders per %s.",
    ),
    -1016: _c("SERVICE_SHUTTING_DOWN", "transient", "This service is no longer available."),
    -1020: _c("UNSUPPORTED_OPERATION", RejectedError, "This operation is not supported."),
    -1021: _c(
        "INVALID_TIMESTAMP",
        "clock",
        "Timestamp for this request is outside of the recvWindow. / Timestamp for this "
        "request was 1000ms ahead of the server's time.",
    ),
    -1022: _c("INVALID_SIGNATURE", "fatal", "Signature for this request is not valid."),
    -1099: _c("NOT_FOUND", "fatal", "Not found, unauthenticated, or unauthorized."),
    # --- 11xx request issues ---
    -1100: _c("ILLEGAL_CHARS", RejectedError, "Illegal characters found in a parameter."),
    -1101: _c("TOO_MANY_PARAMETERS", RejectedError, "Too many parameters sent for this endpoint."),
    -1102: _c(
        "MANDATORY_PARAM_EMPTY_OR_MALFORMED",
        RejectedError,
        "A mandatory parameter was not sent, was empty/null, or malformed.",
    ),
    -1103: _c("UNKNOWN_PARAM", RejectedError, "An unknown parameter was sent."),
    -1104: _c("UNREAD_PARAMETERS", RejectedError, "Not all sent parameters were read."),
    -1105: _c("PARAM_EMPTY", RejectedError, "A parameter was empty."),
    -1106: _c("PARAM_NOT_REQUIRED", RejectedError, "A parameter was sent when not required."),
    -1111: _c(
        "BAD_PRECISION",
        OrderValidationError,
        "Precision is over the maximum defined for this asset.",
    ),
    -1115: _c("INVALID_TIF", RejectedError, "Invalid timeInForce."),
    -1116: _c("INVALID_ORDER_TYPE", RejectedError, "Invalid orderType."),
    -1117: _c("INVALID_SIDE", RejectedError, "Invalid side."),
    -1121: _c("BAD_SYMBOL", SymbolNotTradable, "Invalid symbol."),
    -1125: _c("INVALID_LISTEN_KEY", "listen_key", "This listenKey does not exist."),
    -1128: _c(
        "OPTIONAL_PARAMS_BAD_COMBO", RejectedError, "Combination of optional parameters invalid."
    ),
    -1130: _c("INVALID_PARAMETER", RejectedError, "Invalid data sent for a parameter."),
    # --- 20xx processing issues ---
    -2010: _c("NEW_ORDER_REJECTED", RejectedError, "NEW_ORDER_REJECTED"),
    -2011: _c(
        "CANCEL_REJECTED",
        UnknownOrder,
        "CANCEL_REJECTED (unknown order sent; also an algo order cancelled on the regular "
        "endpoint).",
    ),
    -2013: _c("NO_SUCH_ORDER", UnknownOrder, "Order does not exist."),
    -2014: _c("BAD_API_KEY_FMT", "fatal", "API-key format invalid."),
    -2015: _c("REJECTED_MBX_KEY", "fatal", "Invalid API-key, IP, or permissions for action."),
    -2018: _c("BALANCE_NOT_SUFFICIENT", InsufficientBalance, "Balance is insufficient."),
    -2019: _c("MARGIN_NOT_SUFFICIEN", InsufficientBalance, "Margin is insufficient."),
    -2020: _c("UNABLE_TO_FILL", RejectedError, "Unable to fill."),
    -2021: _c(
        "ORDER_WOULD_IMMEDIATELY_TRIGGER",
        WouldTriggerImmediately,
        "Order would immediately trigger.",
    ),
    -2022: _c("REDUCE_ONLY_REJECT", ReduceOnlyRejected, "ReduceOnly Order is rejected."),
    -2023: _c("USER_IN_LIQUIDATION", RejectedError, "User in liquidation mode now."),
    -2024: _c("POSITION_NOT_SUFFICIENT", ReduceOnlyRejected, "Position is not sufficient."),
    -2025: _c("MAX_OPEN_ORDER_EXCEEDED", RejectedError, "Reach max open order limit."),
    -2027: _c(
        "MAX_LEVERAGE_RATIO",
        RejectedError,
        "Exceeded the maximum allowable position at current leverage.",
    ),
    # --- 40xx filters and other issues ---
    -4001: _c("PRICE_LESS_THAN_ZERO", OrderValidationError, "Price less than 0."),
    -4003: _c("QTY_LESS_THAN_ZERO", OrderValidationError, "Quantity less than or equal to zero."),
    -4004: _c(
        "QTY_LESS_THAN_MIN_QTY", OrderValidationError, "Quantity less than minimum quantity."
    ),
    -4005: _c(
        "QTY_GREATER_THAN_MAX_QTY", OrderValidationError, "Quantity greater than maximum quantity."
    ),
    -4013: _c("PRICE_LESS_THAN_MIN_PRICE", OrderValidationError, "Price less than min price."),
    -4014: _c(
        "PRICE_NOT_INCREASED_BY_TICK_SIZE",
        OrderValidationError,
        "Price not increased by tick size.",
    ),
    -4015: _c("INVALID_CL_ORD_ID_LEN", RejectedError, "Client order id is not valid."),
    -4023: _c(
        "QTY_NOT_INCREASED_BY_STEP_SIZE", OrderValidationError, "Qty not increased by step size."
    ),
    -4028: _c("INVALID_LEVERAGE", RejectedError, "Leverage is not valid."),
    -4045: _c("REACH_MAX_STOP_ORDER_LIMIT", RejectedError, "Reach max stop order limit."),
    -4046: _c("NO_NEED_TO_CHANGE_MARGIN_TYPE", "success", "No need to change margin type."),
    -4047: _c(
        "THERE_EXISTS_OPEN_ORDERS",
        RejectedError,
        "Margin type cannot be changed if there exists open orders.",
    ),
    -4048: _c(
        "THERE_EXISTS_QUANTITY",
        RejectedError,
        "Margin type cannot be changed if there exists position.",
    ),
    -4059: _c("NO_NEED_TO_CHANGE_POSITION_SIDE", "success", "No need to change position side."),
    -4061: _c(
        "INVALID_POSITION_SIDE",
        RejectedError,
        "Order's position side does not match user's setting.",
    ),
    -4067: _c(
        "POSITION_SIDE_CHANGE_EXISTS_OPEN_ORDERS",
        RejectedError,
        "Position side cannot be changed if there exists open orders.",
    ),
    -4068: _c(
        "POSITION_SIDE_CHANGE_EXISTS_QUANTITY",
        RejectedError,
        "Position side cannot be changed if there exists position.",
    ),
    -4116: _c("DUPLICATED_CLIENT_ORDER_ID", DuplicateClientOrderId, "ClientOrderId is duplicated."),
    -4118: _c(
        "REDUCE_ONLY_MARGIN_CHECK_FAILED",
        ReduceOnlyRejected,
        "ReduceOnly Order Failed. Please check your existing position and open orders.",
    ),
    -4120: _c(
        "STOP_ORDER_SWITCH_ALGO",
        RejectedError,
        "Order type not supported for this endpoint. Please use the Algo Order API "
        "endpoints instead.",
    ),
    -4131: _c(
        "MARKET_ORDER_REJECT",
        "transient",
        "The counterparty's best price does not meet the PERCENT_PRICE filter limit.",
    ),
    -4137: _c(
        "QUANTITY_EXISTS_WITH_CLOSE_POSITION",
        RejectedError,
        "Quantity must be zero with closePosition equals true.",
    ),
    -4138: _c(
        "REDUCE_ONLY_MUST_BE_TRUE",
        RejectedError,
        "Reduce only must be true with closePosition equals true.",
    ),
    -4140: _c(
        "INVALID_SYMBOL_STATUS", SymbolNotTradable, "Invalid symbol status for opening position."
    ),
    -4142: _c(
        "REJECT_FOR_IMMEDIATE_TRIGGER",
        WouldTriggerImmediately,
        "Order would immediately trigger (strategy order variant of -2021).",
    ),
    -4164: _c(
        "MIN_NOTIONAL",
        OrderValidationError,
        "Order's notional must be no smaller than %s (unless you choose reduce only).",
    ),
    # --- 50xx order execution issues ---
    -5021: _c(
        "FOK_ORDER_REJECT",
        RejectedError,
        "Due to the order could not be filled immediately, the FOK order has been rejected.",
    ),
    -5022: _c(
        "GTX_ORDER_REJECT",
        RejectedError,
        "Due to the order could not be executed as maker, the Post Only order will be rejected.",
    ),
    -5027: _c("SAME_ORDER", "success", "No need to modify the order."),
    -5028: _c(
        "ME_RECVWINDOW_REJECT",
        "clock",
        "Timestamp for this request is outside of the ME recvWindow.",
    ),
}

SUCCESS_CODES: Final = frozenset(
    {0, 200} | {c for c, s in ERROR_CODES.items() if s.kind == "success"}
)
CLOCK_CODES: Final = frozenset(c for c, s in ERROR_CODES.items() if s.kind == "clock")
INVALID_LISTEN_KEY: Final = -1125

_BANNED_UNTIL = re.compile(r"banned until (\d{12,})")


def banned_until_ms(msg: str) -> int | None:
    """The ban end (Unix ms) in a -1003 / 418 message "... IP banned until 1700000000000 ...",
    or None."""
    m = _BANNED_UNTIL.search(msg)
    return int(m.group(1)) if m else None


def _retry_after_s(msg: str, retry_after_s: float | None, now_ms: int | None) -> float:
    until = banned_until_ms(msg)
    if until is not None:
        now = now_ms if now_ms is not None else time.time_ns() // 1_000_000
        return max((until - now) / 1000, 0.0)
    if retry_after_s is not None:
        return max(retry_after_s, 0.0)
    return 1.0


def error_for(
    code: int,
    msg: str,
    *,
    mutating: bool,
    retry_after_s: float | None = None,
    now_ms: int | None = None,
) -> VenueError | None:
    """Map a Binance ``{"code", "msg"}`` answer to our error tree.

    Args:
        code: the venue's ``code``.
        msg: the venue's ``msg`` (kept verbatim in ``venue_message``).
        mutating: True for requests that can change venue state (order place/cancel, algo
            order place/cancel, account setup): "execution status unknown" answers then
            mean the outcome is unknown.
        retry_after_s: the ``Retry-After`` header, if any (rate limits).
        now_ms: the venue clock, to turn "banned until <ms>" into seconds.

    Returns:
        None for success codes (200, -4046, -4059, -5027); otherwise the exception to raise
        (not raised here). -1021/-5028 map to :class:`TransientError` with the code set;
        the HTTP layer re-syncs and retries once before surfacing it.
    """
    if code in SUCCESS_CODES:
        return None
    spec = ERROR_CODES.get(code)
    text = f"binance {code}: {msg}"
    c = str(code)
    if spec is None:
        return RejectedError(text, code=c, venue_message=msg)
    kind = spec.kind
    if kind in ("clock", "transient"):
        return TransientError(text, code=c, venue_message=msg)
    if kind == "rate":
        return RateLimited(
            text,
            code=c,
            venue_message=msg,
            retry_after_s=_retry_after_s(msg, retry_after_s, now_ms),
        )
    if kind == "fatal":
        return FatalVenueError(text, code=c, venue_message=msg)
    if kind == "unknown":
        cls: type[VenueError] = OutcomeUnknown if mutating else TransientError
        return cls(text, code=c, venue_message=msg)
    if kind == "listen_key":
        return RejectedError(text, code=c, venue_message=msg)
    assert not isinstance(kind, str), kind
    return kind(text, code=c, venue_message=msg)


# 503 texts (USDⓈ-M "General Info": "HTTP 503 ... three kinds of messages"):
_503_UNKNOWN = "unknown error, please check your request or try again later"
_503_NOT_EXECUTED = ("service unavailable", "internal error; unable to process your request")


def http_error_for(
    status: int,
    body: str,
    *,
    mutating: bool,
    retry_after_s: float | None = None,
    now_ms: int | None = None,
) -> VenueError:
    """Map an HTTP error without a usable ``{"code", "msg"}`` body (or 418/429/5xx, whose
    status decides) to our error tree.

    * 418: IP auto-banned for repeated 429s (2 minutes to 3 days) → ``RateLimited`` with the
      ban length (``Retry-After`` or "banned until" in the body).
    * 429: request rate limit broken → ``RateLimited`` (``Retry-After``).
    * 403: the WAF refused the request (not executed) → ``RejectedError``.
    * 401: authentication → ``FatalVenueError``.
    * 503: "Unknown error, please check your request or try again later." means the
      execution status is unknown (``OutcomeUnknown`` for a write); "Service Unavailable." /
      "Internal error; unable to process your request." mean it was not executed
      (``TransientError``); other 5xx: unknown for writes, transient for reads.
    * 404: wrong URL → ``FatalVenueError``.
    """
    code = f"http_{status}"
    text = body[:300]
    if status in (418, 429):
        return RateLimited(
            f"binance HTTP {status}: {text}",
            code=code,
            venue_message=text,
            retry_after_s=_retry_after_s(text, retry_after_s, now_ms),
        )
    if status == 403:
        return RejectedError(f"binance HTTP 403 (WAF): {text}", code=code, venue_message=text)
    if status == 401:
        return FatalVenueError(f"binance HTTP 401: {text}", code=code, venue_message=text)
    if status == 404:
        return FatalVenueError(
            f"binance HTTP 404 (wrong URL?): {text}", code=code, venue_message=text
        )
    if status >= 500:
        low = text.lower()
        cls: type[VenueError]
        if _503_UNKNOWN in low:
            cls = OutcomeUnknown if mutating else TransientError
        elif any(s in low for s in _503_NOT_EXECUTED):
            cls = TransientError
        else:
            cls = OutcomeUnknown if mutating else TransientError
        return cls(f"binance HTTP {status}: {text}", code=code, venue_message=text)
    return RejectedError(f"binance HTTP {status}: {text}", code=code, venue_message=text)
