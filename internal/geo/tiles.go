package geo

import (
	"context"
	"math"
	"time"
)

// Vector tiles: a collection's things cut to one tile of the Web Mercator
// quad tree (OGC's WebMercatorQuad tile matrix set, the XYZ scheme of web
// maps) and encoded as a Mapbox Vector Tile, one layer named after the
// collection.

// Limits of a tile request.
const (
	// MaxTileZoom is the deepest zoom level served: at 24 a tile is about
	// 2 m across, far below the detail of any stored polygon.
	MaxTileZoom = 24
	// TileExtent is the size of a tile in MVT coordinate units.
	TileExtent = 4096
	// TileBuffer is how far, in MVT units, geometries run past the tile's
	// edge, so that outlines drawn across tiles join without seams.
	TileBuffer = 64
	// MaxTileAttributes is the most properties a tile request may copy
	// into each feature's attributes.
	MaxTileAttributes = 32
)

// TileQuery asks for one vector tile of a collection.
type TileQuery struct {
	Collection string
	// Z, X and Y name the tile: zoom, column (west to east) and row
	// (north to south).
	Z, X, Y int
	// Properties keeps the things whose properties match, as
	// Filter.Properties does.
	Properties []PropertyFilter
	// Attributes are the top-level properties copied into each feature's
	// attributes beside its name; a thing without one has no such
	// attribute.
	Attributes []string
	// MaxBytes bounds the encoded tile (> 0): a tile that would be larger
	// is drawn with coarser outlines, then with fewer things (the largest
	// kept), until it fits.
	MaxBytes int
	// OverviewThings, when positive, makes a tile that meets more things
	// than this an overview: the things too small to show at the zoom are
	// drawn as counts per cell of a grid over the tile, the others as
	// themselves. 0: every thing is drawn as itself.
	OverviewThings int
}

// Validate returns an Invalid error for a tile outside the matrix set, a
// bad collection name, bad property filters or attributes, or no byte
// bound.
func (q TileQuery) Validate() error {
	if err := ValidateCollectionName(q.Collection); err != nil {
		return err
	}
	if q.Z < 0 || q.Z > MaxTileZoom {
		return Errorf(Invalid, "tile matrix (zoom) must be within [0, %d], got %d", MaxTileZoom, q.Z)
	}
	n := 1 << q.Z
	if q.X < 0 || q.X >= n || q.Y < 0 || q.Y >= n {
		return Errorf(Invalid, "tile row and column must be within [0, %d] at zoom %d, got row %d, column %d", n-1, q.Z, q.Y, q.X)
	}
	if q.MaxBytes <= 0 {
		return Errorf(Invalid, "a tile needs a byte bound")
	}
	if q.OverviewThings < 0 {
		return Errorf(Invalid, "a tile's overview threshold must not be negative, got %d", q.OverviewThings)
	}
	if len(q.Attributes) > MaxTileAttributes {
		return Errorf(Invalid, "a tile may carry at most %d properties, got %d", MaxTileAttributes, len(q.Attributes))
	}
	for _, a := range q.Attributes {
		if err := validateText("property", a, MaxPropertyKeyLength); err != nil {
			return err
		}
		if a == "" {
			return Errorf(Invalid, "a property name must not be empty")
		}
	}
	return validateProperties(q.Properties)
}

// TileTolerance is the simplification tolerance of a tile, in degrees: a
// little under one MVT unit at the tile's edge nearest a pole, where Web
// Mercator stretches degrees most, so that simplifying changes nothing
// that the tile's grid could show.
func (q TileQuery) TileTolerance() float64 {
	unit := 360 / math.Exp2(float64(q.Z)) / TileExtent
	north, south := tileLat(float64(q.Y), q.Z), tileLat(float64(q.Y+1), q.Z)
	poleward := max(math.Abs(north), math.Abs(south))
	return unit * math.Cos(poleward*math.Pi/180) / 2
}

// MaxMercatorLat is the latitude of Web Mercator's north edge (its south
// edge is the opposite): the square world of the tile matrix set.
const MaxMercatorLat = 85.0511287798066

// Bounds returns the tile grown by TileBuffer on every side, in degrees:
// the box its things are cut to before they are projected. Longitude is
// linear in Web Mercator's x, so the box's edges are the tile's. At the
// first and last columns the box runs past -180 or +180 (by the buffer):
// it never wraps round to the other side of the world, which would leave
// the tile's own stretch of longitudes out. Latitudes stop at
// ±MaxMercatorLat, beyond which Web Mercator draws nothing (and the poles
// cannot be projected).
func (q TileQuery) Bounds() (west, south, east, north float64) {
	n := math.Exp2(float64(q.Z))
	m := float64(TileBuffer) / TileExtent
	west = -180 + 360*(float64(q.X)-m)/n
	east = -180 + 360*(float64(q.X)+1+m)/n
	north = min(tileLat(float64(q.Y)-m, q.Z), MaxMercatorLat)
	south = max(tileLat(float64(q.Y)+1+m, q.Z), -MaxMercatorLat)
	return west, south, east, north
}

// tileLat is the latitude of the north edge of tile row y (or of a
// fraction of a row) at zoom z.
func tileLat(y float64, z int) float64 {
	n := math.Pi - 2*math.Pi*y/math.Exp2(float64(z))
	return 180 / math.Pi * math.Atan(math.Sinh(n))
}

// Tile is an encoded vector tile.
type Tile struct {
	// MVT is the Mapbox Vector Tile; empty when no thing meets the tile.
	MVT []byte
	// Reduced says the tile was drawn coarser than its zoom asks, or
	// without some things, to fit its byte bound, or as an overview
	// (TileQuery.OverviewThings).
	Reduced bool
}

// TileSource draws vector tiles. It is apart from SearchService because
// only the HTTP API serves tiles.
type TileSource interface {
	// Tile draws one tile of q.Collection's things. A collection that
	// does not exist has no things: its tiles are empty. Returns Invalid
	// for a bad query.
	Tile(ctx context.Context, q TileQuery) (Tile, error)
	// CollectionVersion returns when collection last changed (an import,
	// a delete), which names a version of its tiles: cached tiles of an
	// older version are stale. Returns NotFound when there is no such
	// collection.
	CollectionVersion(ctx context.Context, collection string) (time.Time, error)
}
