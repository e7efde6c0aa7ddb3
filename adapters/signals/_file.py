"""JSON-lines file source (replay, paper trading, tests), implementing ``SignalSource``.

One protocol message per line (a ``wave`` or a ``signal`` message, docs/ARCHITECTURE.md §9;
``tradebot signals generate`` writes this format). Every line goes through the same
validation as a WebSocket frame, rejections are journaled ``SIGNAL_REJECTED`` with the
line number, and blank lines are skipped.

Pacing: with ``paced=True`` a message of wave ``T`` is delivered when the clock port reads
``T + arrival_offset_s`` (it sleeps on trio's clock, so under ``MockClock`` this is virtual
time and replay stays deterministic); messages whose time has passed go at once. Unpaced,
the whole file is delivered as fast as the consumer takes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import trio

from tradebot.events import JournalPort
from tradebot.ports import Clock
from tradebot.signals import (
    Control,
    Emit,
    Message,
    ProtocolLimits,
    Rejection,
    Wave,
    parse_message,
    rejection_event,
)

__all__ = ["FileSignalSource", "read_frames"]

_SOURCE = "file"


def read_frames(path: str | Path, max_message_bytes: int) -> Iterator[tuple[int, bytes | None]]:
    """Yield ``(line_number, line)`` for every non-blank line; ``line`` is None when the
    line is longer than ``max_message_bytes`` (it is skipped without being held in memory).
    """
    with open(path, "rb") as f:
        number = 0
        while True:
            line = f.readline(max_message_bytes + 2)
            if not line:
                return
            number += 1
            if len(line) > max_message_bytes + 1 or (
                len(line) == max_message_bytes + 1 and not line.endswith(b"\n")
            ):
                while line and not line.endswith(b"\n"):
                    line = f.readline(1 << 20)
                yield number, None
                continue
            stripped = line.strip()
            if stripped:
                yield number, stripped


class FileSignalSource:
    """Replays a JSON-lines signals file. Implements :class:`tradebot.signals.SignalSource`.

    Args:
        path: the file.
        journal: where SIGNAL_REJECTED events go.
        clock: the time port (event timestamps, pacing).
        limits: protocol limits (max line size = ``max_message_bytes``).
        paced: deliver wave ``T`` at ``T + arrival_offset_s`` on ``clock``.
        arrival_offset_s: seconds after the wave time at which its messages arrive.

    Attributes:
        delivered: items handed to ``emit``.
        rejected: lines or signals rejected (each journaled).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        journal: JournalPort,
        clock: Clock,
        limits: ProtocolLimits = ProtocolLimits(),
        paced: bool = False,
        arrival_offset_s: float = 0.0,
    ) -> None:
        self._path = Path(path)
        self._journal = journal
        self._clock = clock
        self._limits = limits
        self._paced = paced
        self._arrival_offset_s = arrival_offset_s
        self.delivered = 0
        self.rejected = 0

    async def run(self, emit: Emit) -> None:
        """Deliver every line's message in file order; returns at the end of the file.

        An unreadable file is journaled as one rejection (``file_unreadable``), not raised.
        """
        try:
            frames = list(read_frames(self._path, self._limits.max_message_bytes))
        except OSError as exc:
            self.rejected += 1
            rejection = Rejection(f"file_unreadable:{exc.strerror or exc}", str(self._path))
            self._journal.emit(rejection_event(rejection, self._clock.now(), source=_SOURCE))
            return
        for number, raw in frames:
            if raw is None:
                item: Message = Rejection(
                    f"message_too_large:line {number} over {self._limits.max_message_bytes}",
                    f"<line {number}>",
                )
            else:
                item = parse_message(raw, self._limits)
            if isinstance(item, Control):
                continue
            if isinstance(item, Rejection):
                self._reject(item, line=number)
                await emit(item)
                self.delivered += 1
                continue
            if isinstance(item, Wave):
                for rejection in item.rejections:
                    self._reject(rejection, line=number)
            if self._paced:
                due = item.wave_ts + timedelta(seconds=self._arrival_offset_s)
                wait_s = (due - self._clock.now()).total_seconds()
                if wait_s > 0:
                    await trio.sleep(wait_s)
            await emit(item)
            self.delivered += 1

    def _reject(self, rejection: Rejection, *, line: int) -> None:
        self.rejected += 1
        self._journal.emit(rejection_event(rejection, self._clock.now(), source=_SOURCE, line=line))
