// Package geo is the domain of the search service: things (named polygons),
// the queries that find them, imports that store them, and the errors these
// return. It knows nothing of gRPC or PostgreSQL.
package geo

import (
	"context"
	"fmt"
	"math"
	"regexp"
	"strings"
	"time"

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

// Filter selects things. Its parts combine with AND; at least one of Query,
// Point, BBox, Collections and Properties is set.
//
// Every field of Filter must be validated by Validate, included in
// Canonical (which the page-token fingerprint hashes whole) and turned into
// SQL by the store: geotest.FilterFields lists each field with an example,
// and the tests of geo, grpcapi and postgis fail for a field it lacks.
type Filter struct {
	// Query matches names case-insensitively as a literal substring.
	Query string
	// Point, when not nil, keeps things whose geometry contains it.
	Point *Point
	// MaxDistanceM, when positive (Point must be set), makes the point
	// search a nearest search: things containing Point (distance 0) and
	// things within this many metres of it on the WGS 84 spheroid, each
	// with Thing.DistanceM, in (distance, name, id) order. At most
	// MaxDistanceM.
	MaxDistanceM float64
	// BBox, when not nil, keeps things related to it by Relation. A box
	// whose MinLng is greater than its MaxLng crosses the antimeridian.
	BBox *BBox
	// Area, when not nil, keeps things related to it by Relation. At most
	// one of Point, BBox and Area is set.
	Area *Area
	// Relation is how things relate to BBox or Area; anything but
	// Intersects needs one of them.
	Relation Relation
	// Collections, when not empty, keeps things of these collections only;
	// empty means every collection.
	Collections []string
	// Properties keeps things whose top-level properties match every filter
	// (AND); each filter matches one of its values (IN).
	Properties []PropertyFilter
	// Where, when not nil, keeps things that satisfy it (a CQL2 filter,
	// expr.go).
	Where *Expr
}

// PropertyFilter matches things whose top-level property Key equals one of
// Values. A value is a string, a float64 or a bool, and equality is JSON's:
// the string "1" does not equal the number 1.
type PropertyFilter struct {
	Key    string
	Values []any
}

// Limits of a filter's collections and property filters.
const (
	MaxFilterCollections   = 100  // collections named in one search
	MaxPropertyFilters     = 16   // properties filtered in one search
	MaxPropertyValues      = 100  // values of all property filters of one search
	MaxPropertyKeyLength   = 256  // characters of a property filter's key
	MaxPropertyValueLength = 1000 // characters of one string value
)

// Validate returns an Invalid error when f selects nothing or is malformed.
func (f Filter) Validate() error { return f.validate(f.Point != nil) }

// validate is Validate for a search with a point (point) or without; the
// point itself, when f has one, is validated too.
func (f Filter) validate(point bool) error {
	if f.Query == "" && !point && f.BBox == nil && f.Area == nil && len(f.Collections) == 0 && len(f.Properties) == 0 && f.Where == nil {
		return Errorf(Invalid, "a search needs a query, a point, a collection or a property filter")
	}
	if err := validateText("query", f.Query, MaxQueryLength); err != nil {
		return err
	}
	if f.Point != nil {
		if err := f.Point.Validate(); err != nil {
			return err
		}
	}
	if err := validateDistance(f.MaxDistanceM, point); err != nil {
		return err
	}
	if f.BBox != nil {
		if point {
			return Errorf(Invalid, "a search takes a point or a bbox, not both")
		}
		if err := f.BBox.Validate(); err != nil {
			return err
		}
	}
	if f.Area != nil {
		if point || f.BBox != nil {
			return Errorf(Invalid, "a search takes one of a point, a bbox and an area, not several")
		}
		if err := f.Area.Validate(); err != nil {
			return err
		}
	}
	switch {
	case f.Relation < Intersects || f.Relation > Contains:
		return Errorf(Invalid, "unknown relation %d", int(f.Relation))
	case f.Relation != Intersects && f.BBox == nil && f.Area == nil:
		return Errorf(Invalid, "relation %s needs a bbox or an area", f.Relation)
	}
	if len(f.Collections) > MaxFilterCollections {
		return Errorf(Invalid, "a search may name at most %d collections, got %d", MaxFilterCollections, len(f.Collections))
	}
	for _, c := range f.Collections {
		if err := ValidateCollectionName(c); err != nil {
			return err
		}
	}
	if f.Where != nil {
		if err := f.Where.Validate(); err != nil {
			return err
		}
	}
	return validateProperties(f.Properties)
}

func validateProperties(pfs []PropertyFilter) error {
	if len(pfs) > MaxPropertyFilters {
		return Errorf(Invalid, "a search may filter at most %d properties, got %d", MaxPropertyFilters, len(pfs))
	}
	seen := make(map[string]bool, len(pfs))
	values := 0
	for _, pf := range pfs {
		switch {
		case pf.Key == "":
			return Errorf(Invalid, "a property filter needs a key")
		case strings.ContainsRune(pf.Key, '.'):
			return Errorf(Invalid, "property filter key %q is a nested path; only top-level properties can be filtered", pf.Key)
		case seen[pf.Key]:
			return Errorf(Invalid, "property %q is filtered twice; give one filter several values to match any of them", pf.Key)
		case len(pf.Values) == 0:
			return Errorf(Invalid, "property filter %q needs at least one value", pf.Key)
		}
		seen[pf.Key] = true
		if err := validateText("property filter key", pf.Key, MaxPropertyKeyLength); err != nil {
			return err
		}
		values += len(pf.Values)
		if values > MaxPropertyValues {
			return Errorf(Invalid, "property filters may have at most %d values in all", MaxPropertyValues)
		}
		for i, v := range pf.Values {
			switch v := v.(type) {
			case string:
				if err := validateText(fmt.Sprintf("property filter %q value %d", pf.Key, i), v, MaxPropertyValueLength); err != nil {
					return err
				}
			case float64:
				if math.IsNaN(v) || math.IsInf(v, 0) {
					return Errorf(Invalid, "property filter %q value %d must be a finite number", pf.Key, i)
				}
			case bool:
			default:
				return Errorf(Invalid, "property filter %q value %d is %s; only strings, numbers and booleans can be matched", pf.Key, i, jsonKind(v))
			}
		}
	}
	return nil
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	default:
		return fmt.Sprintf("of type %T", v)
	}
}

