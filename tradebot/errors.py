"""The one error tree of tradebot.

Every exception we raise on purpose derives from :class:`TradebotError`. The tree says
*what the caller must do*, not where the error came from::

    TradebotError
    ├── ConfigError                 bad configuration: exit 2 with the key path
    ├── VenueError                  anything an exchange (or the paper venue) answered
    │   ├── TransientError          retry with backoff (5xx before acceptance, network, 10006)
    │   │   └── RateLimited         retry after ``retry_after_s``
    │   ├── RejectedError           the venue said no, definitively: journal, do not retry as is
    │   │   ├── WouldTriggerImmediately   stop already through the market (-2021, 110092/110093)
    │   │   ├── InsufficientBalance       (110007, -2019)
    │   │   ├── OrderValidationError      min qty / step / tick / min notional (110094, -4164)
    │   │   ├── ReduceOnlyRejected        reduce-only with no position (110017, -2022, -4118)
    │   │   ├── SymbolNotTradable         not trading / reduce-only symbol (-4140)
    │   │   ├── UnknownOrder              no such order (110001, -2011, -2013)
    │   │   │   └── OrderAlreadyFinal     the order exists but is already filled or cancelled
    │   │   │                             (Bybit 110008/110010): look it up for its final state
    │   │   ├── DuplicateClientOrderId    client id already used (110072, -4116): look it up
    │   │   └── ZeroPosition              stop on a position that does not exist (10001)
    │   ├── OutcomeUnknown          sent, no definitive answer (timeout, dropped conn, -1006/-1007):
    │   │                           resolve by looking up the client order id, never resend blindly
    │   └── FatalVenueError         auth, permission, IP ban: tear down, alert
    ├── JournalError                database/journal failure the caller must know about
    └── ActorError                  runtime failures
        ├── ActorStopped            the addressed actor is dead or stopped (fails at once)
        ├── AskTimeout              no reply within the ask timeout
        ├── MailboxFull             ``send_nowait`` on a full mailbox
        ├── SupervisorEscalation    restart intensity exceeded: the supervisor gave up
        └── IllegalTransition       a lifecycle change the transition table forbids (a bug:
                                    journaled, then the actor crashes and recovers)

Venue adapters translate venue codes into this tree in exactly one place each
(``adapters/<venue>/errors.py``).
"""

from __future__ import annotations

__all__ = [
    "TradebotError",
    "ConfigError",
    "VenueError",
    "TransientError",
    "RateLimited",
    "RejectedError",
    "WouldTriggerImmediately",
    "InsufficientBalance",
    "OrderValidationError",
    "ReduceOnlyRejected",
    "SymbolNotTradable",
    "UnknownOrder",
    "OrderAlreadyFinal",
    "DuplicateClientOrderId",
    "ZeroPosition",
    "OutcomeUnknown",
    "FatalVenueError",
    "JournalError",
    "ReconcileFailed",
    "ActorError",
    "ActorStopped",
    "AskTimeout",
    "MailboxFull",
    "SupervisorEscalation",
    "IllegalTransition",
]


class TradebotError(Exception):
    """Root of every error tradebot raises on purpose."""


class ConfigError(TradebotError):
    """Invalid configuration.

    Attributes:
        problems: ``(key_path, reason)`` pairs, all problems found at once.
    """

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(f"{k}: {r}" for k, r in self.problems))


class VenueError(TradebotError):
    """An exchange (or simulated exchange) error.

    Attributes:
        code: the venue's code as a string (``"110092"``, ``"-2021"``, ``"http_503"``) or "".
        venue_message: the venue's message, verbatim.
    """

    def __init__(self, message: str = "", *, code: str = "", venue_message: str = "") -> None:
        self.code = code
        self.venue_message = venue_message
        super().__init__(message or venue_message or code)


class TransientError(VenueError):
    """Temporary failure known *not* to have changed venue state; safe to retry."""


class RateLimited(TransientError):
    """Rate limit hit. ``retry_after_s`` says how long to back off (>= 0)."""

    def __init__(
        self,
        message: str = "",
        *,
        code: str = "",
        venue_message: str = "",
        retry_after_s: float = 1.0,
    ) -> None:
        super().__init__(message, code=code, venue_message=venue_message)
        self.retry_after_s = retry_after_s


