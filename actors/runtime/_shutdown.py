"""Ordered graceful shutdown (docs/ARCHITECTURE.md §10: SIGTERM stops entries first, finishes
in-flight actions, drains the journal last)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Protocol

import attrs
import trio

__all__ = ["GracefulStop", "StopGroup", "Stoppable"]


class Stoppable(Protocol):
    """Anything that can be stopped gracefully within a deadline.

    Implemented by :class:`DynamicSupervisor` (all its children), :class:`Supervisor`
    (all its children) and ``Supervisor.child(name)`` (one child).
    """

    async def stop(self, deadline_s: float) -> None: ...


def _deadline(_instance: object, _attribute: object, value: float) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or math.isnan(value)
        or value < 0
    ):
        raise ValueError(f"deadline_s must be a number >= 0, got {value!r}")


def _members(members: Iterable[Stoppable]) -> tuple[Stoppable, ...]:
    return tuple(members)


@attrs.frozen
class StopGroup:
    """Members stopped together (concurrently), each drained within ``deadline_s`` seconds.

    Attributes:
        name: label (e.g. ``"entries"``, ``"positions"``, ``"journal"``).
        members: what to stop.
        deadline_s: each member's drain deadline (>= 0 s); after it, the member's
            remaining work is cancelled and reported to its supervision sink.
    """

    name: str
    members: tuple[Stoppable, ...] = attrs.field(converter=_members)
    deadline_s: float = attrs.field(validator=_deadline)


class GracefulStop:
    """Stop groups strictly one after the other, e.g. entries first, positions last::

        shutdown = GracefulStop([
            StopGroup("entries", [sup.child("signal_feed"), sup.child("wave")], 5.0),
            StopGroup("positions", [position_supervisor], 30.0),
            StopGroup("journal", [sup.child("journal")], 10.0),
        ])
        await shutdown.run()

    Guarantees: group ``n + 1`` starts stopping only after every member of group ``n``
    has ended (drained or cancelled at its deadline), so the whole run takes at most
    about the sum of the groups' deadlines. ``completed`` lists finished group names.
    """

    def __init__(self, groups: Sequence[StopGroup]) -> None:
        names = [g.name for g in groups]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate stop group names in {names!r}")
        self.groups: tuple[StopGroup, ...] = tuple(groups)
        self.completed: list[str] = []

    async def run(self) -> None:
        """Stop every group in order. Cancellation stops the sequence where it is."""
        for group in self.groups:
            async with trio.open_nursery() as nursery:
                for member in group.members:
                    nursery.start_soon(member.stop, group.deadline_s)
            self.completed.append(group.name)
