-- Going down merges every collection back into one flat table, where keys
-- are unique across all things. If one key is used in two collections that
-- is impossible without losing a thing: the migration stops with a message
-- naming the key, and the operator deletes or renames one of them first.
DO $$
DECLARE
    dup text;
BEGIN
    SELECT key INTO dup FROM thing WHERE key IS NOT NULL
    GROUP BY key HAVING count(*) > 1 LIMIT 1;
    IF dup IS NOT NULL THEN
        RAISE EXCEPTION 'key % is used in more than one collection; delete one of them before migrating down', dup;
    END IF;
END
$$;

REVOKE INSERT, UPDATE, DELETE ON collection FROM search_writer;
REVOKE SELECT ON collection FROM search_reader;
DROP INDEX IF EXISTS thing_properties_idx;
DROP INDEX IF EXISTS thing_collection_order_idx;
ALTER TABLE thing DROP CONSTRAINT IF EXISTS thing_collection_key_key;
ALTER TABLE thing ADD CONSTRAINT thing_key_key UNIQUE (key);
ALTER TABLE thing DROP COLUMN IF EXISTS written_xact;
ALTER TABLE thing DROP COLUMN IF EXISTS collection;
DROP TABLE IF EXISTS collection;
