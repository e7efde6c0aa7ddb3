"""``tradebot run --config PATH [--dry-run] [--symbols A,B]``: the bot on one exchange account.

Live (``bot.mode = "live"``): real orders on ``exchange.venue`` / ``exchange.environment``
(URL overrides from ``[exchange]``), keys from the environment variables the config names,
signals from ``signals.url``, the journal in ``[database]``. Dry-run (``--dry-run`` or
``bot.mode = "dry-run"``): the venue's real public market stream, no keys, orders matched
by the paper engine. Start-up order, safe mode and shutdown: :mod:`tradebot.cli._run_live`.

Examples::

    tradebot db migrate --config config.toml
    tradebot run --config config.toml --dry-run       # rehearse on the live market
    TRADEBOT_API_KEY=... TRADEBOT_API_SECRET=... tradebot run --config config.toml
    tradebot events --config config.toml --position <id>

Exit codes: 0 stopped by SIGTERM/SIGINT (graceful), 1 venue or database failure or another
instance holds the account, 2 configuration or credentials, 3 safe mode (systemd restarts).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "run",
        help="trade live on the configured exchange account (or --dry-run on its live market)",
        description="Run the bot on one exchange account: config check, single-instance "
        "lock, schema check, venue clock and authentication, instruments, account setup, "
        "reconciliation, then the signal feed. SIGTERM/SIGINT stop it gracefully.",
    )
    p.add_argument("--config", type=Path, required=True, help="config.toml")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="the venue's public market stream, no keys, orders matched by the paper engine",
    )
    p.add_argument(
        "--symbols",
        default=None,
        help="comma-separated symbols to trade (default: every trading USDT perpetual)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tradebot.cli._run_live import EXIT_CONFIG, RunOptions, run_live

    symbols = None
    if args.symbols is not None:
        symbols = [s.strip().upper() for s in args.symbols.split(",") if s.strip()]
        if not symbols:
            import sys

            print(f"--symbols: no symbol in {args.symbols!r}", file=sys.stderr)
            return EXIT_CONFIG
    return run_live(RunOptions(config_path=args.config, dry_run=args.dry_run, symbols=symbols))
