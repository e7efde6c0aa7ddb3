-- 0002_events: the journal (DESIGN.md section 7, invariant 6).
--
-- Range-partitioned by month on ts. A primary key of a partitioned table must contain the
-- partition key, so it is (event_id, ts): an event's ts never changes, so
-- `INSERT ... ON CONFLICT (event_id, ts) DO NOTHING` makes spool replay idempotent.
-- A DEFAULT partition catches any ts without a monthly partition (e.g. historical replay
-- data), so an insert never fails; journal_maintain_partitions() moves such rows into
-- their monthly partition when it creates it.

CREATE TABLE events (
    event_id        uuid NOT NULL,
    ts              timestamptz NOT NULL,
    seq             bigserial NOT NULL,           -- insertion order (ties within one ts)
    type            text NOT NULL CHECK (type <> ''),   -- tradebot.events.EventType value
    severity        event_severity NOT NULL DEFAULT 'info',
    position_id     text,
    client_order_id text,
    symbol          text,
    correlation_id  text,
    data            jsonb NOT NULL DEFAULT '{}'::jsonb,  -- Decimal values are JSON strings
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, ts)
) PARTITION BY RANGE (ts);

CREATE TABLE events_default PARTITION OF events DEFAULT;

CREATE INDEX events_position_ts ON events (position_id, ts, seq) WHERE position_id IS NOT NULL;
CREATE INDEX events_type_ts ON events (type, ts);
CREATE INDEX events_client_order_id ON events (client_order_id) WHERE client_order_id IS NOT NULL;
CREATE INDEX events_correlation_id ON events (correlation_id) WHERE correlation_id IS NOT NULL;
CREATE INDEX events_ts ON events (ts);

-- Name of the monthly partition holding `month_start` (first day of a month, UTC).
CREATE FUNCTION journal_partition_name(month_start date) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT 'events_y' || to_char(month_start, 'YYYY') || 'm' || to_char(month_start, 'MM')
$$;

-- Create the monthly partition for the month containing `month_start` if it does not exist.
-- Rows already sitting in events_default for that month are moved into it first (a new
-- partition cannot be attached while the default partition holds rows of its range).
-- Returns true when a partition was created.
CREATE FUNCTION journal_create_partition(month_start date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    lo   timestamptz := (date_trunc('month', month_start::timestamp) AT TIME ZONE 'UTC');
    hi   timestamptz := ((date_trunc('month', month_start::timestamp) + interval '1 month')
                         AT TIME ZONE 'UTC');
    name text := journal_partition_name(date_trunc('month', month_start::timestamp)::date);
BEGIN
    IF to_regclass(format('%I', name)) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', name);
    EXECUTE format(
        'WITH moved AS (DELETE FROM events_default WHERE ts >= %L AND ts < %L RETURNING *) '
        'INSERT INTO %I SELECT * FROM moved', lo, hi, name);
    EXECUTE format('ALTER TABLE events ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   name, lo, hi);
    RETURN true;
END;
$$;

-- Partition maintenance: create the partitions for the current month and `months_ahead`
-- following months (plus any month that has rows in events_default), and drop monthly
-- partitions whose whole range is older than `retention_days` (journal.retention_days;
-- NULL or 0 keeps everything). `now_ts` is the reference time (default now()).
-- Returns one line per action, e.g. 'created events_y2026m11', 'dropped events_y2026m01'.
CREATE FUNCTION journal_maintain_partitions(
    months_ahead integer DEFAULT 2,
    retention_days integer DEFAULT NULL,
    now_ts timestamptz DEFAULT now()
) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    m       date;
    part    record;
    cutoff  timestamptz;
    hi      timestamptz;
BEGIN
    IF months_ahead < 0 THEN
        RAISE EXCEPTION 'months_ahead must be >= 0, got %', months_ahead;
    END IF;
    IF retention_days IS NOT NULL AND retention_days < 0 THEN
        RAISE EXCEPTION 'retention_days must be >= 0, got %', retention_days;
    END IF;
    -- one transaction-scoped lock so two maintainers do not race on CREATE/ATTACH
    PERFORM pg_advisory_xact_lock(hashtext('tradebot.journal_partitions'));

    FOR m IN
        SELECT generate_series(date_trunc('month', now_ts AT TIME ZONE 'UTC'),
                               date_trunc('month', now_ts AT TIME ZONE 'UTC')
                                   + make_interval(months => months_ahead),
                               interval '1 month')::date
        UNION
        SELECT DISTINCT date_trunc('month', ts AT TIME ZONE 'UTC')::date FROM events_default
        ORDER BY 1
    LOOP
        IF journal_create_partition(m) THEN
            RETURN NEXT 'created ' || journal_partition_name(m);
        END IF;
    END LOOP;

    IF retention_days IS NOT NULL AND retention_days > 0 THEN
        cutoff := now_ts - make_interval(days => retention_days);
        FOR part IN
            SELECT c.relname AS name
            FROM pg_inherits i
            JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = 'events'::regclass AND c.relname ~ '^events_y[0-9]{4}m[0-9]{2}$'
            ORDER BY c.relname
        LOOP
            hi := (to_date(substr(part.name, 9, 4) || substr(part.name, 14, 2), 'YYYYMM')::timestamp
                   + interval '1 month') AT TIME ZONE 'UTC';
            IF hi <= cutoff THEN
                EXECUTE format('DROP TABLE %I', part.name);
                RETURN NEXT 'dropped ' || part.name;
            END IF;
        END LOOP;
        -- rows in the default partition older than the cutoff go too
        DELETE FROM events_default WHERE ts < cutoff;
    END IF;
END;
$$;

SELECT journal_maintain_partitions(2, NULL);
