-- Back to one outbox row per event. Only one-event rows convert (their
-- (xid, id) kept); a batch row would need new ids in the relay's order, so
-- the migration refuses while any is left: stop the positions consumers
-- and the Track streams, let the relay empty the outbox, then migrate down.
DO $$
BEGIN
    IF EXISTS (SELECT FROM fence_outbox WHERE events <> 1) THEN
        RAISE EXCEPTION 'fence_outbox holds batches of events not yet relayed: let the relay empty it first';
    END IF;
END
$$;

ALTER TABLE fence_outbox DROP CONSTRAINT fence_outbox_arrays_check;

ALTER TABLE fence_outbox
    DROP COLUMN events,
    ALTER COLUMN collection TYPE text USING collection[1],
    ALTER COLUMN device TYPE text USING device[1],
    ALTER COLUMN seq TYPE bigint USING seq[1],
    ALTER COLUMN type TYPE text USING type[1],
    ALTER COLUMN thing_id TYPE bigint USING thing_id[1],
    ALTER COLUMN thing_key TYPE text USING thing_key[1],
    ALTER COLUMN lat TYPE double precision USING lat[1],
    ALTER COLUMN lng TYPE double precision USING lng[1],
    ALTER COLUMN at TYPE timestamptz USING at[1];

ALTER TABLE fence_outbox ADD CONSTRAINT fence_outbox_type_check CHECK (type IN ('enter', 'exit'));