// Cursor is a position in the result order (name, then id; distance, name,
// then id for a nearest search; the sort keys' values, then id, for a
// sorted one): a page starts after it.
type Cursor struct {
	// DistanceM is the distance of the last thing of a nearest search's
	// page; 0 for other searches.
	DistanceM float64
	Name      string
	ID        int64
	// Sort holds the last thing's values of the query's sort keys, one per
	// key, when the query is sorted (Query.SortBy); Name is then unused.
	Sort []SortValue
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
	// Output says what of each thing is read; the zero Output reads every
	// field (the geometry as IncludeGeometry says).
	Output
	// WithTotal asks for Page.Total, a count of every thing Filter selects,
	// read from the same snapshot as the page; without it nothing is
	// counted.
	WithTotal bool
	// SortBy, when not empty, orders the page by these properties, then by
	// id (SortKey), instead of by name and id. Not with a nearest search.
	SortBy []SortKey
}

// LocateQuery is a batch of points sharing one scope (see
// SearchService.Locate).
type LocateQuery struct {
	// Filter scopes every point; its Point is ignored.
	Filter
	Points []Point
	// Limit is the most things per point, already bounded (> 0).
	Limit           int
	IncludeGeometry bool
	// Output says what of each thing is read, as Query's.
	Output
	// MaxBytes, when positive, lets Locate answer only the first points:
	// once the answers read reach about MaxBytes, it stops at the end of
	// the point being read and returns fewer results than points, at least
	// one. LocateEach asks again for the rest.
	MaxBytes int
}

// Fields is a set of the fields of a Thing that a query may leave out.
// ID and Name are always read: the result order and page cursors need them.
type Fields uint8

// The fields a query may leave out (Output.Omit).
const (
	FieldKey Fields = 1 << iota
	FieldCollection
	FieldProperties
	FieldBBox
)

// Limits of Output's geometry settings.
const (
	MaxSimplifyTolerance = 180 // degrees
	MaxCoordinateDigits  = 15  // decimal digits (PostGIS ST_AsGeoJSON)
	// DefaultCoordinateDigits is the digits of a geometry when
	// Output.CoordinateDigits is nil (ST_AsGeoJSON's default).
	DefaultCoordinateDigits = 9
)

// Output says what a query returns of each thing beyond its id and name.
// The zero Output is the default: every field, and the geometry (when the
// query includes it) as stored, with 9 decimal digits.
type Output struct {
	// Omit leaves these fields out: the store neither reads nor sends
	// them, and they are zero in the things returned.
	Omit Fields
	// SimplifyTolerance, when positive, simplifies a returned geometry
	// (PostGIS ST_SimplifyPreserveTopology) with this tolerance, in
	// degrees, the unit of the stored coordinates.
	SimplifyTolerance float64
	// CoordinateDigits, when not nil, is the number of decimal digits of a
	// returned geometry's coordinates, 0 to MaxCoordinateDigits; nil is
	// DefaultCoordinateDigits.
	CoordinateDigits *int
}

