DROP TRIGGER IF EXISTS thing_part_sync ON thing;
DROP FUNCTION IF EXISTS thing_part_sync();
DROP TABLE IF EXISTS thing_part;
