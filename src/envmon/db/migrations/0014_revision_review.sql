-- Issue 14: nothing is ever lost. Every change of a stored reading keeps the
-- version it replaced (reading_revision), and reviewers' invalidations are
-- marks beside the reading (review_mark), logged as actions (review_action),
-- never edits of the reading itself: restoring is ending a mark.

-- The superseded versions. Filled by a row trigger on reading, which fires
-- only for rows the writer's upsert really changes (its WHERE skips identical
-- re-deliveries before any trigger runs) and never on the plain-INSERT fast
-- path, so unchanged and new data cost nothing. Row triggers work on
-- TimescaleDB hypertables and on rows of compressed chunks (they are
-- decompressed before the update).
CREATE TABLE reading_revision (
    id           bigserial PRIMARY KEY,
    station_id   text COLLATE "C" NOT NULL,
    parameter    text COLLATE "C" NOT NULL,
    period       text COLLATE "C" NOT NULL,
    ts           timestamptz NOT NULL,
    value        double precision NOT NULL,      -- the superseded version ...
    flag         text COLLATE "C" NOT NULL,
    source       text COLLATE "C" NOT NULL,
    received_at  timestamptz NOT NULL,           -- ... and when it had arrived
    revised_at   timestamptz NOT NULL DEFAULT now(),
    new_source   text COLLATE "C" NOT NULL,      -- who replaced it
    reason       text NOT NULL CHECK (reason IN ('resend', 'import', 'backfill', 'review'))
);
CREATE INDEX reading_revision_key_idx ON reading_revision (station_id, parameter, ts, period);
CREATE INDEX reading_revision_at_idx ON reading_revision (revised_at);

-- The reason: what the writing transaction said (SET LOCAL
-- envmon.revision_reason), else an import by its source name, else a resend.
CREATE FUNCTION reading_keep_revision() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO reading_revision (station_id, parameter, period, ts, value, flag, source,
                                  received_at, new_source, reason)
    VALUES (OLD.station_id, OLD.parameter, OLD.period, OLD.ts, OLD.value, OLD.flag, OLD.source,
            OLD.received_at, NEW.source,
            coalesce(nullif(current_setting('envmon.revision_reason', true), ''),
                     CASE WHEN left(NEW.source, 7) = 'import:' THEN 'import' ELSE 'resend' END));
    RETURN NEW;
END
$$;
CREATE TRIGGER reading_keep_revision
    AFTER UPDATE ON reading FOR EACH ROW
    WHEN ((OLD.value, OLD.flag) IS DISTINCT FROM (NEW.value, NEW.flag))
    EXECUTE FUNCTION reading_keep_revision();

-- Every review action, with who, why and when; the marks it set or ended.
CREATE TABLE review_action (
    id          bigserial PRIMARY KEY,
    action      text NOT NULL CHECK (action IN ('invalidate', 'restore')),
    station_id  text COLLATE "C" NOT NULL,
    parameter   text COLLATE "C" NOT NULL,
    ts_from     timestamptz NOT NULL,
    ts_to       timestamptz NOT NULL CHECK (ts_to > ts_from),
    reason      text NOT NULL CHECK (reason <> ''),
    by_name     text NOT NULL CHECK (by_name <> ''),
    at          timestamptz NOT NULL DEFAULT now(),
    readings    integer NOT NULL
);
CREATE INDEX review_action_at_idx ON review_action (at);
CREATE INDEX review_action_key_idx ON review_action (station_id, parameter, ts_from);

-- One row per invalidated reading and period of invalidity: open while
-- restored_at is NULL. "Invalid as of T" is invalidated_at <= T and
-- (restored_at IS NULL OR restored_at > T).
CREATE TABLE review_mark (
    id              bigserial PRIMARY KEY,
    station_id      text COLLATE "C" NOT NULL,
    parameter       text COLLATE "C" NOT NULL,
    period          text COLLATE "C" NOT NULL,
    ts              timestamptz NOT NULL,
    invalidated_by  bigint NOT NULL REFERENCES review_action (id),
    invalidated_at  timestamptz NOT NULL,
    restored_by     bigint REFERENCES review_action (id),
    restored_at     timestamptz
);
CREATE UNIQUE INDEX review_mark_open_idx ON review_mark (station_id, parameter, period, ts)
    WHERE restored_at IS NULL;
CREATE INDEX review_mark_key_idx ON review_mark (station_id, parameter, ts);

-- The data-health dashboard reads the revision and review counts.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'grafana_reader') THEN
        GRANT SELECT ON reading_revision, review_action, review_mark TO grafana_reader;
    END IF;
EXCEPTION
    WHEN insufficient_privilege THEN
        RAISE WARNING 'cannot grant grafana_reader the review tables (%)', SQLERRM;
END
$$;
