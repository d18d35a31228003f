-- Parts: each thing's geometry cut by ST_Subdivide into pieces of at most 128
-- vertices. Point-in-polygon on a piece is far cheaper than on a whole
-- country outline, and the GiST index on pieces is far more selective.
--
-- A trigger keeps parts in step with their thing inside the same
-- transaction, whoever writes the thing, so a thing is never without parts.
CREATE TABLE thing_part (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    thing_id bigint NOT NULL REFERENCES thing (id) ON DELETE CASCADE,
    geom     geometry(Polygon, 4326) NOT NULL
);

CREATE INDEX thing_part_geom_idx ON thing_part USING gist (geom);
CREATE INDEX thing_part_thing_id_idx ON thing_part (thing_id);

CREATE FUNCTION thing_part_sync() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        DELETE FROM thing_part WHERE thing_id = NEW.id;
    END IF;
    INSERT INTO thing_part (thing_id, geom)
    SELECT NEW.id, (ST_Dump(ST_Subdivide(NEW.geom, 128))).geom;
    RETURN NULL;
END;
$$;

CREATE TRIGGER thing_part_sync
AFTER INSERT OR UPDATE OF geom ON thing
FOR EACH ROW EXECUTE FUNCTION thing_part_sync();

-- Things stored before this migration get their parts now.
INSERT INTO thing_part (thing_id, geom)
SELECT t.id, (ST_Dump(ST_Subdivide(t.geom, 128))).geom FROM thing t;
