r"""``tradebot paper``: paper trading on replayed real market data, then the report.

Runs the production actor tree of one account (journal, paper exchange, routers, signal
feed, wave processor, position supervisor) on 1-minute klines (bundled 3 days by default)
in trio virtual time; prints a progress line while it runs and the report at the end
(:mod:`tradebot.report`); writes it as JSON (``--report-json``) and an equity PNG
(``--chart``). Wiring and semantics: :mod:`tradebot.cli._paper_run`.

Examples::

    tradebot paper                                   # bundled 3 days, bundled signals
    tradebot paper --venue-profile binance --report-json report.json --chart equity.png
    tradebot paper --data ../shared/data/market/binance-usdm-1m-2025-05 --signals generate
    tradebot events --paper --position <id>          # a position's journal timeline
    tradebot report --paper                          # what the paper journal holds

A live-looking run (real time, signals over a WebSocket from the loopback signal service,
one wave every 15 minutes like the real one; the waves keep their timestamps, so start the
bot within the server's start delay, with a window that begins just before the first wave
is processed at 04:20)::

    tradebot signal-server --replay tradebot/data/signals/signals-2025-05-20.jsonl \
        --port 8765 --speed 1 --start-delay 10 &
    tradebot paper --speed realtime --signals ws://127.0.0.1:8765/signals \
        --from 2025-05-20T04:19:00Z --to 2025-05-20T05:00:00Z

Exit codes: 0 finished (report printed), 1 runtime failure, 2 bad options/config/data,
3 finished but invariant violations or stop coverage below 100 % (the report says which).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any


def _iso(text: str) -> datetime:
    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 UTC time: {text!r}") from None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _speed(text: str) -> float | None:
    from tradebot.cli._paper_run import parse_speed

    try:
        return parse_speed(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _decimal(text: str) -> Decimal:
    try:
        d = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not a decimal: {text!r}") from None
    if not d.is_finite() or d <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {text!r}")
    return d


def _load_config(path: Path | None) -> Any:
    """The config file, else the built-in defaults (None if the config module is absent)."""
    if path is not None:
        from tradebot.config import load_config

        return load_config(path)
    try:
        from tradebot.config import default_config
    except ImportError:  # pragma: no cover - config module not installed
        return None
    return default_config()


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "paper",
        help="paper trading on replayed market data (bundled 3 days by default)",
        description="Run the whole bot on historical 1m klines against the paper exchange, "
        "in virtual time, and print the report.",
    )
    p.add_argument(
        "--config", type=Path, default=None, help="config.toml (default: built-in defaults)"
    )
    p.add_argument(
        "--data",
        type=Path,
        default=None,
        help="directory of SYMBOL.csv.gz 1m klines (default: bundled 3 days)",
    )
    p.add_argument("--symbols", default=None, help="comma-separated subset of symbols")
    p.add_argument(
        "--signals",
        default="auto",
        help="FILE (JSON lines), 'generate' (from the replayed prices), or "
        "ws://HOST:PORT/PATH of a signal service (needs --speed realtime|Nx); "
        "default: the bundled signals for the bundled data, else generate",
    )
    p.add_argument("--from", dest="start", type=_iso, default=None, help="window start, ISO UTC")
    p.add_argument("--to", dest="end", type=_iso, default=None, help="window end, ISO UTC")
    p.add_argument(
        "--speed",
        type=_speed,
        default=None,
        metavar="max|realtime|Nx",
        help="max = virtual time as fast as possible (default); realtime; Nx",
    )
    p.add_argument(
        "--venue-profile",
        choices=["bybit", "binance"],
        default=None,
        help="paper venue behaviour (default: exchange.venue of the config, else bybit)",
    )
    p.add_argument(
        "--dsn",
        default=None,
        help="journal database (default: embedded, database tradebot_paper, recreated each run)",
    )
    p.add_argument(
        "--reset-db", action="store_true", help="with --dsn: empty the journal tables first"
    )
    p.add_argument(
        "--wallet",
        type=_decimal,
        default=None,
        help="starting wallet, USDT (default: paper.wallet_usdt of the config, 10000)",
    )
    p.add_argument(
        "--latency-ms",
        type=float,
        default=None,
        help="paper venue round trip per request, ms (default: paper.latency_ms, 50)",
    )
    p.add_argument("--report-json", type=Path, default=None, help="write the report as JSON")
    p.add_argument("--chart", type=Path, default=None, help="write the equity curve as PNG")
    p.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import logging

    from adapters.replay import ReplayDataError
    from tradebot.cli._paper_run import PaperRunOptions, default_home, run_paper
    from tradebot.errors import ConfigError
    from tradebot.report import format_table, require_chart_support, write_equity_chart

    # The journal logs one warning per event it stores without a relational projection;
    # the run's report carries their count (details.journal_projection_skipped) instead.
    logging.getLogger("tradebot.journal").setLevel(logging.ERROR)
    try:
        if args.chart is not None:
            require_chart_support()  # before the run, not after it
        config = _load_config(args.config)
        paper = getattr(config, "paper", None)
        home = config.home_path() if config is not None else default_home()
        dsn = args.dsn or (config.database.dsn if config is not None else "") or None
        data = args.data
        if data is None and paper is not None and paper.data_dir:
            data = Path(paper.data_dir).expanduser()
        signals = args.signals
        if signals == "auto" and paper is not None and paper.signals_file:
            signals = paper.signals_file
        profile = args.venue_profile or (config.exchange.venue if config is not None else "bybit")
        wallet = args.wallet or (
            Decimal(paper.wallet_usdt) if paper is not None else Decimal(10000)
        )
        latency_ms = args.latency_ms
        if latency_ms is None:
            latency_ms = float(paper.latency_ms) if paper is not None else 50.0
        if latency_ms < 0:
            raise ConfigError([("--latency-ms", "must be >= 0")])
        opts = PaperRunOptions(
            data_dir=data,
            symbols=args.symbols.split(",") if args.symbols else None,
            signals=signals,
            start=args.start,
            end=args.end,
            speed=args.speed,
            venue_profile=profile,
            dsn=dsn,
            reset_db=args.reset_db,
            home=home,
            wallet_usdt=wallet,
            latency_s=latency_ms / 1000,
            config=config,
            progress=not args.no_progress,
        )
        result = run_paper(opts)
    except ConfigError as exc:
        for key, reason in exc.problems:
            print(f"{key}: {reason}", file=sys.stderr)
        return 2
    except ReplayDataError as exc:
        print(f"--data: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    report = result.report
    print("instruments:")
    for line in result.instrument_lines:
        print("  " + line)
    print(f"signals: {report.details.get('signals')}")
    print()
    print(
        format_table(
            report, title=f"tradebot paper ({report.details.get('venue_profile')}): report"
        )
    )
    if args.report_json is not None:
        args.report_json.write_text(report.to_json() + "\n", encoding="utf-8")
        print(f"\nreport written to {args.report_json}")
    if args.chart is not None:
        write_equity_chart(
            report.equity_curve,
            args.chart,
            title=f"Equity, paper {report.details.get('venue_profile')} (USDT)",
        )
        print(f"equity chart written to {args.chart}")
    where = "--paper" if args.dsn is None else f"--dsn '{args.dsn}'"
    print("\ninspect the journal:")
    print(f"  tradebot report {where}")
    for kind, ids in result.examples.items():
        if ids:
            print(f"  tradebot events {where} --position {ids[0]}    # {kind}")
    ok = report.invariant_violations == 0 and report.stop_coverage_pct == Decimal("100.00")
    return 0 if ok else 3
