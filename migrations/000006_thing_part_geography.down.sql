DROP INDEX IF EXISTS thing_part_geog_idx;
