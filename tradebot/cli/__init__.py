"""The ``tradebot`` command line: the only place that wires actors and adapters together.

Sub-commands live in modules ``tradebot/cli/cmd_*.py``; each defines
``register(subparsers) -> None`` that adds its parser(s) and sets ``func`` to a callable
``(args) -> int`` (the exit code). Modules are discovered, so adding a command means adding
one file.

Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tradebot",
        description="Signal-driven USDT perpetual futures bot (Bybit v5, Binance USD-M).",
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
