-- Geofencing's outbox row carries its events as one bytea, payload, in the
-- store's own versioned binary form (internal/postgis/fence_payload.go),
-- instead of nine arrays (docs/GEOFENCE.md, Throughput): PostgreSQL received
-- and sent the arrays element by element (about 60,000 elements for a
-- batch of 5,000 positions), which was most of its CPU time per position;
-- a bytea is copied whole.
--
-- The arrays stay, renamed, for the rows written before: the relay reads
-- both forms. The renaming is deliberate: a server of the version before,
-- still running during a rolling deploy, fails loudly (its statements name
-- the old columns) instead of reading a payload row as an empty one and
-- skipping its events.
ALTER TABLE fence_outbox DROP CONSTRAINT fence_outbox_arrays_check;

ALTER TABLE fence_outbox RENAME COLUMN collection TO collections;
ALTER TABLE fence_outbox RENAME COLUMN device TO devices;
ALTER TABLE fence_outbox RENAME COLUMN seq TO seqs;
ALTER TABLE fence_outbox RENAME COLUMN type TO types;
ALTER TABLE fence_outbox RENAME COLUMN thing_id TO thing_ids;
ALTER TABLE fence_outbox RENAME COLUMN thing_key TO thing_keys;
ALTER TABLE fence_outbox RENAME COLUMN lat TO lats;
ALTER TABLE fence_outbox RENAME COLUMN lng TO lngs;
ALTER TABLE fence_outbox RENAME COLUMN at TO ats;

ALTER TABLE fence_outbox
    ALTER COLUMN collections DROP NOT NULL, ALTER COLUMN devices DROP NOT NULL,
    ALTER COLUMN seqs DROP NOT NULL, ALTER COLUMN types DROP NOT NULL,
    ALTER COLUMN thing_ids DROP NOT NULL, ALTER COLUMN thing_keys DROP NOT NULL,
    ALTER COLUMN lats DROP NOT NULL, ALTER COLUMN lngs DROP NOT NULL,
    ALTER COLUMN ats DROP NOT NULL,
    ADD COLUMN payload bytea;

-- Written once and read once, as the arrays: stored out of line,
-- uncompressed.
ALTER TABLE fence_outbox ALTER COLUMN payload SET STORAGE EXTERNAL;

-- A row is either form, never both: a payload and no arrays, or the nine
-- arrays of events elements each.
ALTER TABLE fence_outbox ADD CONSTRAINT fence_outbox_events_check CHECK (
    events >= 1 AND (
        payload IS NOT NULL
        AND num_nonnulls(collections, devices, seqs, types, thing_ids, thing_keys, lats, lngs, ats) = 0
        OR payload IS NULL
        AND num_nulls(collections, devices, seqs, types, thing_ids, thing_keys, lats, lngs, ats) = 0
        AND array_ndims(devices) = 1
        AND cardinality(collections) = events AND cardinality(devices) = events
        AND cardinality(seqs) = events AND cardinality(types) = events
        AND cardinality(thing_ids) = events AND cardinality(thing_keys) = events
        AND cardinality(lats) = events AND cardinality(lngs) = events
        AND cardinality(ats) = events
        AND types <@ ARRAY['enter', 'exit']::text[]
    )
);
