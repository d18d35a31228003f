-- Back to the arrays only. A payload row cannot be turned into arrays
-- here, so the migration refuses while any is left: stop the positions
-- consumers and the Track streams, let the relay empty the outbox, then
-- migrate down.
DO $$
BEGIN
    IF EXISTS (SELECT FROM fence_outbox WHERE payload IS NOT NULL) THEN
        RAISE EXCEPTION 'fence_outbox holds payload rows not yet relayed: let the relay empty it first';
    END IF;
END
$$;

ALTER TABLE fence_outbox DROP CONSTRAINT fence_outbox_events_check;

ALTER TABLE fence_outbox
    DROP COLUMN payload,
    ALTER COLUMN collections SET NOT NULL, ALTER COLUMN devices SET NOT NULL,
    ALTER COLUMN seqs SET NOT NULL, ALTER COLUMN types SET NOT NULL,
    ALTER COLUMN thing_ids SET NOT NULL, ALTER COLUMN thing_keys SET NOT NULL,
    ALTER COLUMN lats SET NOT NULL, ALTER COLUMN lngs SET NOT NULL,
    ALTER COLUMN ats SET NOT NULL;

ALTER TABLE fence_outbox RENAME COLUMN collections TO collection;
ALTER TABLE fence_outbox RENAME COLUMN devices TO device;
ALTER TABLE fence_outbox RENAME COLUMN seqs TO seq;
ALTER TABLE fence_outbox RENAME COLUMN types TO type;
ALTER TABLE fence_outbox RENAME COLUMN thing_ids TO thing_id;
ALTER TABLE fence_outbox RENAME COLUMN thing_keys TO thing_key;
ALTER TABLE fence_outbox RENAME COLUMN lats TO lat;
ALTER TABLE fence_outbox RENAME COLUMN lngs TO lng;
ALTER TABLE fence_outbox RENAME COLUMN ats TO at;

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
