-- The roles stay: they belong to the cluster, and other databases may use
-- them. Only this database's grants go.
REVOKE INSERT, UPDATE, DELETE ON thing, thing_part FROM search_writer;
REVOKE SELECT ON thing, thing_part FROM search_reader;
REVOKE USAGE ON SCHEMA public FROM search_reader;
