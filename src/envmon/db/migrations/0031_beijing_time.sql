-- Beijing time, stated once in SQL (as envmon.timeutil states it once in Python).
-- Days, months and years of the standards are Beijing natural days (Asia/Shanghai,
-- UTC+8, no daylight saving since 1991). Queries call these instead of writing the
-- zone out. They are IMMUTABLE one-line SQL functions over IMMUTABLE timezone():
-- the planner inlines them, so a bound on ts stays an index or chunk-exclusion bound.
CREATE OR REPLACE FUNCTION bj_time(ts timestamptz) RETURNS timestamp
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT ts AT TIME ZONE 'Asia/Shanghai' $$;

CREATE OR REPLACE FUNCTION bj_day(ts timestamptz) RETURNS date
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT (ts AT TIME ZONE 'Asia/Shanghai')::date $$;

CREATE OR REPLACE FUNCTION bj_day_start(day date) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT day::timestamp AT TIME ZONE 'Asia/Shanghai' $$;

-- The dashboards' read-only role calls them too.
GRANT EXECUTE ON FUNCTION bj_time(timestamptz), bj_day(timestamptz), bj_day_start(date)
    TO PUBLIC;
