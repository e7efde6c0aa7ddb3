-- 0004_legacy_import: `tradebot import legacy` (issue 14; tradebot/legacy/, docs/ARCHITECTURE.md §7).
--
-- positions.origin says where a position came from: 'tradebot' (opened or adopted by this
-- bot) or 'legacy' (imported from the bot tradebot replaces). A legacy-origin position the
-- Reconciler finds flat is closed with the reason "closed before import"
-- (tradebot.legacy.CLOSED_BEFORE_IMPORT).
ALTER TABLE positions ADD COLUMN origin text NOT NULL DEFAULT 'tradebot'
    CHECK (origin IN ('tradebot', 'legacy'));
CREATE INDEX positions_origin ON positions (origin) WHERE origin <> 'tradebot';

-- A legacy signal that the old bot never processed has no decision.
ALTER TYPE signal_decision ADD VALUE IF NOT EXISTS 'unknown';

-- One row per imported source row: the importer's idempotency key (source table + id).
-- target_kind: 'position' (target_id = positions.position_id), 'signal' (signals.event_id),
-- 'event' (events.event_id). event_id: the journal event that records the source row.
CREATE TABLE legacy_import_map (
    source_table  text NOT NULL CHECK (source_table <> ''),
    source_id     text NOT NULL CHECK (source_id <> ''),
    target_kind   text NOT NULL CHECK (target_kind IN ('position', 'signal', 'event')),
    target_id     text NOT NULL CHECK (target_id <> ''),
    event_id      uuid,
    run_id        uuid NOT NULL,
    imported_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source_table, source_id)
);
CREATE INDEX legacy_import_map_target ON legacy_import_map (target_kind, target_id);

-- One row per import run that wrote something (a dry run writes nothing): its validation
-- report (the JSON of `tradebot import legacy --json`).
CREATE TABLE legacy_import_runs (
    run_id       uuid PRIMARY KEY,
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz NOT NULL,
    source       text NOT NULL,           -- the source DSN without its password
    report       jsonb NOT NULL
);
