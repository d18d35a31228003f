package geo

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/twpayne/go-geom"
	"github.com/twpayne/go-geom/encoding/geojson"
)

// Expr is a condition on a thing's top-level properties and geometry, as
// CQL2 (OGC API – Features – Part 3) writes them: comparisons, IN, LIKE,
// BETWEEN, IS NULL and S_INTERSECTS combined with AND, OR and NOT. Exactly
// one of its parts is set. The store turns it into SQL from constant
// fragments, every value a bind parameter.
//
// Comparisons follow SQL's three-valued logic: a property that a thing
// lacks (or holds null) is unknown, never equal or unequal, and NOT of
// unknown is unknown (the thing is left out). A value compares only with
// values of its JSON type: the string "1" neither equals nor is less than
// the number 1.
type Expr struct {
	// And and Or hold two or more conditions; Not holds one.
	And, Or []Expr `json:",omitempty"`
	Not     *Expr  `json:",omitempty"`
	// Compare is property Op value.
	Compare *Comparison `json:",omitempty"`
	// In keeps things whose property equals one of the values.
	In *InList `json:",omitempty"`
	// Like keeps things whose string property matches a pattern: % any
	// run of characters, _ one character, \ escapes the next.
	Like *LikePattern `json:",omitempty"`
	// Between keeps things whose numeric property lies within [Low, High].
	Between *Range `json:",omitempty"`
	// IsNull keeps things that lack the property or hold null in it.
	IsNull string `json:",omitempty"`
	// Intersects keeps things whose geometry meets this GeoJSON geometry
	// (WGS 84), which the store repairs if it is not valid.
	Intersects string `json:",omitempty"`
}

// Comparison operators.
const (
	OpEq = "="
	OpNe = "<>"
	OpLt = "<"
	OpLe = "<="
	OpGt = ">"
	OpGe = ">="
)

// Comparison is Property Op Value; Value is a string, a float64 or a bool
// (booleans only with = and <>).
type Comparison struct {
	Property string
	Op       string
	Value    any
}

// InList is Property IN (Values), each a string, a float64 or a bool.
type InList struct {
	Property string
	Values   []any
}

// LikePattern is Property LIKE Pattern.
type LikePattern struct {
	Property, Pattern string
}

// Range is Property BETWEEN Low AND High.
type Range struct {
	Property  string
	Low, High float64
}

// Limits of an expression.
const (
	MaxExprNodes = 200 // conditions and values in one expression
	MaxExprDepth = 20  // nesting of AND, OR and NOT
	// MaxExprGeometryBytes bounds the GeoJSON of an S_INTERSECTS literal.
	MaxExprGeometryBytes = 1 << 20
)

// Properties returns the property names e uses, sorted, without repeats.
func (e Expr) Properties() []string {
	var out []string
	e.walk(func(x Expr) {
		switch {
		case x.Compare != nil:
			out = append(out, x.Compare.Property)
		case x.In != nil:
			out = append(out, x.In.Property)
		case x.Like != nil:
			out = append(out, x.Like.Property)
		case x.Between != nil:
			out = append(out, x.Between.Property)
		case x.IsNull != "":
			out = append(out, x.IsNull)
		}
	})
	slices.Sort(out)
	return slices.Compact(out)
}

func (e Expr) walk(fn func(Expr)) {
	fn(e)
	for _, x := range e.And {
		x.walk(fn)
	}
	for _, x := range e.Or {
		x.walk(fn)
	}
	if e.Not != nil {
		e.Not.walk(fn)
	}
}

// Validate returns an Invalid error unless e has exactly one part at every
// node, valid property names and values, and stays within the limits.
func (e Expr) Validate() error {
	nodes := 0
	return e.validate(0, &nodes)
}

