"""Per-endpoint rate budgets that keep capacity for protective calls.

Bybit limits order create/amend/cancel and trading-stop to 10 requests/s per UID and
endpoint, reads to 50/s (exchanges.md section 5). A wave can queue many entries at once;
a stop move or a close queued behind them would wait seconds — exactly when it matters.
Each :class:`RateBudget` is a token bucket with two rules:

* waiters are served by priority (``PROTECTIVE`` before ``NORMAL``), FIFO within one;
* a ``NORMAL`` request never takes the last ``reserved`` tokens, so a protective request
  that arrives while entries are queued gets a token at once or within one slot
  (``1 / rate_per_s`` seconds).

The venue's view wins: every Bybit reply carries ``X-Bapi-Limit`` (the endpoint's limit per
second for this UID), ``X-Bapi-Limit-Status`` (requests left in the current window) and
``X-Bapi-Limit-Reset-Timestamp`` (ms when the window resets; exchanges.md section 5, docs
v5/rate-limit). :meth:`RateBudget.observe` keeps the bucket in step with them: never more
tokens than the venue has left, none at all until the reset when it has none, and a
sustained rate lowered to what the venue's limit allows (a new or low-tier account has
lower limits than our defaults; other clients of the same UID spend the same limit).

Everything runs on trio's clock, so tests can check exact virtual times under ``MockClock``.
"""

from __future__ import annotations

import enum
import heapq
import itertools
import math

import trio

__all__ = ["EndpointBudgets", "Priority", "RateBudget", "endpoint_group"]


class Priority(enum.IntEnum):
    """Lower value is served first."""

    PROTECTIVE = 0  # stop place/move/cancel, reduce/close orders
    NORMAL = 1  # entries, reads, setup


class RateBudget:
    """A priority token bucket.

    Args:
        rate_per_s: sustained requests per second (> 0).
        capacity: bucket size (burst), >= 1.
        reserved: tokens a NORMAL request leaves for protective ones (0 <= reserved < capacity).
    """

    def __init__(self, rate_per_s: float, capacity: int, reserved: int = 1) -> None:
        if rate_per_s <= 0 or capacity < 1 or not 0 <= reserved < capacity:
            raise ValueError("need rate_per_s > 0, capacity >= 1, 0 <= reserved < capacity")
        self.rate_per_s = rate_per_s
        self.configured_rate_per_s = rate_per_s
        self.capacity = capacity
        self.reserved = reserved
        self._tokens = float(capacity)
        self._last = trio.current_time()
        self._waiters: list[tuple[int, int]] = []
        self._seq = itertools.count()
        self._changed = trio.Event()

    @property
    def queued(self) -> int:
        """Number of requests waiting for a token."""
        return len(self._waiters)

    def available(self) -> float:
        """Tokens available now (fractional)."""
        self._refill()
        return self._tokens

    def _refill(self) -> None:
        now = trio.current_time()
        if now < self._last:
            return  # held until the venue's window resets (see observe)
        self._tokens = min(
            float(self.capacity), self._tokens + (now - self._last) * self.rate_per_s
        )
        self._last = now

    def observe(self, limit: int | None, remaining: int | None, reset_in_s: float) -> None:
        """Bring the bucket in step with the venue's rate-limit headers.

        Args:
            limit: ``X-Bapi-Limit``, the venue's requests per second for this endpoint
                (> 0), or None when absent. The sustained rate becomes
                ``min(configured, limit - capacity - 1)`` (at least 1/s): the same slack
                rule as :class:`EndpointBudgets`. A higher limit later restores the
                configured rate, never more.
            remaining: ``X-Bapi-Limit-Status``, requests left in the current window (>= 0),
                or None. The bucket never holds more tokens than that; at 0 it holds none
                until the reset.
            reset_in_s: seconds until ``X-Bapi-Limit-Reset-Timestamp`` (clamped to
                [0, 60]; a past reset counts as 0).
        """
        self._refill()
        if limit is not None and limit > 0:
            venue_rate = max(float(limit - self.capacity - 1), 1.0)
            self.rate_per_s = min(self.configured_rate_per_s, venue_rate)
        if remaining is not None and remaining >= 0:
            self._tokens = min(self._tokens, float(remaining))
            if remaining == 0:
                hold = min(max(reset_in_s, 0.0), 60.0)
                self._last = max(self._last, trio.current_time() + hold)
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def acquire(self, priority: Priority = Priority.NORMAL) -> None:
        """Wait for a token. Cancellation-safe (a cancelled waiter leaves the queue)."""
        entry = (int(priority), next(self._seq))
        heapq.heappush(self._waiters, entry)
        self._notify()
        need = 1.0 if priority is Priority.PROTECTIVE else 1.0 + self.reserved
        try:
            while True:
                self._refill()
                if self._waiters[0] == entry and self._tokens >= need - 1e-9:
                    heapq.heappop(self._waiters)
                    self._tokens -= 1.0
                    self._notify()
                    return
                changed = self._changed
                if self._waiters[0] == entry:
                    held = max(self._last - trio.current_time(), 0.0)
                    delay = held + max((need - self._tokens) / self.rate_per_s, 0.0)
                else:
                    delay = math.inf
                with trio.move_on_after(delay):
                    await changed.wait()
        except BaseException:
            if entry in self._waiters:
                self._waiters.remove(entry)
                heapq.heapify(self._waiters)
                self._notify()
            raise


def endpoint_group(path: str) -> str:
    """Which budget a REST path draws from (Bybit per-endpoint limits, exchanges.md s.5)."""
    if (
        path.startswith("/v5/order/create")
        or path.startswith("/v5/order/amend")
        or path.startswith("/v5/order/cancel")
    ):
        return "order"
    if path.startswith("/v5/position/trading-stop"):
        return "trading_stop"
    if path.startswith("/v5/market/"):
        return "public"
    return "read"


class EndpointBudgets:
    """One :class:`RateBudget` per endpoint group, sized to stay under the venue's limits.

    Arguments are the venue's per-second limits (per UID, exchanges.md section 5): order
    create/amend/cancel 10/s, trading-stop 10/s, reads 50/s; public market data 50/s (IP
    limit 600/5 s). A token bucket with capacity ``c`` and rate ``r`` can let ``c + r``
    requests into any 1-s window, so each budget gets ``c = reserved + 1`` and
    ``r = limit - c - 1`` (one request of slack for network jitter). ``reserved`` tokens of
    each write budget are kept for protective calls.
    """

    def __init__(
        self,
        *,
        order_per_s: float = 10.0,
        trading_stop_per_s: float = 10.0,
        read_per_s: float = 50.0,
        public_per_s: float = 50.0,
        reserved: int = 2,
    ) -> None:
        def make(limit: float, keep: int) -> RateBudget:
            capacity = keep + 1
            return RateBudget(max(limit - capacity - 1, 1.0), capacity, keep)

        self.budgets: dict[str, RateBudget] = {
            "order": make(order_per_s, reserved),
            "trading_stop": make(trading_stop_per_s, reserved),
            "read": make(read_per_s, 1),
            "public": make(public_per_s, 1),
        }

    def for_path(self, path: str) -> RateBudget:
        return self.budgets[endpoint_group(path)]

    def observe(
        self, path: str, limit: int | None, remaining: int | None, reset_in_s: float
    ) -> None:
        """Feed one reply's ``X-Bapi-Limit*`` headers to the budget of ``path``'s group.

        Bybit counts per endpoint; a group shares one bucket, so the bucket follows the
        tightest endpoint seen (conservative)."""
        self.for_path(path).observe(limit, remaining, reset_in_s)
