"""The parent's handle on the journal's writer process (:mod:`adapters.postgres._journal_child`).

Used only from the journal's worker thread (``trio.to_thread``), one batch at a time:
:meth:`_WriterProcess.write` ships the batch's spool lines and blocks (GIL released) until
the child's reply. Any failure — the child reported a failed write, died, or its pipe broke —
raises :class:`WriterProcessError`, which the journal handles exactly like a failed write
on its own connection (retry once, then ``DB_UNAVAILABLE`` and the spool). A child that is
gone is started again by the next :meth:`~_WriterProcess.write`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

from adapters.postgres._journal_records import log

__all__ = ["WriterProcessError"]

_CHILD_MODULE = "adapters.postgres._journal_child"
# The directory that holds the ``adapters`` package: the child imports it from there even
# when the parent runs from a source tree that is not installed.
_SOURCE_ROOT = str(Path(__file__).resolve().parents[2])


class WriterProcessError(Exception):
    """The writer process did not commit the batch (it said why, or it is gone)."""


class _WriterProcess:
    """One writer child at a time, started on demand.

    Args:
        settings: the child's settings line (``dsn``, ``application_name``,
            ``connect_timeout_s``, ``spool_dir``, ``max_batch_events``). The DSN travels on
            the pipe, never on the command line (``ps`` shows command lines).
    """

    def __init__(self, settings: dict[str, Any]) -> None:
        self._settings = settings
        self._proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def pid(self) -> int | None:
        """The running child's pid (None: none started, or it is gone)."""
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        """Start the child if none is running (its imports overlap the caller's work)."""
        if self._proc is not None:
            code = self._proc.poll()
            if code is None:
                return
            log.warning("journal writer process had exited (status %s); starting a new one", code)
        self._reap()
        env = dict(os.environ)
        path = env.get("PYTHONPATH")
        env["PYTHONPATH"] = _SOURCE_ROOT + (os.pathsep + path if path else "")
        proc = subprocess.Popen(
            [sys.executable, "-m", _CHILD_MODULE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            close_fds=True,
        )
        self._proc = proc
        self.starts += 1
        stdin = proc.stdin
        assert stdin is not None
        try:
            stdin.write(json.dumps(self._settings).encode("utf-8") + b"\n")
            stdin.flush()
        except OSError as exc:
            self._reap()
            raise WriterProcessError(f"journal writer process did not start: {exc}") from exc

    def write(self, lines: list[str]) -> dict[str, Any]:
        """Ship one batch (spool lines, each ending in a newline); return the child's reply.

        Raises:
            WriterProcessError: the batch was not committed (reply ``ok: false``), or the
                child died / its pipe broke before replying (then it is reaped; the next
                call starts a new one). Commit status is then unknown: the caller retries,
                which is safe (events are idempotent by id).
        """
        self.start()
        proc = self._proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        try:
            _send(proc.stdin, lines)
            raw = proc.stdout.readline()
        except (OSError, ValueError) as exc:
            self._reap()
            raise WriterProcessError(f"journal writer process pipe broke: {exc}") from exc
        if not raw:
            code = self._reap()
            raise WriterProcessError(f"journal writer process exited (status {code})")
        try:
            reply = json.loads(raw)
        except ValueError as exc:  # cannot happen with our child: treat as a dead one
            self._reap()
            raise WriterProcessError(f"journal writer process sent garbage: {raw[:200]!r}") from exc
        if not isinstance(reply, dict):
            self._reap()
            raise WriterProcessError("journal writer process sent a non-object reply")
        return reply

    def close(self, timeout_s: float = 5.0) -> None:
        """Close the child's stdin (it exits) and wait; kill it after ``timeout_s``."""
        proc = self._proc
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            pass
        self._reap()

    def _reap(self) -> int | None:
        """Kill (if still running) and wait for the child; close its pipes."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            try:
                proc.kill()
            except OSError:
                pass
        for stream in (proc.stdin, proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        return proc.wait()


def _send(stdin: IO[bytes], lines: list[str]) -> None:
    stdin.write(f"{len(lines)}\n{''.join(lines)}".encode())
    stdin.flush()
