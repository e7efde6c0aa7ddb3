"""The ``tradebot`` command line: the only place that wires actors and adapters together.

Sub-commands live in modules ``tradebot/cli/cmd_*.py``; each defines
``register(subparsers) -> None`` that adds its parser(s) and sets ``func`` to a callable
``(args) -> int`` (the exit code). Modules are discovered, so adding a command means adding
one file.

Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error. An exception
that escapes a command is reported by :func:`tradebot.cli._errors.report_error` (the
user's error unwrapped from exception groups, no traceback unless ``tradebot --debug``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tradebot",
        description="Signal-driven USDT perpetual futures bot (Bybit v5, Binance USD-M).",
    )
    parser.add_argument(
        "--debug",
        dest="global_debug",
        action="store_true",
        help="print the full traceback of an error",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    package_path = __path__
    for info in sorted(pkgutil.iter_modules(package_path), key=lambda i: i.name):
        if info.name.startswith("cmd_"):
            module = importlib.import_module(f"{__name__}.{info.name}")
            module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tradebot`` console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (`tradebot report | head`): exit quietly
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - no flush error at exit
        except OSError:
            pass
        return 141
    except Exception as exc:  # a command let an error escape: one clear message, exit 1/2
        from tradebot.cli._errors import report_error

        return report_error(exc, debug=bool(getattr(args, "global_debug", False)))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
