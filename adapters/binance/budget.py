"""Request-weight and order-count budgets that keep capacity for protective calls.

Binance USDⓈ-M limits (exchanges.md section 5; ``rateLimits`` of ``exchangeInfo``):
``REQUEST_WEIGHT`` 2400 per minute per IP, ``ORDERS`` 1200 per minute and 300 per 10 s per
account. Every reply reports the venue's own count in ``X-MBX-USED-WEIGHT-1M``,
``X-MBX-ORDER-COUNT-10S`` and ``X-MBX-ORDER-COUNT-1M``; :meth:`RequestBudget.observe`
adopts them (the venue's count is the truth, ours an estimate between replies).

Breaking a limit is answered 429 (back off for ``Retry-After``); repeating that gets the
IP banned with 418 for 2 minutes to 3 days. Hence:

* every request waits for its weight and order count; a ``NORMAL`` request never takes the
  last ``reserve_*`` units of a window, so a stop move or a close still gets through when a
  wave of entries and reads has used the rest;
* after a 429/418 (:meth:`RequestBudget.block`) *nothing* is sent until the ban ends (a
  request during a ban extends it); waiters are then served by priority, and ``NORMAL``
  requests also wait until the protective requests that queued during the ban have been
  answered, so protective actions are sent first.

Windows are fixed (reset ``window_s`` after they started), on trio's clock, so tests can
check exact virtual times under ``MockClock``.
"""

from __future__ import annotations

import enum
import heapq
import itertools
import math
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import attrs
import trio

__all__ = ["BudgetLimits", "Priority", "RequestBudget", "endpoint_cost"]


class Priority(enum.IntEnum):
    """Lower value is served first."""

    PROTECTIVE = 0  # stop place/cancel, closes and reduce-only market exits
    NORMAL = 1  # entries, reads, setup, listenKey


@attrs.frozen
class BudgetLimits:
    """Per-window limits and what ``NORMAL`` requests must leave for protective ones.

    Attributes:
        weight_1m: request weight per minute (venue: 2400).
        orders_10s / orders_1m: new orders per 10 s / per minute (venue: 300 / 1200).
        reserve_weight / reserve_orders_10s / reserve_orders_1m: units kept for
            ``PROTECTIVE`` requests (0 <= reserve < limit).
        margin: units of slack left unused for requests in flight (clock skew between our
            window and the venue's).
    """

    weight_1m: int = 2400
    orders_10s: int = 300
    orders_1m: int = 1200
    reserve_weight: int = 240
    reserve_orders_10s: int = 30
    reserve_orders_1m: int = 120
    margin: int = 10

    def __attrs_post_init__(self) -> None:
        for limit, reserve in (
            (self.weight_1m, self.reserve_weight),
            (self.orders_10s, self.reserve_orders_10s),
            (self.orders_1m, self.reserve_orders_1m),
        ):
            if limit < 1 or not 0 <= reserve < limit:
                raise ValueError("need limit >= 1 and 0 <= reserve < limit")


# (method, path) → (IP weight, order count). Binance docs per endpoint (exchanges.md s. 5):
# order/algoOrder placement is 0 IP weight + 1 order; lists without a symbol cost 40.
_COSTS: dict[tuple[str, str], tuple[int, int]] = {
    ("POST", "/fapi/v1/order"): (0, 1),
    ("POST", "/fapi/v1/algoOrder"): (0, 1),
    ("POST", "/fapi/v1/batchOrders"): (5, 1),
    ("GET", "/fapi/v1/exchangeInfo"): (1, 0),
    ("GET", "/fapi/v1/time"): (1, 0),
    ("GET", "/fapi/v1/positionSide/dual"): (30, 0),
    ("GET", "/fapi/v3/positionRisk"): (5, 0),
    ("GET", "/fapi/v3/balance"): (5, 0),
    ("GET", "/fapi/v3/account"): (5, 0),
    ("GET", "/fapi/v1/userTrades"): (5, 0),
    ("GET", "/fapi/v1/symbolConfig"): (5, 0),
    ("GET", "/fapi/v1/allAlgoOrders"): (5, 0),
}
_LIST_PATHS = frozenset({"/fapi/v1/openOrders", "/fapi/v1/openAlgoOrders", "/fapi/v1/premiumIndex"})


def endpoint_cost(method: str, path: str, params: Mapping[str, object]) -> tuple[int, int]:
    """``(ip_weight, order_count)`` of one request (exchanges.md section 5).

    Open-order lists cost 1 with ``symbol`` and 40 without (premiumIndex: 1 / 10); other
    endpoints cost 1 unless listed in the table.
    """
    if path in _LIST_PATHS and method == "GET":
        if params.get("symbol"):
            return 1, 0
        return (10 if path == "/fapi/v1/premiumIndex" else 40), 0
    return _COSTS.get((method, path), (1, 0))


