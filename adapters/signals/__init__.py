"""Signal sources (implementations of :class:`tradebot.signals.SignalSource`) and the
loopback signal server.

* :class:`WebSocketSignalSource` — the signal-service client (trio-websocket): bearer-token
  auth, 20 s ping with pong deadline, silence watchdog, capped jittered backoff,
  resubscribe, bounded buffer with journaled overflow.
* :class:`FileSignalSource` — JSON-lines replay with the same interface.
* :class:`SignalServer` — publishes a JSON-lines file wave by wave over WebSocket.
"""

from adapters.signals._file import FileSignalSource as FileSignalSource
from adapters.signals._file import read_frames as read_frames
from adapters.signals._server import SignalServer as SignalServer
from adapters.signals._server import load_waves as load_waves
from adapters.signals._websocket import WebSocketSignalSource as WebSocketSignalSource

__all__ = ["FileSignalSource", "SignalServer", "WebSocketSignalSource", "load_waves", "read_frames"]
