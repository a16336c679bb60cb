-- Key columns are COLLATE "C": byte-wise comparison makes the unique index and
-- the joins on station and parameter codes faster than a linguistic collation
-- (the codes are ASCII; order by name where people read it).
-- envmon core schema. Runs identically on plain PostgreSQL (>= 14) and on
-- TimescaleDB; the Timescale-only DDL lives in ../timescale/ and is applied
-- only where the extension exists.

-- time_bucket(): TimescaleDB's function where the extension is installed; a
-- compatible SQL function (via date_bin) elsewhere, so that every query the
-- dashboards, evaluation and API run is the same text on both.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        -- Same default origin as TimescaleDB (Monday 2000-01-03 UTC) for
        -- sub-month widths; months and years count from 2000-01-01 UTC.
        EXECUTE $f$
        CREATE OR REPLACE FUNCTION time_bucket(bucket_width interval, ts timestamptz)
        RETURNS timestamptz LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $body$
            SELECT CASE
                WHEN extract(year FROM bucket_width) = 0 AND extract(month FROM bucket_width) = 0
                THEN date_bin(bucket_width, ts, timestamptz '2000-01-03 00:00:00+00')
                ELSE (timestamp '2000-01-01' + make_interval(months =>
                        (floor(((extract(year FROM ts AT TIME ZONE 'UTC') - 2000) * 12
                                + extract(month FROM ts AT TIME ZONE 'UTC') - 1)
                               / (extract(year FROM bucket_width) * 12
                                  + extract(month FROM bucket_width)))
                         * (extract(year FROM bucket_width) * 12
                            + extract(month FROM bucket_width)))::int)) AT TIME ZONE 'UTC'
            END
        $body$;
        $f$;
        -- The timezone variant: buckets aligned to local midnight of ``tz``
        -- (Beijing days and months: time_bucket('1 day', ts, 'Asia/Shanghai')).
        EXECUTE $f$
        CREATE OR REPLACE FUNCTION time_bucket(bucket_width interval, ts timestamptz, timezone text)
        RETURNS timestamptz LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $body$
            SELECT CASE
                WHEN extract(year FROM bucket_width) = 0 AND extract(month FROM bucket_width) = 0
                THEN date_bin(bucket_width, ts AT TIME ZONE timezone, timestamp '2000-01-03 00:00:00')
                ELSE timestamp '2000-01-01' + make_interval(months =>
                        (floor(((extract(year FROM ts AT TIME ZONE timezone) - 2000) * 12
                                + extract(month FROM ts AT TIME ZONE timezone) - 1)
                               / (extract(year FROM bucket_width) * 12
                                  + extract(month FROM bucket_width)))
                         * (extract(year FROM bucket_width) * 12
                            + extract(month FROM bucket_width)))::int)
            END AT TIME ZONE timezone
        $body$;
        $f$;
    END IF;
END
$$;

CREATE TABLE station (
    id             text COLLATE "C" PRIMARY KEY,
    kind           text NOT NULL CHECK (kind IN ('air', 'water', 'weather')),
    name           text NOT NULL,
    city           text NOT NULL,
    county         text NOT NULL,
    lon            double precision NOT NULL CHECK (lon BETWEEN -180 AND 180),
    lat            double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),
    elevation_m    double precision,
    control_level  text NOT NULL
                   CHECK (control_level IN ('national', 'provincial', 'municipal', 'regional')),
    assessed       boolean NOT NULL DEFAULT true,
    verified       boolean NOT NULL DEFAULT false,
    river          text,
    basin          text,
    waterbody      text CHECK (waterbody IN ('river', 'lake')),
    target_class   smallint CHECK (target_class BETWEEN 1 AND 5),
    mn             text UNIQUE,
    station_no     text,
    active         boolean NOT NULL DEFAULT true,
    notes          text,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX station_kind_city_idx ON station (kind, city, county);

CREATE TABLE parameter (
    code        text PRIMARY KEY,
    hj212_code  text,
    name        text NOT NULL,
    unit        text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('air', 'water', 'weather')),
    low         double precision NOT NULL,
    high        double precision NOT NULL,
    CHECK (low < high)
);

-- One row per (station, parameter, period, ts); ts is the START of the period
-- (HJ 212 DataTime convention). No foreign keys: the writer validates against
-- the catalog before COPY, and FK triggers would halve bulk-load throughput.
CREATE TABLE reading (
    station_id   text COLLATE "C" NOT NULL,
    parameter    text COLLATE "C" NOT NULL,
    period       text COLLATE "C" NOT NULL CHECK (period IN ('rt', '1min', '5min', '1h', '4h', '1d')),
    ts           timestamptz NOT NULL,
    value        double precision NOT NULL,
    flag         text COLLATE "C" NOT NULL DEFAULT 'N',
    source       text COLLATE "C" NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT reading_key UNIQUE (station_id, parameter, period, ts)
);

-- Everything that failed validation, with its raw form and the reason: nothing
-- a station sent is dropped silently.
CREATE TABLE rejected (
    id           bigserial PRIMARY KEY,
    received_at  timestamptz NOT NULL DEFAULT now(),
    source       text COLLATE "C" NOT NULL,
    station_id   text COLLATE "C",
    parameter    text COLLATE "C",
    ts           timestamptz,
    raw          text NOT NULL,
    reason       text NOT NULL
);
CREATE INDEX rejected_received_idx ON rejected (received_at);
CREATE INDEX rejected_source_idx ON rejected (source, received_at);

CREATE TABLE ingest_cursor (
    source           text COLLATE "C" NOT NULL,
    station_id       text COLLATE "C" NOT NULL DEFAULT '',
    last_ts          timestamptz,
    last_success_at  timestamptz,
    last_error_at    timestamptz,
    last_error       text,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, station_id)
);
