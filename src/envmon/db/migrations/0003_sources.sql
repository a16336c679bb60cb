-- Health of the HTTP pull sources (issue 5), for `envmon status` and dashboards.
--
-- ingest_cursor keeps the cursors: per (source, station) the latest period
-- received, and per (source, '') how far the platform has been read without a
-- gap. What it cannot hold is the state of the source itself — whether it is
-- up, backing off or disabled (and why), how many polls failed in a row, when
-- the next attempt is due — which `envmon status` must show from another
-- process than the one polling. One row per source, rewritten after each poll.
CREATE TABLE source_health (
    source           text COLLATE "C" PRIMARY KEY,
    kind             text NOT NULL,
    state            text NOT NULL CHECK (state IN ('starting', 'ok', 'down', 'disabled')),
    state_since      timestamptz NOT NULL,
    failures         integer NOT NULL DEFAULT 0 CHECK (failures >= 0),
    last_attempt_at  timestamptz,
    last_success_at  timestamptz,
    last_error_at    timestamptz,
    last_error       text,
    next_attempt_at  timestamptz,
    stale_after      interval NOT NULL,
    period           interval NOT NULL DEFAULT interval '1 hour',
    details          jsonb NOT NULL DEFAULT '{}'::jsonb,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
