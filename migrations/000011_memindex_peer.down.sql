-- Without the table, writers wait for no instance's index: run the
-- instances with MEMINDEX=off (or a version without the lease) first.
DROP TABLE memindex_peer;
