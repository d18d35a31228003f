-- Nearest searches measure distances on the WGS 84 spheroid (geography)
-- after segmentizing edges to at most 0.1 degree (see 000006: stored edges
-- are straight in longitude and latitude, geography's are geodesics).
-- Segmentizing the parts on the fly made a search pay for its candidates'
-- long edges every time: one part of Antarctica or Russia becomes 7,000
-- vertices, about 20 ms of ST_Distance per query. The geography pieces are
-- now computed once, when a thing is written: the thing segmentized, cut
-- by ST_Subdivide into pieces of at most 256 vertices, and each piece
-- segmentized again (a cut is a straight line in longitude and latitude
-- too, and may be long). Nearest searches find the pieces within the
-- distance through their GiST index and measure each (a few hundred
-- vertices at most); containment (distance 0) still uses thing_part.
CREATE TABLE thing_part_geog (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    thing_id bigint NOT NULL REFERENCES thing (id) ON DELETE CASCADE,
    geog     geography(Polygon, 4326) NOT NULL
);

CREATE INDEX thing_part_geog_geog_idx ON thing_part_geog USING gist (geog);
CREATE INDEX thing_part_geog_thing_id_idx ON thing_part_geog (thing_id);

-- As thing_part (000004): readers search it, the trigger writes it as the
-- writer.
GRANT SELECT ON thing_part_geog TO search_reader;
GRANT INSERT, UPDATE, DELETE ON thing_part_geog TO search_writer;

-- The trigger of 000002 writes both tables, in the statement that writes
-- the thing. (CREATE OR REPLACE resets the function's settings: jit stays
-- off as in 000003.)
CREATE OR REPLACE FUNCTION thing_part_sync() RETURNS trigger
LANGUAGE plpgsql SET jit = off AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        DELETE FROM thing_part WHERE thing_id = NEW.id;
        DELETE FROM thing_part_geog WHERE thing_id = NEW.id;
    END IF;
    INSERT INTO thing_part (thing_id, geom)
    SELECT NEW.id, (ST_Dump(ST_Subdivide(NEW.geom, 128))).geom;
    INSERT INTO thing_part_geog (thing_id, geog)
    SELECT NEW.id, ST_Segmentize((ST_Dump(ST_Subdivide(ST_Segmentize(NEW.geom, 0.1), 256))).geom, 0.1)::geography;
    RETURN NULL;
END;
$$;

-- Things stored before this migration get their pieces now.
INSERT INTO thing_part_geog (thing_id, geog)
SELECT t.id, ST_Segmentize((ST_Dump(ST_Subdivide(ST_Segmentize(t.geom, 0.1), 256))).geom, 0.1)::geography
FROM thing t;

-- Nothing reads the parts' geography expression index any more.
DROP INDEX IF EXISTS thing_part_geog_idx;
