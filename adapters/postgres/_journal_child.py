"""The journal's writer process: ``python -m adapters.postgres._journal_child``.

Started by :class:`adapters.postgres._journal_process._WriterProcess` when a journal is
opened with ``writer_process=True`` (``tradebot paper``). It writes the journal's batches
(events + projections, one transaction each: :meth:`_JournalStore._write_sync`, the very
code the writer thread runs otherwise) on its own connection with its own interpreter, so
the replay's main thread never waits for the GIL while a batch is written.

Wire format (binary pipes, UTF-8, newline-terminated):

- parent → child, once: one JSON object, the settings (``dsn``, ``application_name``,
  ``connect_timeout_s``, ``spool_dir`` for the rejects file, ``max_batch_events``);
- parent → child, per batch: the event count ``n`` as a decimal line, then ``n`` spool
  lines (:meth:`_Item.spool_line`, one JSON object each);
- child → parent, per batch: one JSON object, either ``{"ok": true, "committed": int,
  "duplicates": int, "unstorable": int, "skips": {reason: [count, first event id]},
  "schema_errors": [[type, event_id, error_text], ...], "logs": [[level, message], ...]}``
  or ``{"ok": false, "error": str, "logs": [...]}`` (the write failed: connection lost,
  database refusing; the child closed its connection and reconnects on the next batch).

The contract check: before writing a batch the child decodes every event's data into its
payload class (:func:`~adapters.postgres._journal_records._check_contract`, the check
``emit`` runs in the other modes) and keeps the payload for the projection, so nothing is
decoded twice. ``schema_errors`` lists, in batch order, each event off its contract: its
``type``, its ``event_id`` (text) and the full error text (``str`` of the
:class:`~tradebot.events.EventSchemaError`); such an event is stored as is and its
projection skipped. The parent counts them only from an ``ok`` reply (a failed batch is
retried or spooled, and checked there), on its trio thread, exactly as ``emit`` would
have: ``JournalStats.schema_errors`` / ``schema_error_types``, the log line, and the first
of each type journaled as ``EVENT_SCHEMA_ERROR``.

The child exits when its stdin reaches end of file: the parent closed it, or died (even
SIGKILLed: the kernel closes the pipe). It ignores SIGINT: a Ctrl-C at the terminal reaches
the whole process group, and the parent's graceful shutdown still needs its writer to
drain. Its stdout is the reply channel only: file descriptor 1 is pointed at stderr so a
stray print can never corrupt a reply.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any, BinaryIO

from adapters.postgres._journal_records import _check_contract, _Item, log
from adapters.postgres._journal_store import _JournalStore

__all__: list[str] = []


class _ChildStore(_JournalStore):
    """The store of the writer process: skips are collected per batch (the parent counts
    and logs them in its own :class:`JournalStats`)."""

    batch_skips: dict[str, list[Any]]

    def _skipped(self, it: _Item, reason: str) -> None:
        key = f"{it.type}: {reason}"
        entry = self.batch_skips.get(key)
        if entry is None:
            self.batch_skips[key] = [1, str(it.event_id)]
        else:
            entry[0] += 1


class _Capture(logging.Handler):
    """Keeps the journal's log records of one batch for the reply."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[list[Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.records.append([record.levelno, record.getMessage()[:4000]])
        except Exception:  # a record that cannot be formatted is not worth a crash
            pass


def _read_batch(inp: BinaryIO) -> list[str] | None:
    """The next batch's spool lines; None at end of input (the parent is gone)."""
    header = inp.readline()
    if not header:
        return None
    n = int(header)
    lines: list[str] = []
    for _ in range(n):
        raw = inp.readline()
        if not raw.endswith(b"\n"):
            return None  # the parent died mid-batch: nothing of it was written
        lines.append(raw.decode("utf-8"))
    return lines


def _serve(inp: BinaryIO, out: BinaryIO) -> int:
    cfg = json.loads(inp.readline() or b"null")
    if not isinstance(cfg, dict):
        return 2
    store = _ChildStore(
        str(cfg["dsn"]),
        spool_dir=Path(cfg["spool_dir"]),
        max_batch_events=int(cfg.get("max_batch_events") or 5000),
        application_name=str(cfg.get("application_name") or "tradebot-journal"),
        connect_timeout_s=int(cfg.get("connect_timeout_s") or 5),
        strict_schema=False,
    )
    capture = _Capture()
    log.addHandler(capture)
    log.propagate = False
    log.setLevel(logging.WARNING)
    try:
        while True:
            lines = _read_batch(inp)
            if lines is None:
                return 0
            store.batch_skips = {}
            capture.records = []
            stats = store.stats
            before = (stats.committed, stats.duplicates, stats.unstorable)
            reply: dict[str, Any]
            try:
                batch = [_Item.from_spool_line(line) for line in lines]
                schema_errors: list[list[str]] = []
                for it in batch:
                    problem = _check_contract(it)
                    if problem is not None:
                        schema_errors.append([it.type, str(it.event_id), str(problem)])
                store._write_sync(store._ensure_conn_sync(), batch, lines)
            except Exception as exc:
                store._close_quietly(store._conn)
                store._conn = None
                reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:4000]}
            else:
                reply = {
                    "ok": True,
                    "committed": stats.committed - before[0],
                    "duplicates": stats.duplicates - before[1],
                    "unstorable": stats.unstorable - before[2],
                    "skips": store.batch_skips,
                    "schema_errors": schema_errors,
                }
            reply["logs"] = capture.records
            try:
                out.write(json.dumps(reply, ensure_ascii=False).encode("utf-8") + b"\n")
                out.flush()
            except OSError:  # BrokenPipe: the parent is gone
                return 0
    finally:
        store._close_quietly(store._conn)


def main() -> int:
    """Serve batches from stdin until it closes; returns the exit status."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    with out:
        return _serve(sys.stdin.buffer, out)


if __name__ == "__main__":
    sys.exit(main())
