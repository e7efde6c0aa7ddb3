"""Fault injection for the paper venue: scripted ("the next 3 place_stop calls fail") or
random with a seed ("each place_entry fails with p=0.1"), per method and per order role.

Randomness comes only from a seeded :class:`random.Random`; with the same seed and the same
sequence of calls a plan injects the same faults (replays are reproducible). Probabilities
are plain floats: they are not money.

Request faults (:class:`Fault`), by kind:

* ``REJECT`` — the venue refuses before acceptance: ``error`` (a RejectedError subclass)
  with ``code``. Engine state unchanged.
* ``SERVER_ERROR`` — HTTP 5xx before acceptance: ``TransientError`` (code ``http_<status>``).
* ``RATE_LIMIT`` — ``RateLimited`` with ``retry_after_s``; not applied.
* ``TIMEOUT_AFTER_ACCEPT`` — the engine *applies* the request, the caller waits
  ``timeout_s`` and gets ``OutcomeUnknown`` (reads get ``TransientError``: nothing to resolve).
* ``LOST_REQUEST`` — the request never reached the venue; the caller waits ``timeout_s``
  and gets ``OutcomeUnknown``: a client-id lookup finds nothing.
* ``PARTIAL_FILL`` — ``place_entry`` only: the entry fills ``fill_ratio`` of its quantity
  now; the rest fills at the next mark (``remainder="next_mark"``) or expires.

Account-event faults (:class:`EventFault`): ``DROP`` (the event is lost), ``DELAY``
(delivered ``delay_s`` later; later events queue behind it, as on a lagging stream),
``GAP`` (the event is lost and a ``StreamGap`` follows, as after a reconnect).
"""

from __future__ import annotations

import enum
import random
from decimal import Decimal

import attrs

from tradebot.domain import OrderRole, PositionSide
from tradebot.errors import RejectedError

__all__ = [
    "METHODS",
    "READ_METHODS",
    "EventFault",
    "EventFaultKind",
    "Fault",
    "FaultKind",
    "FaultPlan",
]

METHODS = (
    "instruments",
    "balance",
    "setup_account",
    "place_entry",
    "place_stop",
    "amend_stop",
    "cancel_stop",
    "place_reduce",
    "cancel_order",
    "get_order",
    "open_orders",
    "positions",
    "stops",
)
READ_METHODS = frozenset(
    {"instruments", "balance", "get_order", "open_orders", "positions", "stops"}
)


class FaultKind(enum.Enum):
    REJECT = "reject"
    SERVER_ERROR = "server_error"
    RATE_LIMIT = "rate_limit"
    TIMEOUT_AFTER_ACCEPT = "timeout_after_accept"
    LOST_REQUEST = "lost_request"
    PARTIAL_FILL = "partial_fill"


@attrs.frozen
class Fault:
    """One request fault. Build with the class methods."""

    kind: FaultKind
    code: str = ""
    message: str = ""
    error: type[RejectedError] = RejectedError
    http_status: int = 503
    retry_after_s: float = 1.0
    timeout_s: float = 10.0
    fill_ratio: Decimal = Decimal("0.5")
    remainder: str = "next_mark"

    @classmethod
    def reject(
        cls, code: str, error: type[RejectedError] = RejectedError, message: str = ""
    ) -> Fault:
        return cls(FaultKind.REJECT, code=code, error=error, message=message or f"rejected {code}")

    @classmethod
    def server_error(cls, http_status: int = 503) -> Fault:
        return cls(FaultKind.SERVER_ERROR, http_status=http_status)

    @classmethod
    def rate_limit(cls, retry_after_s: float = 1.0, code: str = "") -> Fault:
        return cls(FaultKind.RATE_LIMIT, retry_after_s=retry_after_s, code=code)

    @classmethod
    def timeout_after_accept(cls, timeout_s: float = 10.0) -> Fault:
        return cls(FaultKind.TIMEOUT_AFTER_ACCEPT, timeout_s=timeout_s)

    @classmethod
    def lost_request(cls, timeout_s: float = 10.0) -> Fault:
        return cls(FaultKind.LOST_REQUEST, timeout_s=timeout_s)

    @classmethod
    def partial_fill(
        cls, fill_ratio: Decimal = Decimal("0.5"), remainder: str = "next_mark"
    ) -> Fault:
        if remainder not in ("next_mark", "expire"):
            raise ValueError("remainder must be 'next_mark' or 'expire'")
        return cls(FaultKind.PARTIAL_FILL, fill_ratio=fill_ratio, remainder=remainder)


class EventFaultKind(enum.Enum):
    DROP = "drop"
    DELAY = "delay"
    GAP = "gap"


@attrs.frozen
class EventFault:
    kind: EventFaultKind
    delay_s: float = 0.0


@attrs.define
class _Rule:
    method: str
    role: OrderRole | None
    symbol: str | None
    fault: Fault
    remaining: int  # scripted: calls left; -1 for probabilistic
    p: float

    def matches(self, method: str, role: OrderRole | None, symbol: str | None) -> bool:
        return (
            (self.method == "*" or self.method == method)
            and (self.role is None or self.role is role)
            and (self.symbol is None or self.symbol == symbol)
        )


