-- GB/T 8170 rounding (数值修约, "四舍六入五成双") of an exact numeric, in SQL: a
-- dropped part of exactly one half goes to the even neighbour. The same numbers as
-- envmon.standards.rounding.round_half_even (tests/standards compare the two,
-- ties included). PostgreSQL's round(numeric, n) rounds halves away from zero.
-- One expression over its arguments and not STRICT (a CASE is not strict), so the
-- planner inlines it: called as a function, it costs ~2 µs a value. NULL gives NULL.
CREATE OR REPLACE FUNCTION gbt8170(v numeric, places int) RETURNS numeric
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT CASE
        WHEN abs(v - trunc(v, places)) * 10::numeric ^ places = 0.5
             AND mod(trunc(v, places) * 10::numeric ^ places, 2) = 0
        THEN trunc(v, places)
        ELSE round(v, places)
    END
$$;

GRANT EXECUTE ON FUNCTION gbt8170(numeric, int) TO PUBLIC;
