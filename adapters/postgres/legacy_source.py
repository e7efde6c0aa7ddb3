"""The read-only reader of the old bot's database (``tradebot import legacy``, issue 14).

One connection, one transaction ``REPEATABLE READ, READ ONLY`` (``SET TRANSACTION`` as its
first statement, and ``default_transaction_read_only`` on the session): every table is read
from the same snapshot and nothing can be written, so the old bot may keep running.
Tables and columns are discovered through ``information_schema`` (schemas ``monitoring``,
``fas``, ``public``); the tables the importer maps (:data:`tradebot.legacy.IMPORTED`) are
read whole (``SELECT *``: the journal keeps every column), the others only counted. A
table that cannot be read (permissions, a type the driver cannot load) is reported, never
a crash (:attr:`tradebot.legacy.SourceTable.error`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any

import psycopg
from psycopg import conninfo, sql
from psycopg.rows import dict_row

from tradebot.errors import ConfigError, TradebotError
from tradebot.legacy import IMPORTED, LegacySource, SourceTable, TableSpec

__all__ = ["LegacySourceError", "read_legacy", "redacted_dsn"]

SCHEMAS = ("monitoring", "fas", "public")
APPLICATION_NAME = "tradebot-legacy-import"


class LegacySourceError(TradebotError):
    """The old database cannot be reached or read (exit 1)."""


def redacted_dsn(dsn: str) -> str:
    """``dsn`` without its password (never raises; "" when it cannot be parsed)."""
    try:
        params = conninfo.conninfo_to_dict(dsn)
    except psycopg.Error:
        return ""
    params.pop("password", None)
    return conninfo.make_conninfo("", **params)  # type: ignore[arg-type]


def open_readonly(dsn: str, *, connect_timeout_s: int = 5) -> psycopg.Connection[Any]:
    """A session on the old database that refuses writes (``default_transaction_read_only``).

    Raises:
        ConfigError: the DSN is malformed (key ``--from-dsn``, exit 2).
        LegacySourceError: the server is unreachable or refused the login (exit 1).
    """
    try:
        conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise ConfigError([("--from-dsn", f"not a PostgreSQL DSN: {exc}")]) from None
    try:
        return psycopg.connect(
            dsn,
            autocommit=True,
            application_name=APPLICATION_NAME,
            connect_timeout=connect_timeout_s,
            options="-c default_transaction_read_only=on -c TimeZone=UTC",
        )
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LegacySourceError(
            f"cannot connect to the legacy database {redacted_dsn(dsn)!r}: {first}"
        ) from None


def _since_param(since: datetime, data_type: str, naive_tz: tzinfo) -> datetime:
    if data_type == "timestamp without time zone":
        return since.astimezone(naive_tz).replace(tzinfo=None)
    return since


def _since_clause(
    spec: TableSpec, columns: Mapping[str, str], since: datetime, naive_tz: tzinfo
) -> tuple[sql.Composable, list[Any]]:
    """``a >= s OR (a IS NULL AND (b >= s OR (b IS NULL AND ...)))`` over the present
    ``spec.since`` columns (the row's first known time decides); open positions always."""
    cols = [c for c in spec.since if c in columns]
    if not cols:
        return sql.SQL("true"), []
    last = cols[-1]
    clause: sql.Composable = sql.SQL("{} >= %s").format(sql.Identifier(last))
    params: list[Any] = [_since_param(since, columns[last], naive_tz)]
    for col in reversed(cols[:-1]):
        ident = sql.Identifier(col)
        clause = sql.SQL("({} >= %s OR ({} IS NULL AND {}))").format(ident, ident, clause)
        params = [_since_param(since, columns[col], naive_tz), *params]
    if spec.name == "monitoring.positions" and "status" in columns:
        clause = sql.SQL("(upper(status::text) = 'OPEN' OR {})").format(clause)
    return clause, params


def read_legacy(
    dsn: str,
    *,
    since: datetime | None = None,
    naive_tz: tzinfo = UTC,
    specs: tuple[TableSpec, ...] = IMPORTED,
) -> LegacySource:
    """Discover and read the old database in one read-only snapshot.

    Args:
        dsn: libpq DSN or URI of the old database.
        since: read only rows at or after this aware time (each table's ``since`` columns;
            OPEN positions always); None = everything.
        naive_tz: the zone of ``timestamp without time zone`` columns (for ``since``).
        specs: the tables to read.

    Raises:
        ConfigError: a malformed DSN.
        LegacySourceError: unreachable, or the discovery itself failed.
    """
    conn = open_readonly(dsn)
    try:
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                tables = _discover(conn)
            except psycopg.Error as exc:
                raise LegacySourceError(f"cannot read information_schema: {exc}") from None
            out: dict[str, SourceTable] = {}
            by_name = {s.name: s for s in specs}
            for name, columns in tables.items():
                spec = by_name.get(name)
                out[name] = _read_table(conn, name, columns, spec, since, naive_tz)
    except psycopg.OperationalError as exc:
        raise LegacySourceError(f"lost the legacy database while reading: {exc}") from None
    finally:
        conn.close()
    return LegacySource(label=redacted_dsn(dsn), tables=out)


def _discover(conn: psycopg.Connection[Any]) -> dict[str, dict[str, str]]:
    rows = conn.execute(
        """SELECT c.table_schema, c.table_name, c.column_name, c.data_type
           FROM information_schema.columns c
           JOIN information_schema.tables t
             ON t.table_schema = c.table_schema AND t.table_name = c.table_name
           WHERE c.table_schema = ANY(%s) AND t.table_type = 'BASE TABLE'
           ORDER BY c.table_schema, c.table_name, c.ordinal_position""",
        (list(SCHEMAS),),
    ).fetchall()
    tables: dict[str, dict[str, str]] = {}
    for schema, table, column, data_type in rows:
        tables.setdefault(f"{schema}.{table}", {})[str(column)] = str(data_type)
    return tables


def _read_table(
    conn: psycopg.Connection[Any],
    name: str,
    columns: dict[str, str],
    spec: TableSpec | None,
    since: datetime | None,
    naive_tz: tzinfo,
) -> SourceTable:
    schema, table = name.split(".", 1)
    ident = sql.Identifier(schema, table)
    try:
        with conn.transaction():  # a savepoint: one unreadable table does not end the read
            total_row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(ident)).fetchone()
            total = int(total_row[0]) if total_row else 0
            if spec is None or not all(c in columns for c in spec.required):
                return SourceTable(name, columns, (), total, total)
            where: sql.Composable = sql.SQL("true")
            params: list[Any] = []
            if since is not None and any(c in columns for c in spec.since):
                where, params = _since_clause(spec, columns, since, naive_tz)
            query = sql.SQL("SELECT * FROM {} WHERE {} ORDER BY id").format(ident, where)
            with conn.cursor(row_factory=dict_row) as cur:
                rows = tuple(cur.execute(query, params).fetchall())
    except psycopg.OperationalError:
        raise
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return SourceTable(name, columns, (), 0, 0, error=f"{type(exc).__name__}: {first}")
    return SourceTable(name, columns, rows, len(rows), total)
