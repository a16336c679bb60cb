-- grafana_reader (issue 7): the role Grafana's PostgreSQL data source logs in as.
-- SELECT on exactly the tables the dashboards read (envmon.dashboards.READ_TABLES),
-- nothing else. LOGIN, but no password is set here: nobody can log in as it until
-- the deployment sets one (ALTER ROLE grafana_reader PASSWORD …, see deploy/README.md).
-- Roles are cluster-wide, grants per database: every statement is idempotent, and
-- a server where envmon may not create roles only gets a warning.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'grafana_reader') THEN
        CREATE ROLE grafana_reader LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION;
    END IF;
EXCEPTION
    WHEN duplicate_object THEN
        NULL;  -- created meanwhile by the migration of another database in the cluster
    WHEN insufficient_privilege THEN
        RAISE WARNING 'cannot create role grafana_reader (%): an administrator must create it'
                      ' (CREATE ROLE grafana_reader LOGIN) and re-grant, see deploy/README.md',
                      SQLERRM;
END
$$;

DO $$
DECLARE
    t text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'grafana_reader') THEN
        RETURN;
    END IF;
    EXECUTE 'REVOKE ALL ON ALL TABLES IN SCHEMA ' || quote_ident(current_schema())
            || ' FROM grafana_reader';
    EXECUTE 'GRANT USAGE ON SCHEMA ' || quote_ident(current_schema()) || ' TO grafana_reader';
    -- source_health (0003) and alert_event (0004) come from other parts of envmon:
    -- every table is granted only where it exists.
    FOREACH t IN ARRAY ARRAY['station', 'reading', 'rejected', 'ingest_cursor', 'air_hour',
                             'air_day', 'region_day', 'water_day', 'water_section_month',
                             'dust_period', 'source_health', 'alert_event'] LOOP
        IF to_regclass(quote_ident(t)) IS NOT NULL THEN
            EXECUTE 'GRANT SELECT ON ' || quote_ident(t) || ' TO grafana_reader';
        END IF;
    END LOOP;
    -- Dashboards only read: a read-only default and a bound on runaway queries,
    -- for this database only.
    BEGIN
        EXECUTE 'ALTER ROLE grafana_reader IN DATABASE ' || quote_ident(current_database())
                || ' SET default_transaction_read_only = on';
        EXECUTE 'ALTER ROLE grafana_reader IN DATABASE ' || quote_ident(current_database())
                || ' SET statement_timeout = ''30s''';
    EXCEPTION
        WHEN insufficient_privilege THEN
            RAISE WARNING 'cannot set grafana_reader''s defaults (%)', SQLERRM;
    END;
END
$$;
