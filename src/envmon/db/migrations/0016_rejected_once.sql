-- Rejects counted, not repeated (issue 19): the same raw record rejected for the
-- same reason by the same source is ONE row, with how many times it was seen
-- (`times`) and when last (`last_seen_at`; `received_at` stays the first time).
-- Re-importing a file, or a logger resending the same bad frame, adds nothing.
-- The identity is a SHA-256 of the raw text and the reason (raw can be longer
-- than a btree entry may be), set by a trigger so that every writer agrees.

ALTER TABLE rejected
    ADD COLUMN times        integer NOT NULL DEFAULT 1,
    ADD COLUMN last_seen_at timestamptz,
    ADD COLUMN raw_key      bytea;

CREATE FUNCTION rejected_raw_key(raw text, reason text) RETURNS bytea
    LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT sha256(convert_to(raw, 'UTF8') || '\x00'::bytea || convert_to(reason, 'UTF8'))
$$;

UPDATE rejected SET raw_key = rejected_raw_key(raw, reason), last_seen_at = received_at;

-- Rows stored before this migration: merge the repeats into the oldest row.
WITH groups AS (
    SELECT min(id) AS keep, source, raw_key, count(*) AS n, max(received_at) AS last
    FROM rejected GROUP BY source, raw_key HAVING count(*) > 1
), merged AS (
    UPDATE rejected r SET times = g.n, last_seen_at = g.last
    FROM groups g WHERE r.id = g.keep
    RETURNING r.id
)
DELETE FROM rejected r USING groups g
WHERE r.source = g.source AND r.raw_key = g.raw_key AND r.id <> g.keep;

ALTER TABLE rejected
    ALTER COLUMN raw_key SET NOT NULL,
    ALTER COLUMN last_seen_at SET NOT NULL,
    ALTER COLUMN last_seen_at SET DEFAULT now();

CREATE FUNCTION rejected_set_raw_key() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.raw_key := rejected_raw_key(NEW.raw, NEW.reason);
    RETURN NEW;
END
$$;

CREATE TRIGGER rejected_raw_key BEFORE INSERT OR UPDATE OF raw, reason ON rejected
    FOR EACH ROW EXECUTE FUNCTION rejected_set_raw_key();

CREATE UNIQUE INDEX rejected_once ON rejected (source, raw_key);
CREATE INDEX rejected_last_seen_idx ON rejected (last_seen_at);
