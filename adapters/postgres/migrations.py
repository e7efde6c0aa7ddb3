"""Schema migrations: ``sql/NNNN_<name>.sql`` applied in order, once, atomically.

Where the files are: the repository's top-level ``sql/`` directory is the source of truth
(docs/ARCHITECTURE.md §2). A built wheel ships it as package data ``tradebot/sql`` (hatchling
``force-include`` in ``pyproject.toml``), found with :mod:`importlib.resources`; an editable
checkout reads ``<repo>/sql`` itself. ``$TRADEBOT_SQL_DIR`` overrides both.

Guarantees:

- each migration runs in its own transaction together with its ``schema_migrations`` row
  (version, name, sha256 checksum, applied_at): it is applied completely or not at all;
- ordered by version number; versions must be unique;
- safe to run twice (applied versions are skipped) and safe when several processes run
  it at once: every step takes ``pg_advisory_xact_lock`` first and re-checks what is
  applied under the lock;
- a file whose checksum differs from the applied one is reported (:class:`MigrationError`),
  never re-applied.
"""

from __future__ import annotations

import hashlib
import os
import re
from datetime import datetime
from pathlib import Path

import attrs

from adapters.postgres.connection import connect
from tradebot.errors import JournalError

__all__ = [
    "MIGRATION_LOCK_KEY",
    "Migration",
    "MigrationError",
    "MigrationState",
    "find_sql_dir",
    "load_migrations",
    "maintain_partitions",
    "migrate",
    "migration_status",
]

# pg_advisory_xact_lock key shared by every migrating process (an arbitrary constant).
MIGRATION_LOCK_KEY = 0x7472_6164_6562  # "tradeb"

_FILE_RE = re.compile(r"^(\d{4})_([A-Za-z0-9_]+)\.sql$")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY CHECK (version > 0),
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(JournalError):
    """The migration files or the database's migration history are inconsistent."""


@attrs.frozen
class Migration:
    """One ``sql/NNNN_name.sql`` file."""

    version: int
    name: str
    path: Path
    sql: str
    checksum: str  # sha256 hex of the file bytes


@attrs.frozen
class MigrationState:
    """A migration file and whether/when it was applied."""

    version: int
    name: str
    applied_at: datetime | None
    checksum_ok: bool  # False when applied from a different file content (or file missing)
    file_present: bool = True


def find_sql_dir() -> Path:
    """Locate the migrations directory.

    Order: ``$TRADEBOT_SQL_DIR``; ``tradebot/sql`` package data (an installed wheel);
    ``<checkout>/sql`` beside the ``tradebot`` package (an editable install or a source
    tree). The first that holds ``NNNN_*.sql`` files wins.

    Raises:
        MigrationError: none of them exists.
    """
    from importlib import resources

    candidates: list[Path] = []
    env = os.environ.get("TRADEBOT_SQL_DIR", "").strip()
    if env:
        candidates.append(Path(env).expanduser())
    package = Path(str(resources.files("tradebot")))
    candidates.append(package / "sql")
    candidates.append(package.parent / "sql")
    for c in candidates:
        if c.is_dir() and any(c.glob("[0-9][0-9][0-9][0-9]_*.sql")):
            return c
    raise MigrationError(
        f"no migrations directory found (looked in: {', '.join(map(str, candidates))})"
    )


def load_migrations(sql_dir: Path | None = None) -> list[Migration]:
    """Read and order the migration files.

    Raises:
        MigrationError: a duplicate version or a ``.sql`` file not named ``NNNN_name.sql``.
    """
    directory = sql_dir or find_sql_dir()
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        m = _FILE_RE.match(path.name)
        if not m:
            raise MigrationError(f"{path.name}: migration files must be named NNNN_name.sql")
        version = int(m.group(1))
        if version in found:
            raise MigrationError(
                f"duplicate migration version {version}: {found[version].path.name}, {path.name}"
            )
        raw = path.read_bytes()
        found[version] = Migration(
            version, m.group(2), path, raw.decode("utf-8"), hashlib.sha256(raw).hexdigest()
        )
    return [found[v] for v in sorted(found)]


def migrate(dsn: str, sql_dir: Path | None = None) -> list[Migration]:
    """Apply every pending migration; return the ones applied by this call (may be empty).

    Raises:
        MigrationError: an applied migration's checksum differs from its file.
        psycopg.Error: a migration failed (its transaction is rolled back; nothing of it
            remains) or the server is unreachable.
    """
    migrations = load_migrations(sql_dir)
    applied: list[Migration] = []
    with connect(dsn, autocommit=True, application_name="tradebot-migrate") as conn:
        for mig in migrations:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
                conn.execute(_CREATE_TABLE)
                row = conn.execute(
                    "SELECT checksum FROM schema_migrations WHERE version = %s", (mig.version,)
                ).fetchone()
                if row is not None:
                    if row[0] != mig.checksum:
                        raise MigrationError(
                            f"migration {mig.version:04d}_{mig.name} was applied with checksum "
                            f"{row[0][:12]}…, the file now has {mig.checksum[:12]}…: "
                            "never edit an applied migration, add a new one"
                        )
                    continue
                conn.execute(mig.sql.encode("utf-8"))
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                    (mig.version, mig.name, mig.checksum),
                )
                applied.append(mig)
    return applied


def migration_status(dsn: str, sql_dir: Path | None = None) -> list[MigrationState]:
    """Every known migration (files and applied rows), ordered by version."""
    migrations = {m.version: m for m in load_migrations(sql_dir)}
    rows: dict[int, tuple[str, str, datetime]] = {}
    with connect(dsn, application_name="tradebot-migrate") as conn:
        exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
        if exists and exists[0]:
            for version, name, checksum, applied_at in conn.execute(
                "SELECT version, name, checksum, applied_at FROM schema_migrations"
            ):
                rows[int(version)] = (str(name), str(checksum), applied_at)
    out: list[MigrationState] = []
    for version in sorted(set(migrations) | set(rows)):
        mig = migrations.get(version)
        row = rows.get(version)
        out.append(
            MigrationState(
                version=version,
                name=mig.name if mig else row[0] if row else "",
                applied_at=row[2] if row else None,
                checksum_ok=(row is None) or (mig is not None and mig.checksum == row[1]),
                file_present=mig is not None,
            )
        )
    return out


def maintain_partitions(
    dsn: str, *, retention_days: int | None, months_ahead: int = 2
) -> list[str]:
    """Create upcoming monthly ``events`` partitions and drop those older than the retention.

    Args:
        retention_days: ``journal.retention_days``; None or 0 keeps every partition.
        months_ahead: partitions to create beyond the current month (>= 0).

    Returns:
        One line per action, e.g. ``"created events_y2026m12"``, ``"dropped events_y2026m01"``.
    """
    with connect(dsn, application_name="tradebot-maintain") as conn:
        rows = conn.execute(
            "SELECT journal_maintain_partitions(%s, %s)", (months_ahead, retention_days or None)
        ).fetchall()
        conn.commit()
    return [str(r[0]) for r in rows]
