-- Collections: every thing belongs to exactly one collection (a layer, such
-- as countries or postal zones), named by the importer. Things stored before
-- collections existed go to "default", which is also where an import that
-- names no collection goes, so old clients keep working unchanged.
--
-- The name rule (also checked by the service, with a clearer message): 1 to
-- 64 characters of lower-case ASCII letters, digits, "_" and "-", starting
-- with a letter or a digit.
--
-- A row of collection exists from the first import into it until the whole
-- collection is deleted; updated_at is when it last changed (an import, a
-- replace, a delete of some of its things). Its count and bounding box are
-- aggregated from thing on demand, so that writers do not all update one
-- counter row.
CREATE TABLE collection (
    name       text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- "default" always exists (it may be deleted, and the next import into it
-- makes it again), dated by the things it receives.
INSERT INTO collection (name, created_at, updated_at)
SELECT 'default', coalesce(min(imported_at), now()), coalesce(max(imported_at), now()) FROM thing;

ALTER TABLE thing ADD COLUMN collection text NOT NULL DEFAULT 'default'
    REFERENCES collection (name) ON DELETE CASCADE;

-- Keys are unique within a collection, no longer across all things. The
-- unique index also finds a collection's things (its leading column).
ALTER TABLE thing DROP CONSTRAINT thing_key_key;
ALTER TABLE thing ADD CONSTRAINT thing_collection_key_key UNIQUE (collection, key);

-- A search scoped to one collection, by name or with no other filter, reads
-- this index in result order.
CREATE INDEX thing_collection_order_idx ON thing (collection, (name COLLATE "C"), id);

-- Property filters are jsonb containment (properties @> '{"k": v}'), which
-- this index serves.
CREATE INDEX thing_properties_idx ON thing USING gin (properties jsonb_path_ops);

GRANT SELECT ON collection TO search_reader;
GRANT INSERT, UPDATE, DELETE ON collection TO search_writer;

-- written_xact is the transaction that last wrote the thing
-- (pg_current_xact_id() is the top-level transaction's id, also inside the
-- savepoints an import uses, and is never reused). A replace import deletes
-- the things of its collection that it did not write itself.
ALTER TABLE thing ADD COLUMN written_xact xid8;
