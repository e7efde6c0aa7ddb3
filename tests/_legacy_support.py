"""The old bot's database for the legacy-import tests: its schema as
../shared/reference/legacy-bot-schema.md describes it (FLOAT money, naive timestamps, an
enum status, the event logger's run-time tables), with one optional column left out
(``monitoring.positions.mark_price``) and one hand-added column (``notes``) as real
installations drift, and rows carrying the known defects (FLOAT artefacts such as
0.30000000000000004, a zero exit price, ccxt symbols, OPEN positions)."""

from __future__ import annotations

from typing import Any

import psycopg

__all__ = ["LEGACY_DDL", "seed_legacy", "source_float_count"]

LEGACY_DDL = """
CREATE SCHEMA monitoring;
CREATE SCHEMA fas;
CREATE TYPE monitoring.positionstatus AS ENUM ('OPEN', 'CLOSED', 'LIQUIDATED');

CREATE TABLE fas.signals (
    id serial PRIMARY KEY,
    pair_symbol varchar(50),
    exchange_name varchar(50),
    score_week double precision,
    score_month double precision,
    recommended_action varchar(10),
    is_processed boolean DEFAULT false,
    created_at timestamp
);

CREATE TABLE monitoring.trades (
    id serial PRIMARY KEY,
    signal_id integer,
    symbol varchar(50),
    side varchar(10),
    quantity double precision,
    price double precision,
    status varchar(20),
    executed_at timestamp
);

CREATE TABLE monitoring.positions (
    id serial PRIMARY KEY,
    trade_id integer,
    symbol varchar(50),
    exchange varchar(50),
    side varchar(10),
    quantity double precision,
    entry_price double precision,
    current_price double precision,
    unrealized_pnl double precision,
    unrealized_pnl_percent double precision,
    has_stop_loss boolean,
    stop_loss_price double precision,
    stop_loss_order_id varchar(100),
    has_trailing_stop boolean,
    trailing_activated boolean,
    trailing_activation_price double precision,
    trailing_callback_rate double precision,
    status monitoring.positionstatus,
    exit_price double precision,
    realized_pnl double precision,
    fees double precision,
    exit_reason varchar(100),
    opened_at timestamp,
    closed_at timestamp,
    last_update timestamp,
    ws_position_id varchar(100),
    notes text
);

CREATE TABLE monitoring.risk_events (
    id serial PRIMARY KEY,
    position_id integer,
    event_type varchar(50),
    risk_level varchar(20),
    details json,
    created_at timestamp
);

CREATE TABLE monitoring.alerts (
    id serial PRIMARY KEY,
    message text,
    acknowledged boolean,
    created_at timestamp
);

CREATE TABLE events (
    id SERIAL PRIMARY KEY,
    event_type VARCHAR(50) NOT NULL,
    event_data JSONB,
    correlation_id VARCHAR(100),
    position_id INTEGER,
    order_id VARCHAR(100),
    symbol VARCHAR(50),
    exchange VARCHAR(50),
    severity VARCHAR(20) DEFAULT 'INFO',
    error_message TEXT,
    stack_trace TEXT,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE performance_metrics (
    id serial PRIMARY KEY,
    metric text,
    value double precision,
    tags jsonb,
    ts timestamptz
);
"""

_POS_COLS = (
    "id, trade_id, symbol, exchange, side, quantity, entry_price, current_price, "
    "stop_loss_price, stop_loss_order_id, has_trailing_stop, trailing_activated, "
    "trailing_activation_price, trailing_callback_rate, status, exit_price, realized_pnl, "
    "fees, exit_reason, opened_at, closed_at, last_update, notes"
)

# fmt: off
POSITIONS: list[tuple[Any, ...]] = [
    # 1: closed, ccxt symbol, on-tick values
    (1, 1, "BTC/USDT:USDT", "bybit", "long", 0.01, 65000.1, None, 64000.0, "bb-1", True, True,
     65975.1, 0.5, "CLOSED", 65650.0, 6.499, 0.75, "trailing_stop",
     "2025-05-01 10:00:00", "2025-05-01 14:00:00", None, "moved by hand"),
    # 2: closed, FLOAT artefact entry (0.1 + 0.2), zero exit price (aged-exit rounding bug)
    (2, 2, "XRPUSDT", "binance", "short", 1000.0, 0.1 + 0.2, None, 0.306, "bn-2", True, False,
     None, None, "CLOSED", 0.0, -2.5, 0.1 + 0.2, "aged_exit",
     "2025-05-02 08:00:00", "2025-05-02 19:30:00", None, None),
    # 3: liquidated, qty 0.1 + 0.2, off-tick entry, no exit reason
    (3, 3, "SOLUSDT", "bybit", "long", 0.1 + 0.2, 150.123, None, None, None, False, False,
     None, None, "LIQUIDATED", 120.0, -9.0369, 0.05, None,
     "2025-05-03 01:00:00", "2025-05-03 02:00:00", None, None),
    # 4: closed with quantity 0: not importable
    (4, None, "BNBUSDT", "bybit", "long", 0.0, 600.0, None, None, None, False, False,
     None, None, "CLOSED", 610.0, 1.0, 0.01, "manual",
     "2025-05-04 01:00:00", "2025-05-04 02:00:00", None, None),
    # 5: OPEN, trailing activated (stop 2587 = water mark 2600 - 0.5 %): open on the exchange
    (5, 99, "ETH/USDT:USDT", "bybit", "long", 0.1, 2500.0, 2601.0, 2587.0, "bb-5", True, True,
     2537.5, 0.5, "OPEN", None, None, 0.1, None,
     "2025-05-05 09:00:00", None, "2025-05-05 12:00:00", None),
    # 6: OPEN, trailing not activated: flat on the exchange (closed in the sync window)
    (6, None, "SOLUSDT", "bybit", "short", 2.0, 160.0, 159.0, 163.2, "bb-6", True, False,
     157.6, 0.5, "OPEN", None, None, None, None,
     "2025-05-05 10:00:00", None, "2025-05-05 12:00:00", None),
]

