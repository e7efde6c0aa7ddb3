"""``tradebot run``'s start-up steps: the options, the exit codes and the step records.

Owns :class:`RunOptions` (what ``tradebot run`` runs), the exit codes (0 stopped by a
signal, 1 venue/database failure or another instance running, 2 configuration or
credentials, 3 safe mode), :class:`StartupFailed` (a failed step: the user's one line and
its exit code) and the ``bot.startup_step`` records (:class:`tradebot.events.StartupStep`):
:class:`_Steps` prints each step's line and journals it, keeping the steps done before the
journal opens until it is there; :func:`_step` runs one step and maps its failure to an
exit code and a message. The order of the steps: :mod:`tradebot.cli._run_live`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

import attrs

from tradebot.events import Event, Severity, StartupStep

__all__ = [
    "EXIT_CONFIG",
    "EXIT_OK",
    "EXIT_RUNTIME",
    "EXIT_SAFE_MODE",
    "RunOptions",
    "StartupFailed",
]

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_CONFIG = 2
EXIT_SAFE_MODE = 3


@attrs.frozen
class RunOptions:
    """What ``tradebot run`` runs.

    Attributes:
        config_path: the config file.
        dry_run: ``--dry-run`` (else ``bot.mode`` decides).
        symbols: ``--symbols`` subset of the venue's instruments; None = every trading
            USDT perpetual the venue lists.
    """

    config_path: Path
    dry_run: bool = False
    symbols: Sequence[str] | None = None


class StartupFailed(Exception):
    """A start-up step failed: ``message`` is the one line for the user."""

    def __init__(self, step: str, exit_code: int, message: str) -> None:
        super().__init__(message)
        self.step = step
        self.exit_code = exit_code
        self.message = message


@attrs.define
class _Steps:
    """The start-up steps done so far; journaled as soon as (and whenever) a journal is
    there."""

    clock: Any
    out: TextIO
    pending: list[Event] = attrs.Factory(list)
    journal: Any = None

    def record(
        self,
        step: str,
        status: str,
        detail: str,
        t0: float,
        exit_code: int | None = None,
    ) -> None:
        event = Event.of(
            StartupStep(
                step=step,
                status=status,  # type: ignore[arg-type]
                detail=detail,
                elapsed_ms=round((time.perf_counter() - t0) * 1000, 3),
                exit_code=exit_code,
            ),
            self.clock.now(),
            severity=Severity.ERROR if status == "failed" else Severity.INFO,
        )
        if status != "failed":
            print(f"{step:<15} {status:<7} {detail}", file=self.out, flush=True)
        if self.journal is None:
            self.pending.append(event)
        else:
            self.journal.emit(event)

    def attach(self, journal: Any) -> None:
        self.journal = journal
        for event in self.pending:
            journal.emit(event)
        self.pending.clear()


def _err(exc: BaseException) -> str:
    from tradebot.cli._errors import user_error

    leaf = user_error(exc)
    return f"{type(leaf).__name__}: {leaf}"[:2000]


async def _step(
    steps: _Steps,
    name: str,
    fn: Callable[[], Awaitable[str]],
    *,
    fail: Callable[[BaseException], tuple[int, str]],
) -> None:
    t0 = time.perf_counter()
    try:
        detail = await fn()
    except StartupFailed:
        raise
    except Exception as exc:
        code, message = fail(exc)
        steps.record(name, "failed", message, t0, exit_code=code)
        raise StartupFailed(name, code, message) from exc
    steps.record(name, "ok", detail, t0)
