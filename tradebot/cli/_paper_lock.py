"""One ``tradebot paper`` run per home (or per ``--dsn`` database) at a time.

A paper run recreates its journal database (``tradebot_paper`` of the embedded server) and
moves aside a stale spool under ``<home>/paper-spool``: a second run on the same home would
drop the first one's database and delete its spool while it runs. So a run first takes a
PostgreSQL session advisory lock (:func:`adapters.postgres.instance.acquire_instance_lock`)
and holds it until its report is built:

- embedded server: lock ``paper-<sha256(home)[:12]>`` in the server's admin database
  (never in ``tradebot_paper``, which the run drops and recreates);
- ``--dsn``: lock ``paper`` in that database.

A second run is refused with the holder's pid and host (:class:`PaperRunLocked`, exit 1)
before it touches anything.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tradebot.errors import TradebotError

__all__ = ["PaperRunLocked", "paper_lock"]


class PaperRunLocked(TradebotError):
    """Another ``tradebot paper`` run holds this home's (or database's) lock.

    Attributes:
        holder: the holder's ``pid``, ``hostname``, ``started_at`` when known.
        user_notes: what to do (printed by the CLI).
    """

    def __init__(self, where: str, holder: dict[str, object]) -> None:
        who = (
            f"pid {holder.get('pid', '?')} on {holder.get('hostname') or '?'}, "
            f"since {holder.get('started_at')}"
            if holder
            else "another process"
        )
        super().__init__(f"another tradebot paper run is using {where} ({who})")
        self.holder = holder
        self.user_notes = [
            "  wait for it to finish, or give this run its own TRADEBOT_HOME (or --dsn)"
        ]


@contextmanager
def paper_lock(dsn: str | None, home: Path | None) -> Iterator[None]:
    """Hold the paper-run lock of ``home`` (embedded server) or of ``dsn`` for the block.

    Raises:
        PaperRunLocked: another run holds it.
        psycopg.OperationalError: the database is unreachable.
    """
    from adapters.postgres.embedded import default_home, embedded_pgdata
    from adapters.postgres.embedded import start_embedded_server_object as start
    from adapters.postgres.instance import InstanceAlreadyRunning, acquire_instance_lock

    if dsn is None:
        where_home = (home if home is not None else default_home()).expanduser().resolve()
        admin = str(start(embedded_pgdata(home)).get_uri())
        name = "paper-" + hashlib.sha256(str(where_home).encode()).hexdigest()[:12]
        target, where = admin, f"home {where_home}"
    else:
        target, name, where = dsn, "paper", "this --dsn database"
    try:
        lock = acquire_instance_lock(target, name)
    except InstanceAlreadyRunning as exc:
        raise PaperRunLocked(where, exc.holder) from None
    with lock:
        yield
