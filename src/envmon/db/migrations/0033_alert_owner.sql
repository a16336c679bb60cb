-- One alert owner across instances (issue 16, docs/scaling.md, envmon.alerts.relay).
-- The owner of the advisory lock `envmon.alerts` stores how far it has judged the
-- stored readings: an instance taking over catches up from there.
CREATE TABLE alert_owner (
    id            boolean PRIMARY KEY DEFAULT true CHECK (id),  -- one row
    instance      text NOT NULL,           -- host:pid of the owner that wrote it
    judged_until  timestamptz NOT NULL,    -- every reading stored before was judged
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- The catch-up reads the readings stored since a time. Rows are appended in
-- arrival order, so a block-range index finds the recent ones for a fraction
-- of a btree's cost on every insert.
CREATE INDEX reading_received_brin ON reading USING brin (received_at)
    WITH (autosummarize = on);