@attrs.define
class _EventRule:
    fault: EventFault
    remaining: int
    p: float


@attrs.frozen
class InjectedFault:
    """A record of one injected fault (``FaultPlan.log``)."""

    method: str
    kind: str
    role: OrderRole | None = None
    symbol: str | None = None
    position_side: PositionSide | None = None  # of the request, when it names one


class FaultPlan:
    """A seeded, inspectable plan of faults for a :class:`PaperVenue`.

    Args:
        seed: seed of the plan's private ``random.Random`` (probabilistic rules).

    Scripted rules are consulted first, in the order added, and each consumes one call;
    probabilistic rules follow, one random draw per matching rule. ``log`` lists every
    fault injected, in order.
    """

    def __init__(self, seed: int = 0) -> None:
        self._rng = random.Random(seed)
        self._rules: list[_Rule] = []
        self._event_rules: list[_EventRule] = []
        self.log: list[InjectedFault] = []

    @property
    def empty(self) -> bool:
        """True while no rule is configured (no call and no event can be faulted)."""
        return not self._rules and not self._event_rules

    @staticmethod
    def _check_method(method: str) -> None:
        if method != "*" and method not in METHODS:
            raise ValueError(f"unknown method {method!r}; one of {METHODS} or '*'")

    def fail_next(
        self,
        method: str,
        fault: Fault,
        *,
        count: int = 1,
        role: OrderRole | None = None,
        symbol: str | None = None,
    ) -> FaultPlan:
        """The next ``count`` calls of ``method`` (``"*"`` = any) matching ``role`` /
        ``symbol`` (None = any) get ``fault``. Returns self for chaining."""
        self._check_method(method)
        if count < 1:
            raise ValueError("count must be >= 1")
        self._rules.append(_Rule(method, role, symbol, fault, count, 0.0))
        return self

    def fail_randomly(
        self,
        method: str,
        fault: Fault,
        *,
        p: float,
        role: OrderRole | None = None,
        symbol: str | None = None,
    ) -> FaultPlan:
        """Each matching call gets ``fault`` with probability ``p`` (0..1)."""
        self._check_method(method)
        if not 0.0 <= p <= 1.0:
            raise ValueError("p must be in [0, 1]")
        self._rules.append(_Rule(method, role, symbol, fault, -1, p))
        return self

    def drop_events(self, *, count: int = 0, p: float = 0.0) -> FaultPlan:
        """Lose the next ``count`` account events, and/or each with probability ``p``."""
        return self._event_rule(EventFault(EventFaultKind.DROP), count, p)

    def delay_events(self, delay_s: float, *, count: int = 0, p: float = 0.0) -> FaultPlan:
        """Deliver the next ``count`` account events (and/or each with probability ``p``)
        ``delay_s`` seconds of trio time late."""
        if delay_s < 0:
            raise ValueError("delay_s must be >= 0")
        return self._event_rule(EventFault(EventFaultKind.DELAY, delay_s), count, p)

    def stream_gaps(self, *, count: int = 0, p: float = 0.0) -> FaultPlan:
        """Lose the next ``count`` account events (and/or each with probability ``p``), each
        followed by a ``StreamGap`` on the private stream."""
        return self._event_rule(EventFault(EventFaultKind.GAP), count, p)

    def _event_rule(self, fault: EventFault, count: int, p: float) -> FaultPlan:
        if count < 0 or not 0.0 <= p <= 1.0:
            raise ValueError("count must be >= 0 and p in [0, 1]")
        if count:
            self._event_rules.append(_EventRule(fault, count, 0.0))
        if p:
            self._event_rules.append(_EventRule(fault, -1, p))
        return self

    def clear(self) -> None:
        """Remove every rule (the log is kept)."""
        self._rules.clear()
        self._event_rules.clear()

    def pick(
        self,
        method: str,
        role: OrderRole | None = None,
        symbol: str | None = None,
        position_side: PositionSide | None = None,
    ) -> Fault | None:
        """The fault for this call, or None. Consumes scripted rules; draws for random ones.

        ``position_side`` is only recorded in the log (rules do not match on it), so a test
        can attribute a fault to one side of a hedge-mode symbol."""
        for rule in self._rules:
            if rule.remaining > 0 and rule.matches(method, role, symbol):
                rule.remaining -= 1
                self.log.append(
                    InjectedFault(method, rule.fault.kind.value, role, symbol, position_side)
                )
                return rule.fault
        for rule in self._rules:
            if (
                rule.remaining < 0
                and rule.matches(method, role, symbol)
                and self._rng.random() < rule.p
            ):
                self.log.append(
                    InjectedFault(method, rule.fault.kind.value, role, symbol, position_side)
                )
                return rule.fault
        return None

    def pick_event(self) -> EventFault | None:
        """The fault for the next account event, or None."""
        for rule in self._event_rules:
            if rule.remaining > 0:
                rule.remaining -= 1
                self.log.append(InjectedFault("account_event", rule.fault.kind.value))
                return rule.fault
        for rule in self._event_rules:
            if rule.remaining < 0 and self._rng.random() < rule.p:
                self.log.append(InjectedFault("account_event", rule.fault.kind.value))
                return rule.fault
        return None
