"""The position lifecycle as an explicit transition table (docs/ARCHITECTURE.md §4).

Owns: the lifecycle state of one position. :meth:`LifecycleMachine.transition` is the ONLY
place that changes it while the actor runs (:meth:`LifecycleMachine.restore` sets the
state read back from a snapshot when a restarted actor starts, before any transition).
Consumes: transition requests ``(to, reason)`` from the actor's parts.
Emits: ``position.illegal_transition`` (CRITICAL; ``from``, ``to``, ``reason``,
``message``) through the ``on_illegal`` hook, then raises
:class:`tradebot.errors.IllegalTransition`; allowed transitions emit nothing here (the
parts journal their own ``position.*`` events, as before).

Transition table (every allowed ``from → to``; anything else is illegal, including
staying in the same state and leaving CLOSED or ROLLED_BACK):

=========== =========== ================================================================
from        to          when
=========== =========== ================================================================
OPENING     ACTIVE      entry filled and its stop confirmed; or an untracked position
                        adopted (reconciler) and protected
OPENING     CLOSING     the stop would trigger at once (-2021 / 110092/110093): close at
                        market
OPENING     ROLLED_BACK entry rejected, not placed, not filled; or filled and flattened
                        (verified flat) because no stop could be placed
OPENING     FAILED      entry outcome unresolvable, or stop and flatten both failed:
                        emergency stop + critical alert
OPENING     CLOSED      adoption found nothing to adopt
ACTIVE      CLOSING     Close (operator, aged max loss, protection breach)
ACTIVE      CLOSED      closed outside the close protocol: stop triggered, take-profit
                        complete, external / manual close, liquidation, ADL
ACTIVE      ROLLED_BACK the stop repair failed and the position was flattened
ACTIVE      FAILED      the stop repair failed and so did the flatten: emergency stop
CLOSING     CLOSED      the close is verified flat
CLOSING     ACTIVE      the close failed (reduce orders refused): back where it came from;
                        or a restart found a CLOSING snapshot (the close is re-decided)
CLOSING     OPENING     the close inside the open protocol failed: back to OPENING, which
                        then flattens or fails
FAILED      CLOSED      the position is flat (closed by us, its emergency stop, or the
                        venue); a Close of a FAILED position keeps it FAILED while its
                        reduce orders run and when they fail
=========== =========== ================================================================

CLOSED and ROLLED_BACK are final.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

from tradebot.errors import IllegalTransition

__all__ = ["TRANSITIONS", "Lifecycle", "LifecycleMachine"]


class Lifecycle(enum.Enum):
    """``OPENING → ACTIVE → CLOSING → CLOSED`` (+ ROLLED_BACK, FAILED); see the table.

    FAILED: the position could be neither protected normally nor flattened; it carries an
    emergency stop and a critical alert was raised; the actor keeps verifying it.
    """

    OPENING = "OPENING"
    ACTIVE = "ACTIVE"
    CLOSING = "CLOSING"
    CLOSED = "CLOSED"
    ROLLED_BACK = "ROLLED_BACK"
    FAILED = "FAILED"


_L = Lifecycle
TRANSITIONS: frozenset[tuple[Lifecycle, Lifecycle]] = frozenset(
    {
        (_L.OPENING, _L.ACTIVE),
        (_L.OPENING, _L.CLOSING),
        (_L.OPENING, _L.ROLLED_BACK),
        (_L.OPENING, _L.FAILED),
        (_L.OPENING, _L.CLOSED),
        (_L.ACTIVE, _L.CLOSING),
        (_L.ACTIVE, _L.CLOSED),
        (_L.ACTIVE, _L.ROLLED_BACK),
        (_L.ACTIVE, _L.FAILED),
        (_L.CLOSING, _L.CLOSED),
        (_L.CLOSING, _L.ACTIVE),
        (_L.CLOSING, _L.OPENING),
        (_L.FAILED, _L.CLOSED),
    }
)
"""Every allowed ``(from, to)`` pair (the table in this module's docstring)."""

FINAL: frozenset[Lifecycle] = frozenset({_L.CLOSED, _L.ROLLED_BACK})


class LifecycleMachine:
    """The lifecycle of one position; starts in OPENING.

    Args:
        name: what it belongs to, for errors (``"position <id>"``).
        on_illegal: called with ``(from, to, reason)`` before :class:`IllegalTransition`
            is raised (the actor journals it); must not raise.
    """

    __slots__ = ("_moved", "_name", "_on_illegal", "_state")

    def __init__(
        self,
        name: str,
        on_illegal: Callable[[Lifecycle, Lifecycle, str], None] | None = None,
    ) -> None:
        self._name = name
        self._on_illegal = on_illegal
        self._state = Lifecycle.OPENING
        self._moved = False

    @property
    def state(self) -> Lifecycle:
        return self._state

    def transition(self, to: Lifecycle, reason: str) -> None:
        """Move to ``to``.

        Raises:
            IllegalTransition: ``(state, to)`` is not in :data:`TRANSITIONS` (journaled
                through ``on_illegal`` first; the state is unchanged).
        """
        frm = self._state
        if (frm, to) not in TRANSITIONS:
            if self._on_illegal is not None:
                self._on_illegal(frm, to, reason)
            raise IllegalTransition(self._name, frm.value, to.value, reason)
        self._state = to
        self._moved = True

    def restore(self, state: Lifecycle) -> None:
        """Set the state read back from a snapshot (a restarted actor, before it runs).

        Raises:
            RuntimeError: a transition happened already (restore is for start-up only).
        """
        if self._moved:
            raise RuntimeError(f"{self._name}: restore after a transition")
        self._state = state

    @property
    def final(self) -> bool:
        """CLOSED or ROLLED_BACK: nothing follows."""
        return self._state in FINAL
