-- 0001_core: positions, orders, fills, signals, waves, tp_levels, alerts, instances.
--
-- DESIGN.md section 7. Money and quantities are numeric (never float/real/double);
-- sides and statuses are enums; quantities are CHECKed > 0; updated_at is kept by a trigger.
-- Applied by `tradebot db migrate` (adapters/postgres/migrations.py) inside one
-- transaction, recorded in schema_migrations with the file's sha256.

CREATE TYPE position_side AS ENUM ('LONG', 'SHORT');
CREATE TYPE order_side AS ENUM ('BUY', 'SELL');
CREATE TYPE position_status AS ENUM (
    'OPENING', 'ACTIVE', 'CLOSING', 'CLOSED', 'ROLLED_BACK', 'FAILED');
-- tradebot.domain.OrderStatus plus our own pre-exchange states (INTENT, SUBMITTED) and
-- UNKNOWN (outcome unknown until looked up by client order id).
CREATE TYPE order_status AS ENUM (
    'INTENT', 'SUBMITTED', 'NEW', 'PARTIALLY_FILLED', 'FILLED', 'CANCELED', 'REJECTED',
    'EXPIRED', 'TRIGGERED', 'UNKNOWN');
CREATE TYPE order_type AS ENUM ('MARKET', 'LIMIT', 'STOP_MARKET');
CREATE TYPE order_role AS ENUM (
    'ENTRY', 'STOP', 'TAKE_PROFIT', 'AGED_EXIT', 'CLOSE', 'EMERGENCY_STOP');
CREATE TYPE event_severity AS ENUM ('debug', 'info', 'warning', 'error', 'critical');
CREATE TYPE signal_decision AS ENUM ('taken', 'filtered', 'rejected');
CREATE TYPE tp_status AS ENUM ('PLANNED', 'PLACED', 'FILLED', 'CANCELED');

CREATE FUNCTION set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

-- One row per position the bot opened or adopted. position_id is tradebot.ids.position_id_for.
CREATE TABLE positions (
    position_id          text PRIMARY KEY CHECK (position_id <> ''),
    account              text NOT NULL DEFAULT 'default',
    venue                text NOT NULL DEFAULT '',
    symbol               text NOT NULL CHECK (symbol <> ''),
    position_side        position_side NOT NULL,
    status               position_status NOT NULL DEFAULT 'OPENING',
    qty                  numeric NOT NULL CHECK (qty > 0),          -- intended, then filled qty
    entry_price          numeric CHECK (entry_price > 0),           -- average fill price
    intended_stop_price  numeric CHECK (intended_stop_price > 0),
    stop_price           numeric CHECK (stop_price > 0),            -- current exchange stop
    exit_price           numeric CHECK (exit_price > 0),
    realized_pnl_usdt    numeric,
    fees_usdt            numeric NOT NULL DEFAULT 0,
    wave_id              text,
    signal_id            text,
    opened_at            timestamptz NOT NULL,
    closed_at            timestamptz,
    close_reason         text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CHECK (closed_at IS NULL OR closed_at >= opened_at)
);
-- Invariant 4: at most one live position per (account, symbol, side).
CREATE UNIQUE INDEX positions_one_live_per_side
    ON positions (account, symbol, position_side)
    WHERE status IN ('OPENING', 'ACTIVE', 'CLOSING');
