"""systemd's notify protocol with the stdlib socket (no systemd library).

``$NOTIFY_SOCKET`` names a unix datagram socket (a path, or ``@name`` for the abstract
namespace); each message is ``KEY=VALUE`` lines in one datagram (sd_notify(3)). Sent:

* ``READY=1`` (+ ``STATUS=…``) by :meth:`SdNotifier.ready` — the launcher calls it once
  start-up and reconciliation are done (``Type=notify`` units wait for it);
* ``WATCHDOG=1`` by the health loop, every ``interval`` (half of ``$WATCHDOG_USEC`` when
  systemd set it, else ``health.watchdog_interval_s``), so a hung event loop is killed and
  restarted by systemd (``WatchdogSec``);
* ``STATUS=…`` whenever the health summary changes;
* ``STOPPING=1`` by :meth:`SdNotifier.stopping` when the graceful stop begins.

Without ``$NOTIFY_SOCKET`` (not under systemd) every call is a no-op. A send that fails
(socket gone) is ignored: notification never stops the bot.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

__all__ = ["SdNotifier"]


class SdNotifier:
    """Sends sd_notify messages (see the module docstring).

    Args:
        environ: where ``NOTIFY_SOCKET`` / ``WATCHDOG_USEC`` / ``WATCHDOG_PID`` are read
            (default ``os.environ``).
        default_interval_s: the watchdog period when systemd set none, seconds (> 0).
    """

    def __init__(
        self, environ: Mapping[str, str] | None = None, default_interval_s: float = 10.0
    ) -> None:
        env = os.environ if environ is None else environ
        addr = env.get("NOTIFY_SOCKET", "")
        self.address: str = "\0" + addr[1:] if addr.startswith("@") else addr
        self.sent: list[str] = []
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        self.watchdog_usec = int(usec) if usec.isdigit() and int(usec) > 0 else 0
        if pid.isdigit() and int(pid) != os.getpid():
            self.watchdog_usec = 0  # meant for another process
        self.interval_s = (
            self.watchdog_usec / 2e6 if self.watchdog_usec else float(default_interval_s)
        )
        self._sock: socket.socket | None = None
        self._status = ""

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def notify(self, *lines: str) -> bool:
        """Send one datagram of ``lines``; True when it was sent."""
        if not self.address:
            return False
        msg = "\n".join(lines)
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)  # a full receiver queue never blocks the loop
            self._sock.sendto(msg.encode(), self.address)
        except OSError:
            return False
        self.sent.append(msg)
        del self.sent[:-100]
        return True

    def ready(self, status: str = "running") -> bool:
        """``READY=1`` with ``STATUS=status``: call once start-up is done."""
        self._status = status
        return self.notify("READY=1", f"STATUS={status}")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def status(self, text: str) -> bool:
        """``STATUS=text`` when it changed."""
        if text == self._status:
            return False
        self._status = text
        return self.notify(f"STATUS={text}")

    def stopping(self, status: str = "stopping") -> bool:
        return self.notify("STOPPING=1", f"STATUS={status}")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
