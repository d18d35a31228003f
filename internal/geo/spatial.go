package geo

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/twpayne/go-geom"
	"github.com/twpayne/go-geom/encoding/geojson"
)

// MaxDistanceM caps a nearest search's distance, in metres. 1000 km is
// wider than any "nearest zone" question (a harbour fix a few hundred
// metres off a generalized coastline, the nearest country to a ship) and
// keeps the candidate set, which every page of a nearest search ranks,
// bounded by a region a few countries wide.
const MaxDistanceM = 1_000_000

// MaxAreaVertices is the most positions an area search's geometry may
// have. An area travels with every page request and is checked and cut into
// pieces by the store each time; 100,000 vertices holds the most detailed
// 1:10m country outline.
const MaxAreaVertices = 100_000

// Relation is how a thing relates to a search area (a bbox or an Area).
type Relation int

// The relations; the zero Relation is Intersects.
const (
	// Intersects keeps things sharing at least one point with the area
	// (PostGIS ST_Intersects): touching counts.
	Intersects Relation = iota
	// Within keeps things inside the area (ST_Within(thing, area)): a
	// thing's boundary may touch the area's.
	Within
	// Contains keeps things containing the whole area (ST_Contains(thing,
	// area)).
	Contains
)

func (r Relation) String() string {
	switch r {
	case Intersects:
		return "intersects"
	case Within:
		return "within"
	case Contains:
		return "contains"
	default:
		return fmt.Sprintf("relation(%d)", int(r))
	}
}

// ParseRelation returns the relation named s ("" is Intersects), or an
// Invalid error.
func ParseRelation(s string) (Relation, error) {
	for _, r := range []Relation{Intersects, Within, Contains} {
		if s == r.String() {
			return r, nil
		}
	}
	if s == "" {
		return Intersects, nil
	}
	return 0, Errorf(Invalid, "relation %q is not one of intersects, within, contains", s)
}

// Area is a search area: a WGS 84 Polygon or MultiPolygon whose edges are
// straight in longitude and latitude, as the stored geometries' are. Make
// one with DecodeArea; the zero Area is empty, which Validate refuses.
type Area struct {
	// geoJSON is the area as a GeoJSON MultiPolygon, encoded by DecodeArea
	// from the decoded coordinates: two spellings of the same area (a
	// Polygon and a MultiPolygon of it, other whitespace) share it.
	geoJSON  string
	vertices int
}

// GeoJSON returns the area as a GeoJSON MultiPolygon geometry object.
func (a Area) GeoJSON() string { return a.geoJSON }

// MarshalJSON encodes the area for the page-token fingerprint.
func (a Area) MarshalJSON() ([]byte, error) { return json.Marshal(a.geoJSON) }

// Validate returns an Invalid error for the zero Area. Whether the area is
// a valid polygon in the OGC sense (no self-intersection) is the store's to
// check: it takes a geometry engine.
func (a Area) Validate() error {
	if a.geoJSON == "" {
		return Errorf(Invalid, "area is empty")
	}
	return nil
}

// DecodeArea turns a GeoJSON Polygon or MultiPolygon geometry object into
// an Area. It returns an Invalid error for
// anything else: other types, bad JSON, no polygon, rings of fewer than
// four positions or not closed, non-finite or out-of-range coordinates, or
// more than MaxAreaVertices positions, which are counted before decoding
// so that a huge area is refused without being built. Unlike an import, it
// repairs nothing: a search area is the caller's question, answered as
// asked or refused.
func DecodeArea(raw []byte) (Area, error) {
	if n := countPositions(raw); n > MaxAreaVertices {
		return Area{}, Errorf(Invalid, "area has %d vertices; the limit is %d", n, MaxAreaVertices)
	}
	var g geom.T
	if err := geojson.Unmarshal(raw, &g); err != nil {
		var unsupported geojson.ErrUnsupportedType
		if errors.As(err, &unsupported) {
			return Area{}, Errorf(Invalid, "area type %q is not supported; want Polygon or MultiPolygon", string(unsupported))
		}
		return Area{}, Errorf(Invalid, "area is not valid GeoJSON: %v", err)
	}
	var polygons [][][]geom.Coord
	switch g := g.(type) {
	case nil:
		return Area{}, Errorf(Invalid, "area is missing")
	case *geom.Polygon:
		polygons = [][][]geom.Coord{g.Coords()}
	case *geom.MultiPolygon:
		polygons = g.Coords()
	default:
		return Area{}, Errorf(Invalid, "area type %s is not supported; want Polygon or MultiPolygon", geometryType(g))
	}
	n := 0
	out := make([][][]geom.Coord, 0, len(polygons))
	for pi, rings := range polygons {
		if len(rings) == 0 {
			return Area{}, Errorf(Invalid, "area polygon %d has no ring", pi)
		}
		xyRings := make([][]geom.Coord, len(rings))
		for ri, ring := range rings {
			if len(ring) < 4 {
				return Area{}, Errorf(Invalid, "area polygon %d ring %d has %d positions; a ring needs at least 4", pi, ri, len(ring))
			}
			xy := make([]geom.Coord, len(ring))
			for ci, c := range ring {
				if err := checkPosition(c); err != nil {
					return Area{}, Errorf(Invalid, "area polygon %d ring %d position %d: %v", pi, ri, ci, err)
				}
				xy[ci] = geom.Coord{c[0], c[1]}
			}
			if !xy[0].Equal(geom.XY, xy[len(xy)-1]) {
				return Area{}, Errorf(Invalid, "area polygon %d ring %d is not closed: its last position must equal its first", pi, ri)
			}
			n += len(xy)
			xyRings[ri] = xy
		}
		out = append(out, xyRings)
	}
	if len(out) == 0 {
		return Area{}, Errorf(Invalid, "area is empty")
	}
	if n > MaxAreaVertices {
		return Area{}, Errorf(Invalid, "area has %d vertices; the limit is %d", n, MaxAreaVertices)
	}
	if _, err := unwrapAntimeridian(out); err != nil {
		return Area{}, Errorf(Invalid, "area %v", err)
	}
	mp, err := geom.NewMultiPolygon(geom.XY).SetCoords(out)
	if err != nil {
		return Area{}, Errorf(Invalid, "area: %v", err)
	}
	b, err := geojson.Marshal(mp)
	if err != nil {
		return Area{}, Errorf(Invalid, "area: %v", err)
	}
	return Area{geoJSON: string(b), vertices: n}, nil
}

// validateDistance checks a nearest search's distance.
func validateDistance(d float64, hasPoint bool) error {
	switch {
	case math.IsNaN(d) || math.IsInf(d, 0):
		return Errorf(Invalid, "max_distance_m must be a finite number, got %v", d)
	case d < 0:
		return Errorf(Invalid, "max_distance_m must not be negative, got %v", d)
	case d > MaxDistanceM:
		return Errorf(Invalid, "max_distance_m is %v; the limit is %d (1000 km)", d, MaxDistanceM)
	case d > 0 && !hasPoint:
		return Errorf(Invalid, "max_distance_m needs a point to measure from")
	}
	return nil
}