// Validate returns an Invalid error for a tolerance that is negative, not
// finite or above MaxSimplifyTolerance, or digits outside [0, 15].
func (o Output) Validate() error {
	if t := o.SimplifyTolerance; math.IsNaN(t) || t < 0 || t > MaxSimplifyTolerance {
		return Errorf(Invalid, "simplify_tolerance must be within [0, %d] degrees, got %v", MaxSimplifyTolerance, t)
	}
	if d := o.CoordinateDigits; d != nil && (*d < 0 || *d > MaxCoordinateDigits) {
		return Errorf(Invalid, "coordinate_precision must be within [0, %d] decimal digits, got %d", MaxCoordinateDigits, *d)
	}
	return nil
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
	ID int64
	// Collection is the collection the thing belongs to.
	Collection string
	// Key is the importer's identifier, unique within the collection; "" if
	// none was given.
	Key        string
	Name       string
	Properties map[string]any
	BBox       BBox
	// GeometryGeoJSON is set only when the query asked for it.
	GeometryGeoJSON string
	// DistanceM is set only by a nearest search (Filter.MaxDistanceM): the
	// distance in metres from the point to the thing on the WGS 84
	// spheroid, 0 when the thing contains the point.
	DistanceM *float64
	// Encodings, when not nil, keeps the encodings an edge makes of this
	// version of the thing, for the next answer that holds it: a store
	// that keeps things in memory gives each record one, so that a thing
	// found by many requests is encoded once. nil: encode per answer.
	Encodings *Encodings
}

