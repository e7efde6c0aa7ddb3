"""Signal intake core: protocol, validation, selection, settings and the source port.

Pure code (no I/O): the WebSocket client and the file source live in
``adapters/signals``; the WaveProcessor and SignalFeed actors in ``actors/wave.py`` and
``actors/signal_feed.py``. See docs/ARCHITECTURE.md §5 ("Waves") and §9 (signal protocol).
"""

from tradebot.signals._protocol import WAVE_INTERVAL as WAVE_INTERVAL
from tradebot.signals._protocol import Control as Control
from tradebot.signals._protocol import Message as Message
from tradebot.signals._protocol import ProtocolLimits as ProtocolLimits
from tradebot.signals._protocol import Rejection as Rejection
from tradebot.signals._protocol import Signal as Signal
from tradebot.signals._protocol import Wave as Wave
from tradebot.signals._protocol import excerpt_of as excerpt_of
from tradebot.signals._protocol import parse_message as parse_message
from tradebot.signals._protocol import parse_wave_ts as parse_wave_ts
from tradebot.signals._protocol import validate_signal as validate_signal
from tradebot.signals._protocol import wave_floor as wave_floor
from tradebot.signals._protocol import wave_id_for as wave_id_for
from tradebot.signals._selection import Candidate as Candidate
from tradebot.signals._selection import Filtered as Filtered
from tradebot.signals._selection import WavePlan as WavePlan
from tradebot.signals._selection import limit_reason as limit_reason
from tradebot.signals._selection import plan_wave as plan_wave
from tradebot.signals._selection import rank_key as rank_key
from tradebot.signals._settings import FeedSettings as FeedSettings
from tradebot.signals._settings import WaveSettings as WaveSettings
from tradebot.signals._settings import backoff_delay_s as backoff_delay_s
from tradebot.signals._source import Emit as Emit
from tradebot.signals._source import FeedItem as FeedItem
from tradebot.signals._source import SignalSource as SignalSource
from tradebot.signals._source import overflow_event as overflow_event
from tradebot.signals._source import rejection_event as rejection_event
from tradebot.signals._source import signal_data as signal_data
from tradebot.signals._source import signal_event as signal_event

__all__ = [
    "WAVE_INTERVAL",
    "Candidate",
    "Control",
    "Emit",
    "FeedItem",
    "FeedSettings",
    "Filtered",
    "Message",
    "ProtocolLimits",
    "Rejection",
    "Signal",
    "SignalSource",
    "Wave",
    "WavePlan",
    "WaveSettings",
    "backoff_delay_s",
    "excerpt_of",
    "limit_reason",
    "overflow_event",
    "parse_message",
    "parse_wave_ts",
    "plan_wave",
    "rank_key",
    "rejection_event",
    "signal_data",
    "signal_event",
    "validate_signal",
    "wave_floor",
    "wave_id_for",
]
