"""SignalFeed: runs a signal source and forwards what it delivers to the WaveProcessor.

docs/ARCHITECTURE.md §3.

Consumes:
    :class:`GetFeedStatus` (ask → :class:`FeedStatus`) and its own ``_SourceEnded``.
Emits:
    :class:`actors.wave.Deliver` to the WaveProcessor for every source item (waves,
    signals, rejections — rejections are already journaled by the source).
Owns:
    the source task (in the actor's nursery): a live source reconnects on its own and
    never returns; a file source returns at its end, after which the feed stops itself
    when ``stop_when_exhausted`` (so a replay can wait for it).

Forwarding uses ``send`` (backpressure): a slow WaveProcessor makes the source's bounded
buffer fill, and *that* overflow is journaled by the source, so nothing is lost silently.
If the WaveProcessor is stopped the forward raises ``ActorStopped`` and the feed crashes
(its supervisor restarts or escalates) instead of dropping signals quietly.
"""

from __future__ import annotations

import attrs
import trio

from actors.runtime import Actor, Address
from actors.wave import Deliver, WaveMessage
from tradebot.signals import FeedItem, Rejection, Signal, SignalSource, Wave

__all__ = ["FeedMessage", "FeedStatus", "GetFeedStatus", "SignalFeed"]


@attrs.frozen
class GetFeedStatus:
    """Ask: reply :class:`FeedStatus`."""


@attrs.frozen
class _SourceEnded:
    error: str = ""


FeedMessage = GetFeedStatus | _SourceEnded


@attrs.frozen
class FeedStatus:
    """Counts since this incarnation started.

    Attributes:
        waves / signals / rejections: items forwarded, by kind.
        source_ended: the source returned (file source at its end).
    """

    waves: int
    signals: int
    rejections: int
    source_ended: bool


class SignalFeed(Actor[FeedMessage]):
    """Connects a :class:`tradebot.signals.SignalSource` to the WaveProcessor.

    Args:
        source: the source (``adapters.signals.WebSocketSignalSource`` or
            ``FileSignalSource``), built by the wiring.
        wave_processor: the WaveProcessor's address.
        stop_when_exhausted: stop this actor when the source returns (file replay).

    Attributes:
        exhausted: a ``trio.Event`` set when the source has returned and every item was
            forwarded.
    """

    mailbox_size = 16

    def __init__(
        self,
        source: SignalSource,
        wave_processor: Address[WaveMessage],
        *,
        stop_when_exhausted: bool = False,
    ) -> None:
        self._source = source
        self._target = wave_processor
        self._stop_when_exhausted = stop_when_exhausted
        self._waves = 0
        self._signals = 0
        self._rejections = 0
        self._ended = False
        self.exhausted = trio.Event()

    async def on_start(self) -> None:
        self.nursery.start_soon(self._run_source)

    async def _run_source(self) -> None:
        await self._source.run(self._forward)
        await self.post(_SourceEnded())

    async def _forward(self, item: FeedItem) -> None:
        if isinstance(item, Wave):
            self._waves += 1
            self._signals += len(item.signals)
        elif isinstance(item, Signal):
            self._signals += 1
        elif isinstance(item, Rejection):
            self._rejections += 1
        await self._target.send(Deliver(item))

    async def handle(self, message: FeedMessage) -> object:
        if isinstance(message, GetFeedStatus):
            return FeedStatus(self._waves, self._signals, self._rejections, self._ended)
        if isinstance(message, _SourceEnded):
            self._ended = True
            self.exhausted.set()
            if self._stop_when_exhausted:
                self.stop()
        return None
