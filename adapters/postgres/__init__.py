"""PostgreSQL adapter: connection, embedded server, migrations and the journal store.

psycopg 3 is used through its *sync* API only; async callers wrap it in
``trio.to_thread.run_sync`` (psycopg's async API does not run on trio; docs/ARCHITECTURE.md §7).

Front door:

- :func:`resolve_dsn`, :func:`default_home`, :func:`ensure_embedded_server`,
  :func:`stop_embedded_server`, :func:`connect` — where the database is and how to reach it.
- :func:`migrate`, :func:`migration_status`, :func:`find_sql_dir`,
  :func:`maintain_partitions` — the schema (``sql/NNNN_*.sql``).
- :func:`open_postgres_journal`, :class:`PostgresJournal` — the group-commit journal with
  its disk spool (:mod:`adapters.postgres.journal`).
- :mod:`adapters.postgres.projections` — which events (their typed payloads,
  :mod:`tradebot.events`) fill which tables.
- :mod:`adapters.postgres.queries` — read helpers for the CLI.
- :func:`acquire_instance_lock` — one running bot per account (advisory lock).
"""

from adapters.postgres.connection import connect as connect
from adapters.postgres.embedded import default_home as default_home
from adapters.postgres.embedded import ensure_embedded_server as ensure_embedded_server
from adapters.postgres.embedded import resolve_dsn as resolve_dsn
from adapters.postgres.embedded import stop_embedded_server as stop_embedded_server
from adapters.postgres.instance import InstanceAlreadyRunning as InstanceAlreadyRunning
from adapters.postgres.instance import InstanceLock as InstanceLock
from adapters.postgres.instance import acquire_instance_lock as acquire_instance_lock
from adapters.postgres.journal import JournalStats as JournalStats
from adapters.postgres.journal import PostgresJournal as PostgresJournal
from adapters.postgres.journal import open_journal_from_config as open_journal_from_config
from adapters.postgres.journal import open_postgres_journal as open_postgres_journal
from adapters.postgres.migrations import MigrationError as MigrationError
from adapters.postgres.migrations import find_sql_dir as find_sql_dir
from adapters.postgres.migrations import maintain_partitions as maintain_partitions
from adapters.postgres.migrations import migrate as migrate
from adapters.postgres.migrations import migration_status as migration_status

__all__ = [
    "InstanceAlreadyRunning",
    "InstanceLock",
    "JournalStats",
    "MigrationError",
    "PostgresJournal",
    "acquire_instance_lock",
    "connect",
    "default_home",
    "ensure_embedded_server",
    "find_sql_dir",
    "maintain_partitions",
    "migrate",
    "migration_status",
    "open_journal_from_config",
    "open_postgres_journal",
    "resolve_dsn",
    "stop_embedded_server",
]
