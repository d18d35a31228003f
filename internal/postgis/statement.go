package postgis

import (
	"strconv"
	"strings"

	"github.com/geosearch/search/internal/geo"
)

// thingColumns are the columns every statement selects for a thing, in
// ScanThing's order; the geometry column follows (see columns). A field the
// query leaves out (geo.Output.Omit) is selected as a constant of its type,
// so that rows keep one shape for ScanThing while the value (the properties'
// JSON above all) is neither read nor sent.
var thingColumns = [...]struct {
	omit          geo.Fields // 0: always read
	sql, constant string
}{
	{0, `t.id`, ``},
	{geo.FieldCollection, `t.collection`, `''`},
	{geo.FieldKey, `coalesce(t.key, '')`, `''`},
	{0, `t.name`, ``},
	{geo.FieldProperties, `t.properties`, `NULL::jsonb`},
	{geo.FieldBBox, `t.min_lng, t.min_lat, t.max_lng, t.max_lat`, `0::float8, 0::float8, 0::float8, 0::float8`},
}

// The geometry column: GeoJSON of the stored geometry, or simplified
// (ST_SimplifyPreserveTopology keeps every polygon, where ST_Simplify may
// collapse small ones to nothing; GEOS returns a Polygon for a MultiPolygon
// of one, which ST_Multi makes a MultiPolygon again), with fewer digits
// when asked.
const (
	geometryOpen     = `ST_AsGeoJSON(`
	geometryStored   = `t.geom`
	geometrySimplify = `ST_Multi(ST_SimplifyPreserveTopology(t.geom, $?::float8))`
	geometryDigits   = `, $?::int`
	geometryClose    = `)`
	withoutGeometry  = `''`
)

// columns adds the select list: the thing's columns, shaped by out, and its
// geometry when includeGeometry.
func (s *statement) columns(includeGeometry bool, out geo.Output) {
	s.add("SELECT ")
	for _, c := range thingColumns {
		if c.omit != 0 && out.Omit&c.omit != 0 {
			s.add(c.constant)
		} else {
			s.add(c.sql)
		}
		s.add(", ")
	}
	if !includeGeometry {
		s.add(withoutGeometry)
		return
	}
	s.add(geometryOpen)
	if out.SimplifyTolerance > 0 {
		s.add(geometrySimplify, out.SimplifyTolerance)
	} else {
		s.add(geometryStored)
	}
	if out.CoordinateDigits != nil {
		s.add(geometryDigits, *out.CoordinateDigits)
	}
	s.add(geometryClose)
}

// statement builds one SQL statement from constant fragments and their bind
// values.
type statement struct {
	sql  strings.Builder
	args []any
}

// statementBytes and statementValues make room for a point search's text
// and values from the start: growing the text by doubling cost several
// allocations and copies per search (docs/BENCHMARKS.md).
const (
	statementBytes  = 1536
	statementValues = 8
)

// add appends fragment, numbering its "$?" marks with args in order.
func (s *statement) add(fragment string, args ...any) {
	if s.args == nil {
		s.sql.Grow(statementBytes)
		s.args = make([]any, 0, statementValues)
	}
	for {
		before, after, found := strings.Cut(fragment, "$?")
		s.sql.WriteString(before)
		if !found {
			break
		}
		if len(args) == 0 {
			panic("postgis: a fragment has more parameters than values: " + fragment)
		}
		s.args = append(s.args, args[0])
		args = args[1:]
		s.sql.WriteByte('$')
		s.sql.WriteString(strconv.Itoa(len(s.args)))
		fragment = after
	}
	if len(args) > 0 {
		panic("postgis: a fragment has fewer parameters than values: " + fragment)
	}
}
