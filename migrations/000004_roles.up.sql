-- Least privilege: two group roles, which login roles join.
--
--   search_reader  may read things and parts: the role of DATABASE_URL, which
--                  serves Search, SearchStream and Monitor.
--   search_writer  may also insert, update and delete them: the role of
--                  DATABASE_WRITE_URL, which serves Import.
--
-- Neither may change the schema: migrations run as the tables' owner. An
-- operator makes login roles, e.g.
--   CREATE ROLE search_app LOGIN PASSWORD '...' IN ROLE search_reader;
-- The roles belong to the whole PostgreSQL cluster. Creating them needs
-- CREATEROLE; a DBA can create them beforehand instead, and this migration
-- then only grants.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'search_reader') THEN
        CREATE ROLE search_reader NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL; -- created concurrently, by a migration of another database
END
$$;

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'search_writer') THEN
        CREATE ROLE search_writer NOLOGIN IN ROLE search_reader;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;

GRANT USAGE ON SCHEMA public TO search_reader;
GRANT SELECT ON thing, thing_part TO search_reader;
-- The thing_part_sync trigger runs as the writer, so it writes parts too.
GRANT INSERT, UPDATE, DELETE ON thing, thing_part TO search_writer;
