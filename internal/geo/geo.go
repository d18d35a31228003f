// Package geo is the domain of the search service: things (named polygons),
// the queries that find them, imports that store them, and the errors these
// return. It knows nothing of gRPC or PostgreSQL.
package geo

import (
	"context"
	"fmt"
	"math"

	"github.com/twpayne/go-geom"
)

// MaxQueryLength is the longest name query accepted, in characters.
const MaxQueryLength = 256

// Point is a WGS 84 position in degrees.
type Point struct {
	Lat, Lng float64
}

// Validate reports whether p is a finite position on the globe.
// It returns an Invalid error otherwise.
func (p Point) Validate() error {
	switch {
	case math.IsNaN(p.Lat) || math.IsInf(p.Lat, 0):
		return Errorf(Invalid, "point.lat must be a finite number, got %v", p.Lat)
	case math.IsNaN(p.Lng) || math.IsInf(p.Lng, 0):
		return Errorf(Invalid, "point.lng must be a finite number, got %v", p.Lng)
	case p.Lat < -90 || p.Lat > 90:
		return Errorf(Invalid, "point.lat must be within [-90, 90], got %v", p.Lat)
	case p.Lng < -180 || p.Lng > 180:
		return Errorf(Invalid, "point.lng must be within [-180, 180], got %v", p.Lng)
	}
	return nil
}

// Filter selects things. Its parts combine with AND; the zero Filter
// selects every thing (a transport may ask for more, as gRPC's Search does).
type Filter struct {
	// Query matches names case-insensitively as a literal substring.
	Query string
	// Point, when not nil, keeps things whose geometry contains it.
	Point *Point
	// BBox, when not nil, keeps things whose geometry intersects it. A box
	// whose MinLng is greater than its MaxLng crosses the antimeridian.
	BBox *BBox
}

// Validate returns an Invalid error when f is malformed.
func (f Filter) Validate() error {
	if err := validateText("query", f.Query, MaxQueryLength); err != nil {
		return err
	}
	if f.Point != nil {
		if err := f.Point.Validate(); err != nil {
			return err
		}
	}
	if f.BBox != nil {
		if f.Point != nil {
			return Errorf(Invalid, "a search takes a point or a bbox, not both")
		}
		return f.BBox.Validate()
	}
	return nil
}

// Cursor is a position in the result order (name, then id): a page starts
// after it.
type Cursor struct {
	Name string
	ID   int64
}

// Query is one page request.
type Query struct {
	Filter
	// Limit is the page size, already bounded by the caller (> 0).
	Limit int
	// After, when not nil, starts the page after this position.
	After *Cursor
	// IncludeGeometry asks for each thing's geometry as GeoJSON.
	IncludeGeometry bool
	// MaxBytes, when positive, ends the page early, with Next set, once its
	// things hold this many bytes as the store sends them (at least one
	// thing is returned): a page of large geometries stays within a memory
	// budget whatever Limit says.
	MaxBytes int
}

// BBox is a WGS 84 bounding box. As a filter, MinLng > MaxLng means the box
// crosses the antimeridian: it spans MinLng to 180 and -180 to MaxLng.
type BBox struct {
	MinLng, MinLat, MaxLng, MaxLat float64
}

// Validate returns an Invalid error unless b's corners are finite, on the
// globe, and its south edge is not north of its north edge.
func (b BBox) Validate() error {
	for _, c := range []struct {
		name     string
		v, limit float64
	}{{"min lng", b.MinLng, 180}, {"min lat", b.MinLat, 90}, {"max lng", b.MaxLng, 180}, {"max lat", b.MaxLat, 90}} {
		if math.IsNaN(c.v) || math.IsInf(c.v, 0) {
			return Errorf(Invalid, "bbox %s must be a finite number, got %v", c.name, c.v)
		}
		if c.v < -c.limit || c.v > c.limit {
			return Errorf(Invalid, "bbox %s must be within [%g, %g], got %v", c.name, -c.limit, c.limit, c.v)
		}
	}
	if b.MinLat > b.MaxLat {
		return Errorf(Invalid, "bbox min lat (%v) must not be greater than max lat (%v)", b.MinLat, b.MaxLat)
	}
	return nil
}

// Thing is a stored named polygon.
type Thing struct {
	ID         int64
	Key        string
	Name       string
	Properties map[string]any
	BBox       BBox
	// GeometryGeoJSON is set only when the query asked for it.
	GeometryGeoJSON string
}

// Page is one page of things in result order. Next is nil on the last page.
type Page struct {
	Things []Thing
	Next   *Cursor
}

// Feature is a validated feature ready to be stored.
type Feature struct {
	// Index is the feature's position in its import, for reporting.
	Index      int
	Key        string
	Name       string
	Properties map[string]any
	Geometry   *geom.MultiPolygon
	// Repairs lists what decoding fixed in the geometry; empty if nothing.
	Repairs []string
}

// Problem says what happened to one feature of an import.
type Problem struct {
	Index  int
	Name   string
	Reason string
}

// ImportResult summarizes an import.
type ImportResult struct {
	Imported int
	Repaired int
	Rejected []Problem
	Repairs  []Problem
}

// FeatureSource yields the features of an import in order.
type FeatureSource interface {
	// Next returns the next feature, or io.EOF after the last one. Any other
	// error aborts the import.
	Next(ctx context.Context) (Feature, error)
}

// Stats describes the store.
type Stats struct {
	Things int64
	Parts  int64
}

// SearchService stores and finds things.
type SearchService interface {
	// Search returns one page of things matching q.Filter in (name, id)
	// order. Returns Invalid for a bad query, Unavailable or Timeout when the
	// store does not answer, Internal otherwise.
	Search(ctx context.Context, q Query) (Page, error)
	// Import stores every feature src yields, all or nothing: the import is
	// committed only when src returns io.EOF. Features the store cannot accept
	// are reported in the result, not as an error. Returns Unavailable or
	// Timeout when the store does not answer, the source's error if it fails.
	Import(ctx context.Context, src FeatureSource) (ImportResult, error)
	// Get returns the thing with id, with its geometry when includeGeometry.
	// Returns NotFound when there is none, Unavailable or Timeout when the
	// store does not answer.
	Get(ctx context.Context, id int64, includeGeometry bool) (Thing, error)
	// Stats counts stored things and parts. Returns Unavailable when the
	// store does not answer.
	Stats(ctx context.Context) (Stats, error)
	// Ping reports whether the store answers; nil means ready to serve.
	Ping(ctx context.Context) error
}

// String renders p for logs.
func (p Point) String() string { return fmt.Sprintf("(%g, %g)", p.Lat, p.Lng) }
