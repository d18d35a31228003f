package geo

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"

	"github.com/twpayne/go-geom"
	"github.com/twpayne/go-geom/encoding/geojson"
)

// Limits bound what one imported feature may contain.
type Limits struct {
	// MaxVertices is the most positions a feature's geometry may have.
	MaxVertices int
}

// DefaultLimits are generous for real boundaries: the largest 1:10m country
// outline has about 100,000 vertices.
var DefaultLimits = Limits{MaxVertices: 1_000_000}

// Length limits of a feature's text fields, in characters.
const (
	MaxNameLength = 1000
	MaxKeyLength  = 256
)

// RawFeature is a feature as it arrives at the edge, before validation.
type RawFeature struct {
	Index      int
	Key        string
	Name       string
	Properties map[string]any
	// GeometryJSON is a GeoJSON Polygon or MultiPolygon geometry object.
	GeometryJSON []byte
	// Problem, when not empty, says why the reader could not make a feature
	// of this input (its properties are an array, say): DecodeFeature
	// rejects it with this reason, and the rest of the import goes on.
	Problem string
}

// DecodeFeature validates raw and turns its geometry into a 2-D MultiPolygon.
//
// It repairs what can be repaired without changing the covered area (it
// closes unclosed rings, drops rings with fewer than four positions, which
// enclose nothing, and drops Z and M values) and lists each repair in
// Feature.Repairs. It returns an Invalid error, whose message is the reason
// for the rejection, for anything else: unparsable GeoJSON, other geometry
// types, empty geometry, non-finite or out-of-range coordinates, or more
// vertices than lim allows. Self-intersections are the store's to repair.
func DecodeFeature(raw RawFeature, lim Limits) (Feature, error) {
	f := Feature{Index: raw.Index, Key: raw.Key, Name: raw.Name, Properties: raw.Properties}
	if raw.Problem != "" {
		return f, Errorf(Invalid, "%s", raw.Problem)
	}
	if err := validateText("name", raw.Name, MaxNameLength); err != nil {
		return f, err
	}
	if raw.Name == "" {
		return f, Errorf(Invalid, "name is required")
	}
	if err := validateText("key", raw.Key, MaxKeyLength); err != nil {
		return f, err
	}
	// Count before decoding: a geometry over the limit is refused without
	// building it (a message may be up to GRPC_MAX_MESSAGE_BYTES of JSON).
	if n := countPositions(raw.GeometryJSON); n > lim.MaxVertices {
		return f, Errorf(Invalid, "geometry has %d vertices; the limit is %d", n, lim.MaxVertices)
	}
	var g geom.T
	if err := geojson.Unmarshal(raw.GeometryJSON, &g); err != nil {
		var unsupported geojson.ErrUnsupportedType
		if errors.As(err, &unsupported) {
			return f, Errorf(Invalid, "geometry type %q is not supported; want Polygon or MultiPolygon", string(unsupported))
		}
		return f, Errorf(Invalid, "geometry is not valid GeoJSON: %v", err)
	}
	var polygons [][][]geom.Coord
	switch g := g.(type) {
	case nil:
		return f, Errorf(Invalid, "geometry is missing")
	case *geom.Polygon:
		polygons = [][][]geom.Coord{g.Coords()}
	case *geom.MultiPolygon:
		polygons = g.Coords()
	default:
		return f, Errorf(Invalid, "geometry type %s is not supported; want Polygon or MultiPolygon", geometryType(g))
	}
	if n := len(g.FlatCoords()) / max(g.Stride(), 1); n > lim.MaxVertices {
		return f, Errorf(Invalid, "geometry has %d vertices; the limit is %d", n, lim.MaxVertices)
	}
	if g.Stride() > 2 {
		f.Repairs = append(f.Repairs, "dropped coordinates beyond longitude and latitude")
	}
	mp, repairs, err := cleanPolygons(polygons)
	if err != nil {
		return f, err
	}
	f.Geometry = mp
	f.Repairs = append(f.Repairs, repairs...)
	return f, nil
}