class _Window:
    """A fixed window counter: ``used`` units since ``start`` (reset after ``length_s``)."""

    def __init__(self, limit: int, reserve: int, length_s: float) -> None:
        self.limit = limit
        self.reserve = reserve
        self.length_s = length_s
        self.used = 0
        self.start = trio.current_time()

    def roll(self, now: float) -> None:
        if now >= self.start + self.length_s:
            self.used = 0
            self.start = now

    def fits(self, units: int, priority: Priority, margin: int) -> bool:
        if units == 0:
            return True
        keep = self.reserve if priority is Priority.NORMAL else 0
        return self.used + units <= self.limit - keep - margin

    def resets_in(self, now: float) -> float:
        return max(self.start + self.length_s - now, 0.0)


class RequestBudget:
    """The account's (and IP's) request budget; one per :class:`BinanceHttp`.

    Args:
        limits: window sizes and reserves (defaults: the venue's documented limits).
    """

    def __init__(self, limits: BudgetLimits | None = None) -> None:
        self.limits = limits or BudgetLimits()
        lim = self.limits
        self.weight = _Window(lim.weight_1m, lim.reserve_weight, 60.0)
        self.orders_10s = _Window(lim.orders_10s, lim.reserve_orders_10s, 10.0)
        self.orders_1m = _Window(lim.orders_1m, lim.reserve_orders_1m, 60.0)
        self.blocked_until = -math.inf  # trio time; 429/418 back-off or IP ban
        self.block_reason = ""
        self._waiters: list[tuple[int, int]] = []
        self._seq = itertools.count()
        self._changed = trio.Event()
        self._priority_backlog = 0  # protective requests admitted after a block, in flight
        self.admitted: list[tuple[float, Priority]] = []  # (trio time, priority), last 1000

    # --- state --------------------------------------------------------------------------

    @property
    def queued(self) -> int:
        """Number of requests waiting."""
        return len(self._waiters)

    def is_blocked(self) -> bool:
        return trio.current_time() < self.blocked_until

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def observe(self, headers: Mapping[str, str]) -> None:
        """Adopt the venue's counts from a reply's ``X-MBX-USED-WEIGHT-1M`` /
        ``X-MBX-ORDER-COUNT-10S`` / ``X-MBX-ORDER-COUNT-1M`` headers (case-insensitive)."""
        now = trio.current_time()
        for name, window in (
            ("x-mbx-used-weight-1m", self.weight),
            ("x-mbx-order-count-10s", self.orders_10s),
            ("x-mbx-order-count-1m", self.orders_1m),
        ):
            raw = headers.get(name)
            if raw is None or not str(raw).isdigit():
                continue
            window.roll(now)
            window.used = int(raw)
        self._notify()

    def block(self, seconds: float, reason: str) -> None:
        """Send nothing for ``seconds`` (a 429 ``Retry-After`` or a 418 ban); extends only."""
        until = trio.current_time() + max(seconds, 0.0)
        if until > self.blocked_until:
            self.blocked_until = until
            self.block_reason = reason
        self._notify()

    # --- admission ----------------------------------------------------------------------

    def _delay(self, weight: int, orders: int, priority: Priority) -> float:
        """0 when the request may go now, else how long until it might."""
        now = trio.current_time()
        if now < self.blocked_until:
            return self.blocked_until - now
        if priority is Priority.NORMAL and self._priority_backlog > 0:
            return math.inf  # woken when the protective backlog drains
        m = self.limits.margin
        waits = []
        for units, window in (
            (weight, self.weight),
            (orders, self.orders_10s),
            (orders, self.orders_1m),
        ):
            window.roll(now)
            if not window.fits(units, priority, m):
                waits.append(window.resets_in(now))
        return max(waits) if waits else 0.0

    @asynccontextmanager
    async def slot(
        self, weight: int, orders: int = 0, priority: Priority = Priority.NORMAL
    ) -> AsyncIterator[None]:
        """Hold a slot for one request: waits for capacity, counts it, yields while the
        request is in flight. Cancellation-safe (a cancelled waiter leaves the queue)."""
        entry = (int(priority), next(self._seq))
        heapq.heappush(self._waiters, entry)
        self._notify()
        after_block = False
        try:
            while True:
                delay = self._delay(weight, orders, priority)
                head = self._waiters[0] == entry
                if head and delay <= 0:
                    heapq.heappop(self._waiters)
                    break
                if self.is_blocked():
                    after_block = True
                changed = self._changed
                with trio.move_on_after(delay if head else math.inf):
                    await changed.wait()
        except BaseException:
            if entry in self._waiters:
                self._waiters.remove(entry)
                heapq.heapify(self._waiters)
                self._notify()
            raise
        now = trio.current_time()
        self.weight.used += weight
        self.orders_10s.used += orders
        self.orders_1m.used += orders
        self.admitted.append((now, priority))
        del self.admitted[:-1000]
        backlog = priority is Priority.PROTECTIVE and after_block
        if backlog:
            self._priority_backlog += 1
        self._notify()
        try:
            yield
        finally:
            if backlog:
                self._priority_backlog -= 1
            self._notify()
