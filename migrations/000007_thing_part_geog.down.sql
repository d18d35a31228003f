CREATE INDEX IF NOT EXISTS thing_part_geog_idx ON thing_part USING gist ((ST_Segmentize(geom, 0.1)::geography));

CREATE OR REPLACE FUNCTION thing_part_sync() RETURNS trigger
LANGUAGE plpgsql SET jit = off AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        DELETE FROM thing_part WHERE thing_id = NEW.id;
    END IF;
    INSERT INTO thing_part (thing_id, geom)
    SELECT NEW.id, (ST_Dump(ST_Subdivide(NEW.geom, 128))).geom;
    RETURN NULL;
END;
$$;

DROP TABLE IF EXISTS thing_part_geog;