// Page is one page of things in result order. Next is nil on the last page.
type Page struct {
	Things []Thing
	Next   *Cursor
	// Total is the number of things the query's filter selects across all
	// pages, when the query asked for it (WithTotal); 0 otherwise.
	Total int64
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

// DefaultCollection holds the things imported without a collection, and
// every thing stored before collections existed.
const DefaultCollection = "default"

// MaxCollectionLength is the longest collection name, in characters.
const MaxCollectionLength = 64

var collectionName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// ValidateCollectionName returns an Invalid error unless name is 1 to 64
// lower-case ASCII letters, digits, "_" and "-", starting with a letter or a
// digit. The rule keeps names safe in URLs, file names and shell scripts,
// and unambiguous: "Countries" and "countries" cannot both exist.
func ValidateCollectionName(name string) error {
	switch {
	case name == "":
		return Errorf(Invalid, "a collection name must not be empty")
	case len(name) > MaxCollectionLength:
		return Errorf(Invalid, "collection name is %d characters long; the limit is %d", len(name), MaxCollectionLength)
	case !collectionName.MatchString(name):
		return Errorf(Invalid, "collection name %q is invalid: use lower-case letters, digits, _ and -, starting with a letter or digit", name)
	}
	return nil
}

// Collection describes one collection of things.
type Collection struct {
	Name string
	// Count is the number of things in the collection.
	Count int64
	// BBox bounds every thing of the collection; nil when it is empty.
	BBox *BBox
	// Updated is when the collection last changed: an import into it, or a
	// delete of some of its things.
	Updated time.Time
}

// ThingRef names one thing: by ID, or by Collection and Key.
type ThingRef struct {
	ID int64
	// Collection is the key's collection; "" is DefaultCollection.
	Collection string
	Key        string
}

// Normalize returns r with the default collection filled in for a key, or
// an Invalid error unless r names a thing in exactly one way.
func (r ThingRef) Normalize() (ThingRef, error) {
	switch {
	case r.ID < 0:
		return r, Errorf(Invalid, "id must be positive, got %d", r.ID)
	case r.ID > 0 && (r.Key != "" || r.Collection != ""):
		return r, Errorf(Invalid, "give either an id, or a collection and a key, not both")
	case r.ID > 0:
		return r, nil
	case r.Key == "":
		return r, Errorf(Invalid, "give an id, or a collection and a key")
	}
	if r.Collection == "" {
		r.Collection = DefaultCollection
	}
	if err := ValidateCollectionName(r.Collection); err != nil {
		return r, err
	}
	return r, validateText("key", r.Key, MaxKeyLength)
}

// MaxDeleteBatch is the most ids or keys one delete may name.
const MaxDeleteBatch = 10_000

// DeleteRequest names things to delete: by IDs, or by Keys within
// Collection.
type DeleteRequest struct {
	IDs []int64
	// Collection is the keys' collection; "" is DefaultCollection.
	Collection string
	Keys       []string
}

// Normalize returns d with the default collection filled in for keys, or an
// Invalid error unless d names ids or keys (not both, not neither).
func (d DeleteRequest) Normalize() (DeleteRequest, error) {
	switch {
	case len(d.IDs) > 0 && (len(d.Keys) > 0 || d.Collection != ""):
		return d, Errorf(Invalid, "delete either by ids, or by a collection and keys, not both")
	case len(d.IDs) == 0 && len(d.Keys) == 0:
		return d, Errorf(Invalid, "a delete needs ids, or a collection and keys")
	case len(d.IDs) > MaxDeleteBatch || len(d.Keys) > MaxDeleteBatch:
		return d, Errorf(Invalid, "a delete may name at most %d things; split it", MaxDeleteBatch)
	}
	for _, id := range d.IDs {
		if id <= 0 {
			return d, Errorf(Invalid, "ids must be positive, got %d", id)
		}
	}
	if len(d.Keys) == 0 {
		return d, nil
	}
	if d.Collection == "" {
		d.Collection = DefaultCollection
	}
	if err := ValidateCollectionName(d.Collection); err != nil {
		return d, err
	}
	for _, k := range d.Keys {
		if k == "" {
			return d, Errorf(Invalid, "keys must not be empty")
		}
		if err := validateText("key", k, MaxKeyLength); err != nil {
			return d, err
		}
	}
	return d, nil
}

// SearchService stores and finds things.
//
// Every method returns Unavailable or Timeout when the store does not
// answer, Forbidden when the store's role may not do what is asked, and
// Internal for anything unexpected; the codes below are the others.
type SearchService interface {
	// Search returns one page of things matching q.Filter in (name, id)
	// order ((distance, name, id) for a nearest search, (q.SortBy's
	// values, id) for a sorted one), read from one
	// snapshot of the store (the total too, when q.WithTotal). Returns
	// Invalid for a bad query, an area that is not a valid polygon
	// included.
	Search(ctx context.Context, q Query) (Page, error)
	// Locate answers many points at once: result[i] holds the things
	// containing q.Points[i] that match q.Filter (whose Point is ignored;
	// with MaxDistanceM, the things within that distance, nearest first), at
	// most q.Limit of them in result order: exactly the first page Search
	// returns for that point. Every point must be valid. Returns Invalid for
	// a bad filter or limit. With q.MaxBytes, result may answer only the
	// first points (at least one): result[i] is then q.Points[i]'s answer
	// for i < len(result).
	Locate(ctx context.Context, q LocateQuery) ([][]Thing, error)
	// Get returns the thing ref names, with its geometry when
	// includeGeometry, shaped by out. Returns Invalid for a bad ref or
	// output, NotFound when there is no such thing.
	Get(ctx context.Context, ref ThingRef, includeGeometry bool, out Output) (Thing, error)
	// Import stores every feature src yields into opts.Collection, creating
	// it if needed, all or nothing: the import is committed only when src
	// returns io.EOF. Features the store cannot accept are reported in the
	// result, not as an error. With opts.Replace the collection ends up
	// holding exactly the stored features, and concurrent searches see it
	// whole before or whole after. Returns Invalid for a bad collection name,
	// the source's error if it fails.
	Import(ctx context.Context, opts ImportOptions, src FeatureSource) (ImportResult, error)
	// Delete deletes the things d names, parts included, and returns how
	// many there were; ids that do not exist are not counted. Returns
	// Invalid for a bad request, NotFound when deleting keys of a collection
	// that does not exist.
	Delete(ctx context.Context, d DeleteRequest) (int64, error)
	// DeleteCollection deletes a collection and all its things and returns
	// how many things it held. Returns Invalid for a bad name, NotFound when
	// there is no such collection.
	DeleteCollection(ctx context.Context, name string) (int64, error)
	// Collections lists every collection, by name.
	Collections(ctx context.Context) ([]Collection, error)
	// Collection returns one collection, read by its name, without
	// listing the others. Returns Invalid for a bad name, NotFound when
	// there is no such collection.
	Collection(ctx context.Context, name string) (Collection, error)
	// Stats counts stored things and parts.
	Stats(ctx context.Context) (Stats, error)
	// Ping reports whether the store answers; nil means ready to serve.
	Ping(ctx context.Context) error
}

// String renders p for logs.
func (p Point) String() string { return fmt.Sprintf("(%g, %g)", p.Lat, p.Lng) }
