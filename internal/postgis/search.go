package postgis

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/geosearch/search/internal/geo"
)

// A search statement is composed from the constant fragments below, one per
// part of the filter, and every value is a bind parameter: a fragment marks
// each of its parameters "$?", which the statement numbers in order. A new
// filter is one fragment and one call in where(); the filter-coverage test
// (TestEveryFilterFieldFilters) fails when a field of geo.Filter changes no
// result.
//
// Results are ordered by (name COLLATE "C", id), byte-wise so that every
// server and every locale pages the same way. A page starts after the
// cursor.
//
// The point query finds candidate parts through their GiST index. A point in
// the interior of a part is in the interior of the thing (a part is a subset
// of it), so ST_Contains on the part settles it. A point on a part's boundary
// is either on the thing's boundary (not contained) or on a line along which
// ST_Subdivide cut it (contained); only then is the whole geometry consulted.
// The answer is therefore exactly ST_Contains(thing.geom, point).
//
// Each hit's thing is then fetched by primary key. The OFFSET 0 keeps the
// planner from flattening that lookup into a join: estimating a dozen hits,
// it would otherwise hash-join them against a scan of every thing, which
// costs more than the rest of the query on the 1:10m countries (a point is
// in zero to two things). The other filters (collections, properties) are
// then checked on those few things. EXPLAIN and the measurements are in
// docs/BENCHMARKS.md.
const (
	selectThing = `SELECT t.id, t.collection, coalesce(t.key, ''), t.name, t.properties,
       t.min_lng, t.min_lat, t.max_lng, t.max_lat, `
	withGeometry    = `ST_AsGeoJSON(t.geom)`
	withoutGeometry = `''`

	pointHits = `WITH pt AS (
    SELECT ST_SetSRID(ST_MakePoint($?::float8, $?::float8), 4326) AS g
), hit AS (
    SELECT p.thing_id, bool_or(ST_Contains(p.geom, pt.g)) AS inside
    FROM thing_part p, pt
    WHERE ST_Intersects(p.geom, pt.g)
    GROUP BY p.thing_id
)
`
	fromPointHits = `
FROM hit CROSS JOIN pt CROSS JOIN LATERAL (SELECT * FROM thing WHERE thing.id = hit.thing_id OFFSET 0) t
WHERE (hit.inside OR ST_Contains(t.geom, pt.g))`

	// The box query finds the parts that intersect the box, or either half
	// of a box across the antimeridian (west > east), through their GiST
	// index, then the things by primary key as for a point. EXPLAIN ANALYZE
	// on the 1:50m countries: an Index Scan on thing_part_geom_idx for a
	// box, a BitmapOr of two Bitmap Index Scans on it for a box across the
	// line. Every part the box meets is read before the page is cut, so a
	// box over a whole large collection costs as much as the collection.
	boxHits = `WITH bb AS (
    SELECT $?::float8 AS w, $?::float8 AS s, $?::float8 AS e, $?::float8 AS n
), box AS (
    SELECT ST_MakeEnvelope(w, s, CASE WHEN w <= e THEN e ELSE 180 END, n, 4326) AS east,
           CASE WHEN w > e THEN ST_MakeEnvelope(-180, s, e, n, 4326) END AS west
    FROM bb
), hit AS (
    SELECT DISTINCT p.thing_id
    FROM thing_part p, box
    WHERE ST_Intersects(p.geom, box.east) OR (box.west IS NOT NULL AND ST_Intersects(p.geom, box.west))
)
`
	fromBoxHits = `
FROM hit CROSS JOIN LATERAL (SELECT * FROM thing WHERE thing.id = hit.thing_id OFFSET 0) t
WHERE true`
	fromThings = `
FROM thing t
WHERE true`
	// fromWholeGeometry is the naive point query (see WholeGeometryStatement).
	fromWholeGeometry = `
FROM thing t
WHERE ST_Contains(t.geom, ST_SetSRID(ST_MakePoint($?::float8, $?::float8), 4326))`

	nameContains = `
  AND t.name ILIKE $?::text`
	inCollection = `
  AND t.collection = $?::text`
	inCollections = `
  AND t.collection = ANY($?::text[])`
	// Each alternative is a one-property jsonb object: containment is
	// served by the GIN index on properties (a bitmap scan per value).
	propertyIn = `
  AND t.properties @> ANY($?::text[]::jsonb[])`
	afterCursor = `
  AND (t.name COLLATE "C", t.id) > ($?::text COLLATE "C", $?::bigint)`
	orderAndLimit = `
ORDER BY t.name COLLATE "C", t.id
LIMIT $?::bigint`
)

// statement builds one SQL statement from constant fragments and their bind
// values.
type statement struct {
	sql  strings.Builder
	args []any
}

