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

Bad input never crashes the run and never hides in a clean report: numeric options are
checked when parsed (finite, in range; the message names the option), window and path
errors name the option or config key they came from (``--from/--to``, ``--data`` or
``paper.data_dir``, ``--signals`` or ``paper.signals_file``), market data is validated
before anything runs (:mod:`adapters.replay._klines`: file, line, rule; a move beyond
``--max-move-pct`` or a gap is refused unless ``--allow-price-jumps`` / ``--allow-gaps``),
and a symbol without candles in the window is left out with a note. A run that fails
midway prints the error (not a traceback, unless ``--debug``), the journal closes with
``bot.stopped`` and its reason, and the positions still open are listed with their stops.

SIGINT (Ctrl-C) or SIGTERM ends the replay early and gracefully: the actor tree stops in
order, ``bot.stopped`` is journaled with the signal, and the report of the part replayed
is printed (exit 0). One run per home at a time: a second ``tradebot paper`` on the same
home (or ``--dsn``) is refused with the first one's pid and host (exit 1), before it
touches the database or the spool.

Exit codes: 0 finished or stopped by a signal (report printed), 1 runtime failure or
another run holds the home, 2 bad options/config/data, 3 finished but invariant
violations or stop coverage below 100 % (the report says which).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
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


def _bounded_decimal(
    low: Decimal, high: Decimal, *, low_inclusive: bool = False
) -> Callable[[str], Decimal]:
    """An argparse ``type``: a finite decimal in ``(low, high]`` (``[low, high]`` with
    ``low_inclusive``); argparse names the option in its message."""

    def parse(text: str) -> Decimal:
        try:
            d = Decimal(text.strip())
        except InvalidOperation:
            raise argparse.ArgumentTypeError(f"not a decimal number: {text!r}") from None
        if not d.is_finite():
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
        ok_low = d >= low if low_inclusive else d > low
        if not ok_low or d > high:
            bracket = "[" if low_inclusive else "("
            raise argparse.ArgumentTypeError(
                f"must be in {bracket}{low:f}, {high:f}], got {text!r}"
            )
        return d

    return parse


