"""The signal source of a ``tradebot paper`` run: the bundled file, signals generated from
the replayed prices, a JSON-lines file (cut to the replay window) or a WebSocket URL."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import attrs

from adapters.replay import KlineReplay
from tradebot.cli._paper_options import (
    SIGNAL_ARRIVAL_OFFSET_S,
    PaperRunOptions,
)
from tradebot.errors import ConfigError

__all__ = ["_signal_source", "_window_signals_file"]


def _wave_ts_of(line: str) -> datetime | None:
    try:
        obj = json.loads(line)
        ts = obj.get("timestamp") or obj.get("wave_ts")
        return datetime.fromisoformat(str(ts).replace("Z", "+00:00"))
    except (ValueError, AttributeError, TypeError):
        return None


def _window_signals_file(
    src: Path, dst: Path, start: datetime, end: datetime, delay_min: int
) -> int:
    """Copy the lines of ``src`` whose wave can still be processed inside the window
    (``start <= T + delay <= end``) to ``dst``; lines without a readable timestamp are
    kept (the source journals them as rejections). Returns the number of lines kept."""
    kept = 0
    delay = timedelta(minutes=delay_min)
    with (
        open(src, encoding="utf-8", errors="surrogateescape") as fin,
        open(dst, "w", encoding="utf-8", errors="surrogateescape") as fout,
    ):
        for line in fin:
            if not line.strip():
                continue
            ts = _wave_ts_of(line)
            if ts is not None and ts.tzinfo is not None and not (start <= ts + delay <= end):
                continue
            fout.write(line if line.endswith("\n") else line + "\n")
            kept += 1
    return kept


def _signal_source(
    opts: PaperRunOptions, replay: KlineReplay, tmpdir: Path, delay_min: int
) -> tuple[str, Callable[[Any, Any], Any]]:
    """(description, factory(journal, clock) → SignalSource)."""
    from adapters.signals import FileSignalSource, WebSocketSignalSource
    from tradebot import signalgen

    spec = opts.signals.strip()
    if spec.startswith(("ws://", "wss://")):
        if opts.speed is None:
            raise ConfigError(
                [
                    (
                        "--signals",
                        "a WebSocket signal source needs --speed "
                        "realtime (or Nx): virtual time cannot wait for a network",
                    )
                ]
            )
        from tradebot.signals import FeedSettings

        to_feed = getattr(opts.config, "feed_settings", None)
        base = to_feed() if callable(to_feed) else FeedSettings()
        settings = attrs.evolve(base, url=spec)
        return spec, lambda journal, clock: WebSocketSignalSource(
            settings, journal=journal, clock=clock
        )
    if spec == "auto":
        spec = "bundled" if opts.data_dir is None else "generate"
    path = tmpdir / "signals-window.jsonl"
    if spec == "generate":
        from adapters.replay import ReplayDataError, datetime_to_ms

        try:
            first_wave = replay.start - timedelta(minutes=15)
            # the kept candles and the 4 h of history before them, not the files again
            known = replay.signal_closes(datetime_to_ms(first_wave) - signalgen.LONG_LOOKBACK_MS)
            waves = signalgen.generate(
                replay.data_dir,
                start=first_wave,
                end=replay.end,
                symbols=replay.symbols,
                closes=known[0] if known is not None else None,
                close_span_ms=known[1] if known is not None else None,
            )
        except ValueError as exc:  # a bad row the generator reads (the history before the
            # window; whole files when the candles are not kept)
            raise ReplayDataError(f"signal generation: {exc}", rule="format") from None
        src = tmpdir / "signals-generated.jsonl"
        with open(src, "w", encoding="utf-8") as fh:
            signalgen.write_jsonl(waves, fh)
        desc = f"generated from the replayed prices ({len(waves)} waves, tradebot.signalgen)"
    elif spec == "bundled":
        src = signalgen.bundled_signals_path()
        desc = f"bundled {src.name}"
    else:
        src = Path(spec).expanduser()
        if not src.is_file():
            raise ConfigError([("--signals", f"no such file: {src}")])
        desc = str(src)
    kept = _window_signals_file(src, path, replay.start, replay.end, delay_min)
    desc += f"; {kept} waves in the window"
    return desc, lambda journal, clock: FileSignalSource(
        path, journal=journal, clock=clock, paced=True, arrival_offset_s=SIGNAL_ARRIVAL_OFFSET_S
    )
