-- 0003_tp_skipped: a take-profit level can be skipped (e.g. its quantity would fall below
-- the instrument's minimum); the PositionActor journals TP_PLACED with "skipped" then.
ALTER TYPE tp_status ADD VALUE IF NOT EXISTS 'SKIPPED';