func (e Expr) validate(depth int, nodes *int) error {
	if depth > MaxExprDepth {
		return Errorf(Invalid, "the filter nests deeper than %d levels", MaxExprDepth)
	}
	*nodes++
	if *nodes > MaxExprNodes {
		return Errorf(Invalid, "the filter has more than %d conditions and values", MaxExprNodes)
	}
	set := 0
	for _, b := range []bool{len(e.And) > 0, len(e.Or) > 0, e.Not != nil, e.Compare != nil, e.In != nil, e.Like != nil, e.Between != nil, e.IsNull != "", e.Intersects != ""} {
		if b {
			set++
		}
	}
	if set != 1 {
		return Errorf(Invalid, "a filter condition must be exactly one thing, got %d", set)
	}
	for _, list := range [][]Expr{e.And, e.Or} {
		if len(list) == 1 {
			return Errorf(Invalid, "AND and OR join two conditions or more")
		}
		for _, x := range list {
			if err := x.validate(depth+1, nodes); err != nil {
				return err
			}
		}
	}
	switch {
	case e.Not != nil:
		return e.Not.validate(depth+1, nodes)
	case e.Compare != nil:
		c := e.Compare
		if err := validateExprProperty(c.Property); err != nil {
			return err
		}
		if !slices.Contains([]string{OpEq, OpNe, OpLt, OpLe, OpGt, OpGe}, c.Op) {
			return Errorf(Invalid, "unknown comparison %q", c.Op)
		}
		if _, ok := c.Value.(bool); ok && c.Op != OpEq && c.Op != OpNe {
			return Errorf(Invalid, "booleans compare with = and <> only, not %s", c.Op)
		}
		return validateExprValue(c.Property, c.Value)
	case e.In != nil:
		if err := validateExprProperty(e.In.Property); err != nil {
			return err
		}
		if len(e.In.Values) == 0 {
			return Errorf(Invalid, "IN needs at least one value")
		}
		*nodes += len(e.In.Values)
		if *nodes > MaxExprNodes {
			return Errorf(Invalid, "the filter has more than %d conditions and values", MaxExprNodes)
		}
		for _, v := range e.In.Values {
			if err := validateExprValue(e.In.Property, v); err != nil {
				return err
			}
		}
	case e.Like != nil:
		if err := validateExprProperty(e.Like.Property); err != nil {
			return err
		}
		if err := validateText("LIKE pattern", e.Like.Pattern, MaxPropertyValueLength); err != nil {
			return err
		}
		trailing := len(e.Like.Pattern) - len(strings.TrimRight(e.Like.Pattern, `\`))
		if trailing%2 == 1 {
			return Errorf(Invalid, `LIKE pattern %q ends with the escape character \; write \\ for a backslash`, e.Like.Pattern)
		}
	case e.Between != nil:
		if err := validateExprProperty(e.Between.Property); err != nil {
			return err
		}
		for _, v := range []float64{e.Between.Low, e.Between.High} {
			if err := validateExprValue(e.Between.Property, v); err != nil {
				return err
			}
		}
	case e.IsNull != "":
		return validateExprProperty(e.IsNull)
	case e.Intersects != "":
		if len(e.Intersects) > MaxExprGeometryBytes {
			return Errorf(Invalid, "the geometry of S_INTERSECTS is over %d bytes", MaxExprGeometryBytes)
		}
		return validateExprGeometry(e.Intersects)
	}
	return nil
}

func validateExprProperty(p string) error {
	switch {
	case p == "":
		return Errorf(Invalid, "a filter condition needs a property")
	case strings.ContainsRune(p, '.'):
		return Errorf(Invalid, "property %q is a nested path; only top-level properties can be filtered", p)
	}
	return validateText("property", p, MaxPropertyKeyLength)
}

func validateExprValue(p string, v any) error {
	switch v := v.(type) {
	case string:
		return validateText(fmt.Sprintf("the value compared with %q", p), v, MaxPropertyValueLength)
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return Errorf(Invalid, "the value compared with %q must be a finite number", p)
		}
	case bool:
	default:
		return Errorf(Invalid, "the value compared with %q is %s; only strings, numbers and booleans compare", p, jsonKind(v))
	}
	return nil
}

// validateExprGeometry checks a GeoJSON geometry for S_INTERSECTS: a
// point, line or polygon (or several), on the globe, with closed rings of
// four positions or more and lines of two or more, which PostGIS reads
// without an error.
func validateExprGeometry(raw string) error {
	var g geom.T
	if err := geojson.Unmarshal([]byte(raw), &g); err != nil || g == nil {
		return Errorf(Invalid, "the geometry of S_INTERSECTS is not a GeoJSON geometry")
	}
	var lines, rings [][]geom.Coord
	var points []geom.Coord
	switch g := g.(type) {
	case *geom.Point:
		points = []geom.Coord{g.Coords()}
	case *geom.MultiPoint:
		points = g.Coords()
	case *geom.LineString:
		lines = [][]geom.Coord{g.Coords()}
	case *geom.MultiLineString:
		lines = g.Coords()
	case *geom.Polygon:
		rings = g.Coords()
	case *geom.MultiPolygon:
		for _, p := range g.Coords() {
			rings = append(rings, p...)
		}
	default:
		return Errorf(Invalid, "S_INTERSECTS takes a point, line or polygon, not %s", geometryType(g))
	}
	if g.Empty() {
		return Errorf(Invalid, "the geometry of S_INTERSECTS is empty")
	}
	for _, l := range lines {
		if len(l) < 2 {
			return Errorf(Invalid, "a line of S_INTERSECTS needs two positions or more")
		}
		points = append(points, l...)
	}
	for _, r := range rings {
		if len(r) < 4 || !r[0].Equal(geom.XY, r[len(r)-1]) {
			return Errorf(Invalid, "a polygon ring of S_INTERSECTS needs four positions or more, the last the first")
		}
		points = append(points, r...)
	}
	for _, c := range points {
		if len(c) < 2 {
			return Errorf(Invalid, "a position of S_INTERSECTS needs a longitude and a latitude")
		}
		if err := (Point{Lat: c[1], Lng: c[0]}).Validate(); err != nil {
			return Errorf(Invalid, "a position of S_INTERSECTS is not on the globe: %s", ErrorMessage(err))
		}
	}
	return nil
}