SIGNALS: list[tuple[Any, ...]] = [
    (1, "BTC/USDT:USDT", "bybit", 72.5, 65.1, "BUY", True, "2025-05-01 09:50:00"),
    (2, "XRPUSDT", "binance", 70.0, 60.0, "SELL", True, "2025-05-02 07:50:00"),
    (3, "ADAUSDT", "bybit", 55.5, 50.0, "BUY", True, "2025-05-02 07:50:00"),
    (4, "LINKUSDT", "bybit", 40.0, None, "BUY", False, "2025-05-02 07:50:00"),
    (5, "LTCUSDT", "bybit", 40.0, 41.0, "BUY", True, None),
]

TRADES: list[tuple[Any, ...]] = [
    (1, 1, "BTCUSDT", "buy", 0.01, 65000.1, "FILLED", "2025-05-01 10:00:00"),
    (2, 2, "XRPUSDT", "sell", 1000.0, 0.3, "FILLED", "2025-05-02 08:00:00"),
    (3, None, "SOLUSDT", "buy", 0.3, 150.12, "FILLED", "2025-05-03 01:00:00"),
]

EVENTS: list[tuple[Any, ...]] = [
    (1, "position_opened", '{"qty": 0.01, "price": 65000.1}', "w-1", 1, "o-1", "BTC/USDT:USDT",
     "bybit", "INFO", None, None, "2025-05-01 10:00:01+00"),
    (2, "stop_loss_error", '{"attempt": 3}', None, 2, None, "XRPUSDT", "binance", "ERROR",
     "timeout", "Traceback ...", "2025-05-02 08:00:05+00"),
    (3, "heartbeat", None, None, 4, None, None, None, "VERBOSE", None, None,
     "2025-05-04 01:00:00+00"),
]

RISK_EVENTS: list[tuple[Any, ...]] = [
    (1, 5, "exposure_high", "HIGH", '{"exposure_usdt": 250.0}', "2025-05-05 11:00:00"),
]
# fmt: on


def seed_legacy(dsn: str, *, open_since: str | None = None) -> None:
    """Create the old schema in the (empty) database ``dsn`` and insert the rows above.

    ``open_since``: naive UTC ``opened_at`` of the two OPEN positions (their
    ``last_update`` too) instead of the fixed 2025 one (a run against the sandbox wants
    positions younger than the aged-exit threshold)."""
    rows = POSITIONS
    if open_since is not None:
        rows = [
            (*r[:19], open_since, r[20], open_since, r[22]) if r[14] == "OPEN" else r
            for r in POSITIONS
        ]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(LEGACY_DDL)
        with conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO monitoring.positions ({_POS_COLS}) VALUES ({', '.join(['%s'] * 23)})",
                rows,
            )
            cur.executemany(
                "INSERT INTO fas.signals VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", SIGNALS
            )
            cur.executemany(
                "INSERT INTO monitoring.trades VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", TRADES
            )
            cur.executemany(
                "INSERT INTO events VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                EVENTS,
            )
            cur.executemany(
                "INSERT INTO monitoring.risk_events VALUES (%s, %s, %s, %s, %s, %s)", RISK_EVENTS
            )
            cur.execute(
                "INSERT INTO monitoring.alerts (message, acknowledged, created_at) VALUES "
                "('ws down', true, '2025-05-01 00:00:00'), ('ws down', false, "
                "'2025-05-02 00:00:00')"
            )
            cur.execute(
                "INSERT INTO performance_metrics (metric, value, tags, ts) VALUES "
                "('latency_ms', 12.5, '{}', '2025-05-01 00:00:00+00')"
            )


def source_float_count(dsn: str, exclude: dict[str, tuple[int, ...]] | None = None) -> int:
    """Non-NULL FLOAT values in the tables the importer converts (positions, signals,
    events, risk_events), counted by the database itself; ``exclude``: ``schema.table`` →
    ids of rows not to count."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        cols = conn.execute(
            """SELECT table_schema, table_name, column_name FROM information_schema.columns
               WHERE data_type IN ('double precision', 'real')
                 AND (table_schema, table_name) IN (('monitoring', 'positions'),
                     ('fas', 'signals'), ('public', 'events'), ('monitoring', 'risk_events'))"""
        ).fetchall()
        n = 0
        for schema, table, col in cols:
            skip = list((exclude or {}).get(f"{schema}.{table}", ()))
            row = conn.execute(
                f'SELECT count("{col}") FROM "{schema}"."{table}" WHERE NOT (id = ANY(%s))',
                (skip,),
            ).fetchone()
            n += int(row[0]) if row else 0
        return n
