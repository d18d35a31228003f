-- Things: named polygons with free-form properties. Bounding boxes are stored
-- so that results can carry them without reading (and detoasting) the
-- geometry, which is megabytes for a detailed country.
CREATE EXTENSION IF NOT EXISTS postgis;
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE thing (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- key is the importer's own identifier; importing an existing key replaces the thing.
    key         text UNIQUE CHECK (key <> ''),
    name        text NOT NULL CHECK (name <> ''),
    properties  jsonb NOT NULL DEFAULT '{}'::jsonb,
    geom        geometry(MultiPolygon, 4326) NOT NULL CHECK (NOT ST_IsEmpty(geom)),
    min_lng     double precision GENERATED ALWAYS AS (ST_XMin(geom)) STORED,
    min_lat     double precision GENERATED ALWAYS AS (ST_YMin(geom)) STORED,
    max_lng     double precision GENERATED ALWAYS AS (ST_XMax(geom)) STORED,
    max_lat     double precision GENERATED ALWAYS AS (ST_YMax(geom)) STORED,
    imported_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX thing_geom_idx ON thing USING gist (geom);
-- Case-insensitive substring search (ILIKE '%...%').
CREATE INDEX thing_name_trgm_idx ON thing USING gin (name gin_trgm_ops);
-- The result order, byte-wise so that paging is the same on every server.
CREATE INDEX thing_order_idx ON thing ((name COLLATE "C"), id);
