-- Issue 17: what HJ 212 loggers report about themselves, kept instead of dropped.
-- 3019 (device identifier) and 3020 (field-device information) items: the latest
-- value per station, pollutant/instrument (PolId, '' for the logger) and item.
CREATE TABLE hj212_device_info (
    station_id  text COLLATE "C" NOT NULL,
    pol_id      text NOT NULL DEFAULT '',
    info_id     text NOT NULL,
    value       text NOT NULL,
    data_time   timestamptz,
    mn          text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (station_id, pol_id, info_id)
);

-- Every 3019/3020 upload (logs, alarms, information) and every 2013 raw-data
-- upload, as events: the items in order (repeated PolId groups included).
CREATE TABLE hj212_device_event (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    station_id   text COLLATE "C" NOT NULL,
    mn           text NOT NULL,
    cn           text NOT NULL,
    data_time    timestamptz,
    items        jsonb NOT NULL,
    raw          text NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX hj212_device_event_station_idx ON hj212_device_event (station_id, received_at);
