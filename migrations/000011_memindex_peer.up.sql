-- The live in-memory indexes (docs/INDEX.md, "Consistency: the lease"):
-- one row per search-server instance whose index is on and following the
-- database, upserted on the primary after each of its refreshes and at
-- least every third of its lease. position is the WAL position read
-- before the snapshot of the set the instance serves (on a standby, the
-- position replayed); expires is when its lease ends by the database's
-- clock (heartbeat plus the instance's MEMINDEX_LEASE). A write returns
-- once every row not expired is past the write's position, or has expired.
-- An instance deletes its row when it shuts down or turns its index off;
-- a row left by an instance that died only expires.
CREATE TABLE memindex_peer (
    id uuid PRIMARY KEY,
    position pg_lsn NOT NULL,
    heartbeat timestamptz NOT NULL,
    expires timestamptz NOT NULL,
    CHECK (expires > heartbeat)
);

-- Every instance writes its own row through the writing pool (the primary),
-- and every writer reads the table there.
GRANT SELECT ON memindex_peer TO search_reader;
GRANT INSERT, UPDATE, DELETE ON memindex_peer TO search_writer;
