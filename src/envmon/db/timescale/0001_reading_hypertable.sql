-- TimescaleDB only (applied by envmon.db.migrate when the extension exists).
-- reading: 7-day chunks; compressed after 30 days, segmented by station and
-- parameter so one station's series decompresses alone. ('period' joins the
-- order-by because every column of a unique constraint must be segment-by or
-- order-by for compression.)
SELECT create_hypertable('reading', 'ts', chunk_time_interval => interval '7 days',
                         migrate_data => true, if_not_exists => true);
ALTER TABLE reading SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'station_id, parameter',
    timescaledb.compress_orderby = 'ts DESC, period'
);
SELECT add_compression_policy('reading', interval '30 days', if_not_exists => true);
