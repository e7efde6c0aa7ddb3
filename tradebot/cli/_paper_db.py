"""The journal database and spool of a ``tradebot paper`` run: the migrated, empty
``tradebot_paper`` database (or an explicit DSN) and the spool directory, with a stale spool
of an earlier run kept aside, never discarded."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from tradebot.cli._paper_drive import _RunState
from tradebot.cli._paper_options import (
    PaperRunOptions,
)
from tradebot.errors import ConfigError

__all__ = ["PAPER_DATABASE", "_paper_spool_dir", "prepare_database"]


PAPER_DATABASE = "tradebot_paper"
_JOURNAL_TABLES = (
    "events",
    "fills",
    "orders",
    "tp_levels",
    "positions",
    "signals",
    "waves",
    "alerts",
)


def prepare_database(opts: PaperRunOptions) -> str:
    """A migrated, empty journal database for this run; returns its DSN.

    Embedded default: the ``tradebot_paper`` database is dropped and recreated. An explicit
    DSN is migrated; if it already holds events it is emptied only with ``reset_db``.

    Raises:
        ConfigError: an explicit database holds events and ``reset_db`` is False.
    """
    from adapters.postgres.connection import connect
    from adapters.postgres.embedded import (
        dsn_for_database,
        embedded_pgdata,
        ensure_database,
        start_embedded_server_object,
    )
    from adapters.postgres.migrations import migrate

    if opts.dsn is None:
        server = start_embedded_server_object(embedded_pgdata(opts.home))
        admin = str(server.get_uri())
        with connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{PAPER_DATABASE}" WITH (FORCE)')
        ensure_database(admin, PAPER_DATABASE)
        dsn = dsn_for_database(admin, PAPER_DATABASE)
        migrate(dsn)
        return dsn
    dsn = opts.dsn
    migrate(dsn)
    with connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT EXISTS (SELECT 1 FROM events)").fetchone()
        if row is not None and row[0]:
            if not opts.reset_db:
                raise ConfigError(
                    [
                        (
                            "--dsn",
                            "the database already holds journal events; "
                            "use an empty database or pass --reset-db to empty it",
                        )
                    ]
                )
            conn.execute(f"TRUNCATE {', '.join(_JOURNAL_TABLES)} CASCADE")
    return dsn


def _paper_spool_dir(opts: PaperRunOptions, err: TextIO, state: _RunState) -> Path:
    """Where this run's journal spools if the database goes away mid-run.

    ``<home>/paper-spool`` (home: ``opts.home``, else the embedded server's default home).
    A spool left there by an
    earlier paper run belongs to a journal database that no longer exists (it is recreated
    or emptied for every run), so it is not replayed into this one — and never discarded:
    it is moved to ``<home>/paper-spool/kept/journal-spool-<time>-previous-paper-run.jsonl``
    (with its ``.meta.json``), the run says so and journals ``SPOOL_KEPT_ASIDE``, and
    ``tradebot db replay-spool --spool FILE --dsn DSN --force`` loads it into a database.
    """
    from adapters.postgres.embedded import default_home as embedded_home
    from adapters.postgres.journal import (
        SPOOL_FILE_NAME,
        spool_event_count,
        spool_meta_path_for,
    )

    # never a temporary directory: a spool must outlive the run when the database is gone
    spool_dir = (opts.home if opts.home is not None else embedded_home()) / "paper-spool"
    stale = spool_dir / SPOOL_FILE_NAME
    n = spool_event_count(stale)
    if n > 0:
        stamp = datetime.fromtimestamp(stale.stat().st_mtime, UTC).strftime("%Y%m%dT%H%M%SZ")
        kept_dir = spool_dir / "kept"
        kept_dir.mkdir(parents=True, exist_ok=True)
        kept = kept_dir / f"journal-spool-{stamp}-previous-paper-run.jsonl"
        k = 1
        while kept.exists():
            k += 1
            kept = kept_dir / f"journal-spool-{stamp}-previous-paper-run-{k}.jsonl"
        os.replace(stale, kept)
        meta = spool_meta_path_for(stale)
        if meta.exists():
            os.replace(meta, spool_meta_path_for(kept))
        state.kept_spool = (kept, n)
        err.write(
            f"kept a stale paper-run journal spool aside ({n} events; its database "
            f"{PAPER_DATABASE} is recreated for this run): {kept}\n"
            f"  load it into a database later: tradebot db replay-spool --spool {kept} "
            "--dsn DSN --force\n"
        )
    else:
        stale.unlink(missing_ok=True)
    return spool_dir
