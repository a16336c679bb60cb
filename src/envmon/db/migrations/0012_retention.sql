-- Retention (issue 12): what is only useful for a while is pruned.
--   * raw sub-hourly readings (periods rt, 1min, 5min) — the hours, days and the
--     derived tables are kept for good (annual assessment needs every year);
--   * rejected rows (by received_at);
--   * the alert delivery log (alert_delivery, by at).
-- Days come from settings (ENVMON_RETENTION__*); 0 keeps everything.
-- TimescaleDB's own retention policy (drop_chunks) cannot serve here: a chunk of
-- reading holds the hours next to the minutes. On TimescaleDB the pruning runs as a
-- TimescaleDB job (envmon_prune_job, scheduled by envmon migrate); on plain
-- PostgreSQL envmon's service calls envmon_prune once a day.
CREATE OR REPLACE PROCEDURE envmon_prune(minute_days integer, rejects_days integer,
                                         alert_log_days integer)
LANGUAGE plpgsql AS $$
DECLARE
    cutoff timestamptz := now() - make_interval(days => minute_days);
    chunk regclass;
    found boolean;
BEGIN
    -- Deleting from compressed chunks decompresses the batches it touches: no cap
    -- (the TimescaleDB default refuses more than 100,000 rows per transaction).
    PERFORM set_config('timescaledb.max_tuples_decompressed_per_dml_transaction', '0', true);
    IF minute_days > 0 THEN
        IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
            -- A DELETE on the hypertable decompresses every batch older than the
            -- cutoff, minute data or not (measured: all of them), leaving the whole
            -- history partly decompressed each day. Only chunks that still hold
            -- sub-hourly rows are touched; a read finds them without decompressing
            -- anything on disk.
            FOR chunk IN EXECUTE
                'SELECT format(''%I.%I'', chunk_schema, chunk_name)::regclass'
                ' FROM timescaledb_information.chunks'
                ' WHERE hypertable_name = ''reading'' AND range_start < $1'
                USING cutoff
            LOOP
                EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s WHERE period IN'
                               ' (''rt'', ''1min'', ''5min'') AND ts < $1)', chunk)
                    INTO found USING cutoff;
                IF found THEN
                    EXECUTE format('DELETE FROM %s WHERE period IN (''rt'', ''1min'', ''5min'')'
                                   ' AND ts < $1', chunk) USING cutoff;
                END IF;
            END LOOP;
        ELSE
            DELETE FROM reading WHERE period IN ('rt', '1min', '5min') AND ts < cutoff;
        END IF;
    END IF;
    IF rejects_days > 0 THEN
        DELETE FROM rejected WHERE received_at < now() - make_interval(days => rejects_days);
    END IF;
    IF alert_log_days > 0 THEN
        DELETE FROM alert_delivery WHERE at < now() - make_interval(days => alert_log_days);
    END IF;
END
$$;

-- The TimescaleDB job's entry point (a job procedure takes (job_id, config)).
CREATE OR REPLACE PROCEDURE envmon_prune_job(job_id integer, config jsonb)
LANGUAGE plpgsql AS $$
BEGIN
    CALL envmon_prune(coalesce((config->>'minute_days')::integer, 0),
                      coalesce((config->>'rejects_days')::integer, 0),
                      coalesce((config->>'alert_log_days')::integer, 0));
END
$$;