// countPositions counts the positions in the "coordinates" member of a
// GeoJSON geometry object without decoding it: the arrays there whose first
// element is a number. It reads the JSON only as far as strings and nesting
// go, allocating nothing; on malformed JSON its count is meaningless and
// decoding reports the error.
func countPositions(raw []byte) int {
	n, depth := 0, 0
	var lastString []byte
	inCoordinates := false
	for i := 0; i < len(raw); i++ {
		switch raw[i] {
		case '"':
			j := i + 1
			for j < len(raw) && raw[j] != '"' {
				if raw[j] == '\\' {
					j++
				}
				j++
			}
			lastString = raw[i+1 : min(j, len(raw))]
			i = j
		case ':':
			if depth == 1 {
				inCoordinates = string(lastString) == "coordinates"
			}
		case ',':
			if depth == 1 {
				inCoordinates = false
			}
		case '{':
			depth++
		case '}':
			depth--
		case '[':
			depth++
			if inCoordinates {
				j := i + 1
				for j < len(raw) && (raw[j] == ' ' || raw[j] == '\t' || raw[j] == '\n' || raw[j] == '\r') {
					j++
				}
				if j < len(raw) && (raw[j] == '-' || raw[j] >= '0' && raw[j] <= '9') {
					n++
				}
			}
		case ']':
			depth--
		}
	}
	return n
}

// validateText checks a text field: valid UTF-8 without NUL (which
// PostgreSQL text cannot hold), at most limit characters.
func validateText(field, s string, limit int) error {
	if !utf8.ValidString(s) {
		return Errorf(Invalid, "%s must be valid UTF-8", field)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return Errorf(Invalid, "%s must not contain NUL characters", field)
	}
	if n := utf8.RuneCountInString(s); n > limit {
		return Errorf(Invalid, "%s is %d characters long; the limit is %d", field, n, limit)
	}
	return nil
}

// cleanPolygons checks coordinates and builds an XY MultiPolygon from
// polygons, closing open rings and dropping degenerate ones.
func cleanPolygons(polygons [][][]geom.Coord) (*geom.MultiPolygon, []string, error) {
	var repairs []string
	out := make([][][]geom.Coord, 0, len(polygons))
	for pi, rings := range polygons {
		var kept [][]geom.Coord
		for ri, ring := range rings {
			xy := make([]geom.Coord, len(ring), len(ring)+1)
			for ci, c := range ring {
				if err := checkPosition(c); err != nil {
					return nil, nil, Errorf(Invalid, "polygon %d ring %d position %d: %v", pi, ri, ci, err)
				}
				xy[ci] = geom.Coord{c[0], c[1]}
			}
			if len(xy) > 0 && !xy[0].Equal(geom.XY, xy[len(xy)-1]) {
				xy = append(xy, xy[0])
				repairs = append(repairs, fmt.Sprintf("closed ring %d of polygon %d", ri, pi))
			}
			if len(xy) < 4 {
				if ri == 0 {
					repairs = append(repairs, fmt.Sprintf("dropped polygon %d: its outer ring has %d positions, fewer than 4", pi, len(xy)))
					break
				}
				repairs = append(repairs, fmt.Sprintf("dropped ring %d of polygon %d: %d positions, fewer than 4", ri, pi, len(xy)))
				continue
			}
			kept = append(kept, xy)
		}
		if len(kept) > 0 {
			out = append(out, kept)
		}
	}
	if len(out) == 0 {
		if len(repairs) > 0 {
			return nil, nil, Errorf(Invalid, "geometry has no polygon left after repair: %s", repairs[0])
		}
		return nil, nil, Errorf(Invalid, "geometry is empty")
	}
	crossings, err := unwrapAntimeridian(out)
	if err != nil {
		return nil, nil, Errorf(Invalid, "%v", err)
	}
	repairs = append(repairs, crossings...)
	mp, err := geom.NewMultiPolygon(geom.XY).SetCoords(out)
	if err != nil {
		return nil, nil, Errorf(Invalid, "geometry: %v", err)
	}
	return mp, repairs, nil
}

func checkPosition(c geom.Coord) error {
	if len(c) < 2 {
		return fmt.Errorf("a position needs longitude and latitude")
	}
	lng, lat := c[0], c[1]
	switch {
	case math.IsNaN(lng) || math.IsInf(lng, 0) || math.IsNaN(lat) || math.IsInf(lat, 0):
		return fmt.Errorf("coordinates must be finite")
	case lng < -180 || lng > 180:
		return fmt.Errorf("longitude %v is outside [-180, 180]", lng)
	case lat < -90 || lat > 90:
		return fmt.Errorf("latitude %v is outside [-90, 90]", lat)
	}
	return nil
}

func geometryType(g geom.T) string {
	switch g.(type) {
	case *geom.Point:
		return "Point"
	case *geom.LineString:
		return "LineString"
	case *geom.MultiPoint:
		return "MultiPoint"
	case *geom.MultiLineString:
		return "MultiLineString"
	case *geom.GeometryCollection:
		return "GeometryCollection"
	default:
		return fmt.Sprintf("%T", g)
	}
}