// add appends fragment, numbering its "$?" marks with args in order.
func (s *statement) add(fragment string, args ...any) {
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

// SearchStatement returns the SQL and the bind values Search sends for q,
// which must be valid, so that search-bench can send the very same statement
// straight to the database. Rows scan with ScanThing; there is one row more
// than q.Limit when a next page exists.
func SearchStatement(q geo.Query) (string, []any) {
	var s statement
	switch {
	case q.Point != nil:
		s.add(pointHits, q.Point.Lng, q.Point.Lat)
	case q.BBox != nil:
		s.add(boxHits, q.BBox.MinLng, q.BBox.MinLat, q.BBox.MaxLng, q.BBox.MaxLat)
	}
	s.add(selectThing)
	s.add(geometryColumn(q.IncludeGeometry))
	switch {
	case q.Point != nil:
		s.add(fromPointHits)
	case q.BBox != nil:
		s.add(fromBoxHits)
	default:
		s.add(fromThings)
	}
	return s.finish(q)
}

// WholeGeometryStatement answers a point query the naive way: ST_Contains
// against every candidate's whole geometry (through its GiST index), without
// the parts table, with the same other filters, columns and order as
// SearchStatement. The service never sends it; it is the reference that
// search-bench and the tests measure the parts against. q.Point must be set.
func WholeGeometryStatement(q geo.Query) (string, []any) {
	var s statement
	s.add(selectThing)
	s.add(geometryColumn(q.IncludeGeometry))
	s.add(fromWholeGeometry, q.Point.Lng, q.Point.Lat)
	return s.finish(q)
}

func geometryColumn(include bool) string {
	if include {
		return withGeometry
	}
	return withoutGeometry
}

// finish adds the filters other than the point, the cursor, the order and
// the limit (one more than q.Limit tells whether a next page exists).
func (s *statement) finish(q geo.Query) (string, []any) {
	s.filters(q.Filter)
	if q.After != nil {
		s.add(afterCursor, q.After.Name, q.After.ID)
	}
	s.add(orderAndLimit, q.Limit+1)
	return s.sql.String(), s.args
}

// filters adds the conditions of f other than the point.
func (s *statement) filters(f geo.Filter) {
	if f.Query != "" {
		s.add(nameContains, likePattern(f.Query))
	}
	switch len(f.Collections) {
	case 0:
	case 1:
		s.add(inCollection, f.Collections[0])
	default:
		s.add(inCollections, f.Collections)
	}
	for _, pf := range f.Properties {
		s.add(propertyIn, containmentObjects(pf))
	}
}

// containmentObjects renders each value of pf as the JSON object
// {"key": value}, which a thing's properties contain when they match.
func containmentObjects(pf geo.PropertyFilter) []string {
	out := make([]string, len(pf.Values))
	for i, v := range pf.Values {
		b, err := json.Marshal(map[string]any{pf.Key: v})
		if err != nil {
			// Validate admits only strings, finite numbers and booleans.
			panic(fmt.Sprintf("postgis: property filter %q value %v: %v", pf.Key, v, err))
		}
		out[i] = string(b)
	}
	return out
}

// Search returns one page of things matching q.
func (s *SearchService) Search(ctx context.Context, q geo.Query) (geo.Page, error) {
	if err := q.Filter.Validate(); err != nil {
		return geo.Page{}, err
	}
	if q.Limit <= 0 {
		return geo.Page{}, geo.Errorf(geo.Invalid, "page size must be positive")
	}
	sql, args := SearchStatement(q)
	if q.Query != "" {
		// A name search is planned for its pattern every time (the unnamed
		// statement; pgx caches only its description). A prepared statement
		// would switch to a generic plan after a few costly patterns, and
		// that plan, not knowing how rare a pattern is, walks the rows in
		// name order until it has a page: every row of the collection for
		// a rare one. docs/BENCHMARKS.md, "Name search at scale".
		args = append([]any{pgx.QueryExecModeCacheDescribe}, args...)
	}
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return geo.Page{}, classify(ctx, "search", err)
	}
	defer rows.Close()
	var page geo.Page
	size := 0
	for rows.Next() {
		t, err := ScanThing(rows)
		if err != nil {
			return geo.Page{}, classify(ctx, "search", err)
		}
		if len(page.Things) == q.Limit { // the row beyond the limit: a next page exists
			page.Next = &geo.Cursor{Name: page.Things[q.Limit-1].Name, ID: page.Things[q.Limit-1].ID}
			break
		}
		page.Things = append(page.Things, t)
		if q.MaxBytes > 0 {
			for _, v := range rows.RawValues() {
				size += len(v)
			}
			if size >= q.MaxBytes {
				// Cut the page here; the rows not read are discarded as
				// they arrive, never held.
				page.Next = &geo.Cursor{Name: t.Name, ID: t.ID}
				break
			}
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return geo.Page{}, classify(ctx, "search", err)
	}
	return page, nil
}

// ScanThing scans one row of the statements SearchStatement returns.
func ScanThing(row pgx.CollectableRow) (geo.Thing, error) {
	var t geo.Thing
	err := row.Scan(&t.ID, &t.Collection, &t.Key, &t.Name, &t.Properties,
		&t.BBox.MinLng, &t.BBox.MinLat, &t.BBox.MaxLng, &t.BBox.MaxLat, &t.GeometryGeoJSON)
	return t, err
}

// likePattern matches names containing query literally: ILIKE's wildcards
// and its escape character in the query are escaped.
func likePattern(query string) string {
	var b strings.Builder
	b.Grow(len(query) + 2)
	b.WriteByte('%')
	for _, r := range query {
		if r == '%' || r == '_' || r == '\\' {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('%')
	return b.String()
}