CREATE INDEX positions_status ON positions (status);
CREATE INDEX positions_symbol_opened ON positions (symbol, opened_at);
CREATE TRIGGER positions_updated_at BEFORE UPDATE ON positions
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Every order we send. client_order_id is ours (tradebot.ids.client_order_id); the venue's
-- ids live in their own columns: venue_order_id (Bybit orderId, Binance orderId) and
-- venue_algo_id (Binance algo/conditional orders' algoId).
CREATE TABLE orders (
    client_order_id   text PRIMARY KEY CHECK (client_order_id <> ''),
    position_id       text NOT NULL REFERENCES positions (position_id),
    venue_order_id    text,
    venue_algo_id     text,
    symbol            text NOT NULL CHECK (symbol <> ''),
    side              order_side NOT NULL,
    order_type        order_type NOT NULL,
    role              order_role NOT NULL,
    status            order_status NOT NULL DEFAULT 'INTENT',
    qty               numeric CHECK (qty > 0),                 -- NULL only with close_position
    price             numeric CHECK (price > 0),               -- limit price
    trigger_price     numeric CHECK (trigger_price > 0),       -- stop trigger (mark price)
    reduce_only       boolean NOT NULL DEFAULT false,
    close_position    boolean NOT NULL DEFAULT false,
    filled_qty        numeric NOT NULL DEFAULT 0 CHECK (filled_qty >= 0),
    avg_fill_price    numeric CHECK (avg_fill_price > 0),
    reject_reason     text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CHECK (qty IS NOT NULL OR close_position),
    CHECK (order_type <> 'LIMIT' OR price IS NOT NULL),
    CHECK (order_type <> 'STOP_MARKET' OR trigger_price IS NOT NULL)
);
CREATE INDEX orders_position ON orders (position_id);
CREATE INDEX orders_venue_order_id ON orders (venue_order_id) WHERE venue_order_id IS NOT NULL;
CREATE INDEX orders_venue_algo_id ON orders (venue_algo_id) WHERE venue_algo_id IS NOT NULL;
CREATE INDEX orders_live ON orders (symbol, status)
    WHERE status IN ('INTENT', 'SUBMITTED', 'NEW', 'PARTIALLY_FILLED', 'UNKNOWN');
CREATE TRIGGER orders_updated_at BEFORE UPDATE ON orders
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Executions. (client_order_id, trade_id) is the venue's execution identity.
CREATE TABLE fills (
    fill_id          bigserial PRIMARY KEY,
    client_order_id  text NOT NULL REFERENCES orders (client_order_id),
    position_id      text NOT NULL REFERENCES positions (position_id),
    trade_id         text NOT NULL CHECK (trade_id <> ''),
    side             order_side NOT NULL,
    qty              numeric NOT NULL CHECK (qty > 0),
    price            numeric NOT NULL CHECK (price > 0),
    fee_usdt         numeric NOT NULL DEFAULT 0,
    is_maker         boolean,
    ts               timestamptz NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (client_order_id, trade_id)
);
CREATE INDEX fills_position_ts ON fills (position_id, ts);

-- Waves: one row per processed 15-minute wave; wave_id persisted so a wave is processed once.
CREATE TABLE waves (
    wave_id           text PRIMARY KEY CHECK (wave_id <> ''),
    wave_ts           timestamptz,
    started_at        timestamptz,
    completed_at      timestamptz,
    signals_received  integer CHECK (signals_received >= 0),
    signals_taken     integer CHECK (signals_taken >= 0),
    signals_filtered  integer CHECK (signals_filtered >= 0),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX waves_wave_ts ON waves (wave_ts);
CREATE TRIGGER waves_updated_at BEFORE UPDATE ON waves
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Signals with the decision taken about them and why. event_id is the journal event the
-- row was projected from (idempotent projection).
CREATE TABLE signals (
    event_id     uuid PRIMARY KEY,
    signal_id    text,
    wave_id      text,
    wave_ts      timestamptz,
    symbol       text,
    venue        text,
    action       text,
    score_week   numeric,
    score_month  numeric,
    decision     signal_decision NOT NULL,
    reason       text NOT NULL DEFAULT '',
    ts           timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX signals_wave ON signals (wave_id);
CREATE INDEX signals_symbol_ts ON signals (symbol, ts);
CREATE INDEX signals_ts ON signals (ts);

-- Partial take-profit levels per position.
CREATE TABLE tp_levels (
    position_id      text NOT NULL REFERENCES positions (position_id),
    level            integer NOT NULL CHECK (level >= 0),
    profit_pct       numeric CHECK (profit_pct > 0),
    fraction         numeric CHECK (fraction > 0 AND fraction <= 1),
    price            numeric CHECK (price > 0),
    qty              numeric CHECK (qty > 0),
    client_order_id  text,
    status           tp_status NOT NULL DEFAULT 'PLANNED',
    filled_at        timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (position_id, level)
);
CREATE TRIGGER tp_levels_updated_at BEFORE UPDATE ON tp_levels
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Alerts raised (after de-duplication); event_id links to the journal event.
CREATE TABLE alerts (
    alert_id          bigserial PRIMARY KEY,
    event_id          uuid UNIQUE,
    ts                timestamptz NOT NULL,
    severity          event_severity NOT NULL DEFAULT 'warning',
    alert_key         text NOT NULL DEFAULT '',
    message           text NOT NULL,
    suppressed_count  integer NOT NULL DEFAULT 0 CHECK (suppressed_count >= 0),
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alerts_ts ON alerts (ts);
CREATE INDEX alerts_key_ts ON alerts (alert_key, ts);

-- Running bot instances. The single-instance guarantee is a session advisory lock on
-- hashtext('tradebot.instance:' || instance_name) held by the running process
-- (adapters/postgres/instance.py); this row is informational (who holds it, since when).
CREATE TABLE instances (
    instance_name  text PRIMARY KEY CHECK (instance_name <> ''),
    pid            integer NOT NULL CHECK (pid > 0),
    hostname       text NOT NULL DEFAULT '',
    version        text NOT NULL DEFAULT '',
    started_at     timestamptz NOT NULL DEFAULT now(),
    heartbeat_at   timestamptz NOT NULL DEFAULT now(),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER instances_updated_at BEFORE UPDATE ON instances
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
