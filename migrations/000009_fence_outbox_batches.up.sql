-- Geofencing's outbox holds one row per writing transaction (a batch of
-- positions) instead of one per event (docs/GEOFENCE.md, Throughput): the
-- events' fields become arrays, element i of each array being event i, in
-- publishing order. Writing 6,700 events was 6,700 heap tuples and index
-- entries (COPY, then the relay's read and delete); it is one row now.
--
-- Rows already there become one-event rows with their (xid, id) kept, so
-- that a relay's checkpoint written before the migration still names the
-- right place in the outbox.
ALTER TABLE fence_outbox DROP CONSTRAINT fence_outbox_type_check;

ALTER TABLE fence_outbox
    ALTER COLUMN collection TYPE text[] USING ARRAY[collection],
    ALTER COLUMN device TYPE text[] USING ARRAY[device],
    ALTER COLUMN seq TYPE bigint[] USING ARRAY[seq],
    ALTER COLUMN type TYPE text[] USING ARRAY[type],
    ALTER COLUMN thing_id TYPE bigint[] USING ARRAY[thing_id],
    ALTER COLUMN thing_key TYPE text[] USING ARRAY[thing_key],
    ALTER COLUMN lat TYPE double precision[] USING ARRAY[lat],
    ALTER COLUMN lng TYPE double precision[] USING ARRAY[lng],
    ALTER COLUMN at TYPE timestamptz[] USING ARRAY[at],
    ADD COLUMN events integer NOT NULL DEFAULT 1;

ALTER TABLE fence_outbox ALTER COLUMN events DROP DEFAULT;

-- events is the arrays' common length (at least one event per row).
ALTER TABLE fence_outbox ADD CONSTRAINT fence_outbox_arrays_check CHECK (
    events >= 1
    AND array_ndims(device) = 1
    AND cardinality(collection) = events AND cardinality(device) = events
    AND cardinality(seq) = events AND cardinality(type) = events
    AND cardinality(thing_id) = events AND cardinality(thing_key) = events
    AND cardinality(lat) = events AND cardinality(lng) = events
    AND cardinality(at) = events
    AND type <@ ARRAY['enter', 'exit']::text[]
);

-- A row is written once and read once by the relay: not compressing it
-- (pglz) halves the cost of writing it; it stays out of line (TOAST).
ALTER TABLE fence_outbox
    ALTER COLUMN collection SET STORAGE EXTERNAL, ALTER COLUMN device SET STORAGE EXTERNAL,
    ALTER COLUMN seq SET STORAGE EXTERNAL, ALTER COLUMN type SET STORAGE EXTERNAL,
    ALTER COLUMN thing_id SET STORAGE EXTERNAL, ALTER COLUMN thing_key SET STORAGE EXTERNAL,
    ALTER COLUMN lat SET STORAGE EXTERNAL, ALTER COLUMN lng SET STORAGE EXTERNAL,
    ALTER COLUMN at SET STORAGE EXTERNAL;
