-- The zone's real network (issue 15): which air points make the city value, the
-- clean-control points (对照点), the pollutants a station does not monitor ("/" in
-- the national feed) and where a station's facts come from.
ALTER TABLE station
    ADD COLUMN evaluation_point boolean NOT NULL DEFAULT false,
    ADD COLUMN clean_control    boolean NOT NULL DEFAULT false,
    ADD COLUMN not_monitored    text[] NOT NULL DEFAULT '{}',
    ADD COLUMN source           text;