_decimal = _bounded_decimal(Decimal(0), Decimal("1e12"))
"""The starting wallet: > 0 and at most 1e12 USDT."""
_latency_ms = _bounded_decimal(Decimal(0), Decimal(60_000), low_inclusive=True)
"""A paper venue round trip: 0..60,000 ms (a minute; more is no longer a venue)."""
_move_pct = _bounded_decimal(Decimal(0), Decimal(10_000))
"""The move bound: > 0 and at most 10,000 % (use --allow-price-jumps for none)."""


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
        "--ops",
        action="store_true",
        help="with --speed realtime|Nx: run the operations surface too ([health] HTTP server "
        "with /health, /metrics, the status page and the control API; alerts; systemd notify)",
    )
    p.add_argument(
        "--wallet",
        type=_decimal,
        default=None,
        help="starting wallet, USDT (default: paper.wallet_usdt of the config, 10000)",
    )
    p.add_argument(
        "--latency-ms",
        type=_latency_ms,
        default=None,
        help="paper venue round trip per request, ms, 0..60000 (default: paper.latency_ms, 50)",
    )
    p.add_argument(
        "--max-move-pct",
        type=_move_pct,
        default=None,
        metavar="PCT",
        help="refuse data that moves more than PCT %% between two consecutive price points "
        "(default: 50)",
    )
    p.add_argument(
        "--allow-price-jumps",
        action="store_true",
        help="accept any move between consecutive price points (stop fills beyond the "
        "trigger are still reported as stop.gap_fill incidents)",
    )
    p.add_argument(
        "--allow-gaps", action="store_true", help="accept missing minutes in the kline files"
    )
    p.add_argument("--debug", action="store_true", help="print the traceback of an error")
    p.add_argument("--report-json", type=Path, default=None, help="write the report as JSON")
    p.add_argument("--chart", type=Path, default=None, help="write the equity curve as PNG")
    p.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import logging

    from adapters.replay import ReplayDataError
    from tradebot.cli._errors import report_error
    from tradebot.cli._paper_run import PaperRunOptions, default_home, run_paper
    from tradebot.errors import ConfigError
    from tradebot.price_checks import DEFAULT_MAX_MOVE_PCT
    from tradebot.report import format_table, require_chart_support, write_equity_chart

    # The journal logs one warning per event it stores without a relational projection;
    # the run's report carries their count (details.journal_projection_skipped) instead.
    logging.getLogger("tradebot.journal").setLevel(logging.ERROR)
    debug = bool(getattr(args, "debug", False) or getattr(args, "global_debug", False))
    data_source = "--data"
    signals_source = "--signals"
    try:
        if args.chart is not None:
            require_chart_support()  # before the run, not after it
        if args.start is not None and args.end is not None and args.start >= args.end:
            raise ConfigError(
                [
                    (
                        "--from/--to",
                        f"--from {args.start.isoformat()} is not before --to "
                        f"{args.end.isoformat()}",
                    )
                ]
            )
        if args.allow_price_jumps and args.max_move_pct is not None:
            raise ConfigError(
                [("--max-move-pct", "cannot be combined with --allow-price-jumps (no bound)")]
            )
        config = _load_config(args.config)
        paper = getattr(config, "paper", None)
        home = config.home_path() if config is not None else default_home()
        dsn = args.dsn or (config.database.dsn if config is not None else "") or None
        data = args.data
        if data is None and paper is not None and paper.data_dir:
            data = Path(paper.data_dir).expanduser()
            data_source = "paper.data_dir"
        signals = args.signals
        if signals == "auto" and paper is not None and paper.signals_file:
            signals = paper.signals_file
            signals_source = "paper.signals_file"
        profile = args.venue_profile or (config.exchange.venue if config is not None else "bybit")
        wallet = args.wallet or (
            Decimal(paper.wallet_usdt) if paper is not None else Decimal(10000)
        )
        if args.latency_ms is not None:
            latency_s = float(args.latency_ms) / 1000
        elif paper is not None:
            try:
                latency_s = float(_latency_ms(str(paper.latency_ms))) / 1000
            except argparse.ArgumentTypeError as exc:
                raise ConfigError([("paper.latency_ms", str(exc))]) from None
        else:
            latency_s = 0.05
        symbols = None
        if args.symbols is not None:
            symbols = [x.strip() for x in args.symbols.split(",") if x.strip()]
            if not symbols:
                raise ConfigError([("--symbols", f"no symbol in {args.symbols!r}")])
        opts = PaperRunOptions(
            data_dir=data,
            symbols=symbols,
            signals=signals,
            start=args.start,
            end=args.end,
            speed=args.speed,
            venue_profile=profile,
            dsn=dsn,
            reset_db=args.reset_db,
            home=home,
            wallet_usdt=wallet,
            latency_s=latency_s,
            config=config,
            progress=not args.no_progress,
            max_move_pct=(
                None
                if args.allow_price_jumps
                else (args.max_move_pct if args.max_move_pct is not None else DEFAULT_MAX_MOVE_PCT)
            ),
            allow_gaps=bool(args.allow_gaps),
            ops=bool(args.ops),
        )
        if opts.ops and opts.speed is None:
            raise ConfigError([("--ops", "needs --speed realtime or Nx (not virtual time)")])
        result = run_paper(opts)
    except KeyboardInterrupt:
        raise
    except ConfigError as exc:
        renamed = [(signals_source if k == "--signals" else k, r) for k, r in exc.problems]
        return report_error(ConfigError(renamed), debug=debug)
    except ReplayDataError as exc:
        return report_error(exc, debug=debug, data_source=data_source)
    except BaseException as exc:  # the run failed midway, or a runtime failure before it
        return report_error(exc, debug=debug, data_source=data_source)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    report = result.report
    if report.details.get("interrupted"):
        print(
            f"note: stopped by {report.details['interrupted']} at "
            f"{report.details.get('window_start')} + {report.sim_s} s of the window; "
            "open positions keep their stops (journal: bot.stopped)",
            file=sys.stderr,
        )
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
    from tradebot.redact import dsn_without_password

    hint_dsn = None if args.dsn is None else dsn_without_password(args.dsn)
    where = "--paper" if hint_dsn is None else f"--dsn '{hint_dsn}'"
    print("\ninspect the journal:")
    if hint_dsn is not None and hint_dsn != args.dsn:
        print("  (password left out: set PGPASSWORD or use ~/.pgpass)")
    print(f"  tradebot report {where}")
    for kind, ids in result.examples.items():
        if ids:
            print(f"  tradebot events {where} --position {ids[0]}    # {kind}")
    ok = report.invariant_violations == 0 and report.stop_coverage_pct == Decimal("100.00")
    return 0 if ok else 3