class RejectedError(VenueError):
    """The venue definitively refused the request; state did not change."""


class WouldTriggerImmediately(RejectedError):
    """Stop/trigger price already through the market (Binance -2021, Bybit 110092/110093)."""


class InsufficientBalance(RejectedError):
    """Not enough margin (Bybit 110007, Binance -2019)."""


class OrderValidationError(RejectedError):
    """Quantity/price violates instrument rules (min qty, step, tick, min notional)."""


class ReduceOnlyRejected(RejectedError):
    """Reduce-only order with nothing to reduce (Bybit 110017, Binance -2022/-4118)."""


class SymbolNotTradable(RejectedError):
    """Symbol closed or reduce-only for new positions (Binance -4140)."""


class UnknownOrder(RejectedError):
    """No such order (Bybit 110001, Binance -2011/-2013)."""


class OrderAlreadyFinal(UnknownOrder):
    """The order is no longer live: it was filled or cancelled (Bybit 110008 "The order has
    been completed or cancelled", 110010 "The order has been cancelled"). Nothing is left
    to amend or cancel; look the order up by client id for its final state."""


class DuplicateClientOrderId(RejectedError):
    """The client order id was already used (Bybit 110072, Binance -4116): look it up."""


class ZeroPosition(RejectedError):
    """A position-level stop was set on an empty position (Bybit 10001 "zero position")."""


class OutcomeUnknown(VenueError):
    """The request may or may not have taken effect. Look up by client order id."""


class FatalVenueError(VenueError):
    """Authentication/permission/ban: no retry helps; stop trading and alert."""


class ReconcileFailed(TradebotError):
    """The start-up reconciliation could not read the venue or the journal: the account
    must not take signals (the launcher exits 1 and systemd retries)."""


class JournalError(TradebotError):
    """The journal could not accept or persist an event."""


class ActorError(TradebotError):
    """Actor runtime failure."""


class ActorStopped(ActorError):
    """The addressed actor is not running (never started, crashed or stopped)."""


class AskTimeout(ActorError):
    """An ``ask`` got no reply within its timeout."""


class MailboxFull(ActorError):
    """``send_nowait`` found the mailbox at capacity."""


class SupervisorEscalation(ActorError):
    """A supervisor exceeded its restart intensity and stopped all its children.

    Raised by the supervisor to its parent (docs/ARCHITECTURE.md §3: the account enters safe
    mode and the process exits non-zero). ``__cause__`` is the last crash of the child.

    Attributes:
        supervisor: the supervisor's name.
        child: the name of the child whose crash exceeded the intensity.
        max_restarts: the policy's restart limit within ``window_s``.
        window_s: the policy's intensity window in seconds.
    """

    def __init__(self, supervisor: str, child: str, *, max_restarts: int, window_s: float) -> None:
        self.supervisor = supervisor
        self.child = child
        self.max_restarts = max_restarts
        self.window_s = window_s
        super().__init__(
            f"supervisor {supervisor!r}: child {child!r} crashed more than "
            f"{max_restarts} restart(s) within {window_s:g} s; escalating"
        )


class IllegalTransition(ActorError):
    """A state machine was asked for a transition its table does not allow.

    Raised by the PositionActor's lifecycle (``actors.position``; the table is in
    docs/ARCHITECTURE.md §4) after journaling it. It is a bug, never an expected outcome:
    the actor crashes and its supervisor restarts it from the last snapshot.

    Attributes:
        machine: what changes state (e.g. ``"position 03c3e4dd36d0d4a9"``).
        from_state: the current state's name.
        to_state: the requested state's name.
        reason: why the transition was requested.
    """

    def __init__(self, machine: str, from_state: str, to_state: str, reason: str) -> None:
        self.machine = machine
        self.from_state = from_state
        self.to_state = to_state
        self.reason = reason
        super().__init__(
            f"{machine}: illegal lifecycle transition {from_state} -> {to_state} ({reason})"
        )
