-- The extensions stay: other schemas in the database may use them.
DROP TABLE IF EXISTS thing;
