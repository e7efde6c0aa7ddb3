"""One error surface for the command line: the error the user needs, the right exit code.

Exceptions leaving the actor tree arrive wrapped in (nested) ``ExceptionGroup``\\ s by
trio's nurseries; the precise error — a :class:`~adapters.replay.ReplayDataError` with its
file and line, a :class:`~tradebot.errors.ConfigError` with its key paths — is a leaf of
that tree. :func:`user_error` finds it; :func:`report_error` prints it as one or a few
lines, with what to do, and returns the exit code:

* **2 — bad input**: configuration (``ConfigError``: ``key.path: reason`` per problem),
  market data (``ReplayDataError``: ``--data: <file>:<line>: <reason>`` and the option
  that allows it, where one does), command-line values.
* **1 — runtime failure**: anything else (database, network, a bug): ``error: <type>:
  <message>``.

No traceback unless ``--debug`` (then the full one, groups included, follows).
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Iterator
from typing import TextIO

from tradebot.errors import ConfigError, TradebotError

__all__ = ["EXIT_BAD_INPUT", "EXIT_RUNTIME", "exit_code_for", "report_error", "user_error"]

EXIT_RUNTIME = 1
EXIT_BAD_INPUT = 2

# Where a market-data rule can be relaxed on purpose (tradebot paper's options).
_DATA_HINTS = {
    "move": "if the move is real, pass --allow-price-jumps (or raise --max-move-pct)",
    "gap": "if the missing minutes are real, pass --allow-gaps",
}


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for sub in exc.exceptions:
            yield from _leaves(sub)
    else:
        yield exc


def _is_bad_input(exc: BaseException) -> bool:
    from adapters.replay import ReplayDataError

    return isinstance(exc, ConfigError | ReplayDataError)


def user_error(exc: BaseException) -> BaseException:
    """The one error a user must see: the leaf of ``exc``'s exception groups that is bad
    input, else one of ours (:class:`TradebotError`), else the first one that is not a
    cancellation/interrupt, else the first leaf. A ``PaperRunFailed`` is its cause."""
    leaves = list(_leaves(exc))
    for pick in (
        _is_bad_input,
        lambda e: isinstance(e, TradebotError),
        lambda e: not _is_cancellation(e),
    ):
        for leaf in leaves:
            if pick(leaf):
                return _cause(leaf)
    return _cause(leaves[0]) if leaves else exc


def _cause(exc: BaseException) -> BaseException:
    inner = getattr(exc, "user_cause", None)
    return user_error(inner) if isinstance(inner, BaseException) else exc


def _is_cancellation(exc: BaseException) -> bool:
    import trio

    return isinstance(exc, trio.Cancelled | KeyboardInterrupt | GeneratorExit)


def exit_code_for(exc: BaseException) -> int:
    """2 for bad input (config, market data), 1 for everything else."""
    return EXIT_BAD_INPUT if _is_bad_input(user_error(exc)) else EXIT_RUNTIME


def report_error(
    exc: BaseException,
    *,
    debug: bool = False,
    data_source: str = "--data",
    stream: TextIO | None = None,
) -> int:
    """Print the user's error (module docstring) and return the exit code.

    Args:
        exc: what escaped (possibly an exception group).
        debug: also print the full traceback.
        data_source: the option or config key the market data came from
            (``--data`` / ``paper.data_dir``), named in front of a market-data error.
        stream: where to print (default stderr).
    """
    from adapters.replay import ReplayDataError

    out = stream if stream is not None else sys.stderr
    err = user_error(exc)
    if isinstance(err, ConfigError):
        for key, reason in err.problems:
            print(f"{key}: {reason}", file=out)
    elif isinstance(err, ReplayDataError):
        where = "--from/--to" if err.rule == "window" else data_source
        print(f"{where}: {err}", file=out)
        hint = _DATA_HINTS.get(err.rule)
        if hint:
            print(f"  {hint}", file=out)
    else:
        print(f"error: {type(err).__name__}: {err}", file=out)
        if not debug:
            print("  (run with --debug for the traceback)", file=out)
    for line in getattr(exc, "user_notes", ()) or ():
        print(line, file=out)
    if debug:
        traceback.print_exception(exc, file=out)
    out.flush()
    return exit_code_for(exc)
