"""``tradebot check-config [PATH]``: validate a config file and print it resolved.

Exit 0 and the resolved configuration (secrets masked) when valid; exit 2 and one line per
problem (``key.path: reason``), all problems at once, when not.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "check-config", help="validate a config file; print it resolved (secrets masked)"
    )
    parser.add_argument(
        "path",
        nargs="?",
        type=Path,
        default=Path("config.toml"),
        help="config file (default: ./config.toml)",
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="print nothing when valid")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tradebot.config import format_config, load_config
    from tradebot.errors import ConfigError

    try:
        cfg = load_config(args.path)
    except ConfigError as exc:
        print(f"{args.path}: {len(exc.problems)} problem(s)", file=sys.stderr)
        for key, reason in exc.problems:
            print(f"{key}: {reason}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(
            f"# {args.path}: valid (mode {cfg.bot.mode}, venue {cfg.exchange.venue}"
            f"/{cfg.exchange.environment})"
        )
        print(format_config(cfg))
    return 0
