-- Alerts (issue 6): episodes, their notifications (an outbox), the delivery log,
-- dead letters, silences and declared maintenance windows.
--
-- An episode is one alert for one (rule, subject): a station id, 'city:<city>',
-- 'source:<source>' or 'region:<region>'. At most one episode per (rule, subject)
-- is open (resolved_at IS NULL). A notification row is written in the same
-- transaction as the transition it announces, so a restart neither loses it
-- (it is still pending) nor repeats it (it is marked sent).

CREATE TABLE alert_event (
    id              bigserial PRIMARY KEY,
    rule            text COLLATE "C" NOT NULL,
    subject         text COLLATE "C" NOT NULL,
    station_id      text COLLATE "C",
    city            text,
    severity        text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    state           text NOT NULL CHECK (state IN ('firing', 'escalated', 'resolved')),
    route           text NOT NULL,
    started_at      timestamptz NOT NULL,   -- when it fired (service clock)
    first_ts        timestamptz,            -- data time of the reading that fired it
    escalated_at    timestamptz,
    resolved_at     timestamptz,
    acked_at        timestamptz,
    acked_by        text,
    ack_note        text,
    parameter       text,
    unit            text,
    value           double precision,       -- the value that fired it
    threshold       double precision,
    last_value      double precision,
    last_ts         timestamptz,
    message         text NOT NULL,
    details         jsonb NOT NULL DEFAULT '{}',
    silenced        boolean NOT NULL DEFAULT false,  -- fired under a silence: not announced
    notified        boolean NOT NULL DEFAULT false,  -- its firing notice was queued
    flapping        boolean NOT NULL DEFAULT false,
    clearing_since  timestamptz,            -- a flapping episode's resolution is held from here
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((state = 'resolved') = (resolved_at IS NOT NULL))
);
CREATE UNIQUE INDEX alert_event_open_key ON alert_event (rule, subject) WHERE resolved_at IS NULL;
CREATE INDEX alert_event_started_idx ON alert_event (started_at);
CREATE INDEX alert_event_station_idx ON alert_event (station_id, started_at);

-- Silences: matching episodes are recorded but not announced until the silence ends.
-- NULL matches anything; rule may be a pattern (pm25-*).
CREATE TABLE alert_silence (
    id          bigserial PRIMARY KEY,
    rule        text,
    station_id  text COLLATE "C",
    city        text,
    starts_at   timestamptz NOT NULL DEFAULT now(),
    ends_at     timestamptz NOT NULL,
    created_by  text,
    comment     text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (starts_at < ends_at)
);
CREATE INDEX alert_silence_ends_idx ON alert_silence (ends_at);

-- Declared maintenance windows (besides the M/C flags the stations send):
-- no new alerts for the station (or every station of the city) meanwhile.
CREATE TABLE alert_maintenance (
    id          bigserial PRIMARY KEY,
    station_id  text COLLATE "C",
    city        text,
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL,
    note        text,
    created_by  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (starts_at < ends_at)
);
CREATE INDEX alert_maintenance_ends_idx ON alert_maintenance (ends_at);

-- The outbox: one row per (transition, channel). payload is the rendered message.
CREATE TABLE alert_notification (
    id               bigserial PRIMARY KEY,
    event_id         bigint REFERENCES alert_event (id) ON DELETE CASCADE,
    kind             text NOT NULL CHECK (kind IN ('firing', 'escalated', 'resolved', 'test')),
    channel          text NOT NULL,
    route            text,
    payload          jsonb NOT NULL,
    state            text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'dead')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    claimed_until    timestamptz,           -- a worker is sending it (another process must wait)
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz
);
CREATE UNIQUE INDEX alert_notification_once ON alert_notification (event_id, kind, channel)
    WHERE event_id IS NOT NULL;
CREATE INDEX alert_notification_pending_idx ON alert_notification (next_attempt_at)
    WHERE state = 'pending';

-- Every attempt, successful or not.
CREATE TABLE alert_delivery (
    id               bigserial PRIMARY KEY,
    notification_id  bigint NOT NULL REFERENCES alert_notification (id) ON DELETE CASCADE,
    channel          text NOT NULL,
    attempt          integer NOT NULL,
    at               timestamptz NOT NULL DEFAULT now(),
    ok               boolean NOT NULL,
    status           text,
    error            text,
    duration_ms      double precision
);
CREATE INDEX alert_delivery_notification_idx ON alert_delivery (notification_id);
CREATE INDEX alert_delivery_at_idx ON alert_delivery (at);

-- Notifications a channel kept refusing or failing: kept for people to look at
-- (envmon alerts list, envmon status) and to send again.
CREATE TABLE alert_dead_letter (
    id               bigserial PRIMARY KEY,
    notification_id  bigint NOT NULL UNIQUE REFERENCES alert_notification (id) ON DELETE CASCADE,
    channel          text NOT NULL,
    kind             text NOT NULL,
    payload          jsonb NOT NULL,
    attempts         integer NOT NULL,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    requeued_at      timestamptz
);
