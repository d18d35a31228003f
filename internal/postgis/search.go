package postgis

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
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
	// thePoint is the point of a point or nearest search, pt.g: one row
	// for Search, a row per point in Locate's pts (locate.go), which joins
	// the same candidates below for each of its rows.
	thePoint = `WITH pt AS (
    SELECT ST_SetSRID(ST_MakePoint($?::float8, $?::float8), 4326) AS g
)
`
	// pointCandidates are the things containing pt.g (the parts, then the
	// exact rule above), as t: the one copy of the point query, which
	// Search's fromPointHits and Locate's locateFrom join laterally to pt.
	pointCandidates = `(
    SELECT p.thing_id, bool_or(ST_Contains(p.geom, pt.g)) AS inside
    FROM thing_part p
    WHERE ST_Intersects(p.geom, pt.g)
    GROUP BY p.thing_id
  ) hit CROSS JOIN LATERAL (SELECT * FROM thing WHERE thing.id = hit.thing_id OFFSET 0) t
  WHERE (hit.inside OR ST_Contains(t.geom, pt.g))`
	fromPointHits = `
FROM pt CROSS JOIN LATERAL ` + pointCandidates

	// A nearest search (a point and a distance) finds its candidates in
	// two tables through their GiST indexes: the parts (thing_part) that
	// contain or touch the point, as above, and the geography pieces
	// (thing_part_geog, migration 000007) within the distance, ST_DWithin
	// on the WGS 84 spheroid. The pieces are the things segmentized to
	// edges of at most 0.1 degree, cut to at most 256 vertices and
	// segmentized again, computed at import: each distance is measured on
	// a few hundred vertices at most. A thing's distance is 0 when it
	// contains the point (the exact rule above: these are exactly the
	// things a plain point search returns), otherwise the least spheroid
	// distance of its pieces, which is the distance to the thing: the
	// pieces cover it. A thing that only touches the point's parts and has
	// no piece within the distance has no distance (NULL) and is left
	// out. Things are ranked by (distance, name, id) and a page starts
	// after the cursor's triple. Every candidate within the distance is
	// ranked before the page is cut; the distance cap (geo.MaxDistanceM)
	// bounds their number.
	//
	// nearCandidates are those things of pt.g, as t with their distance
	// d.dist: the one copy of the nearest query, which Search's
	// fromNearHits and Locate's locateNearFrom join laterally to pt. Its
	// parameters are the distance, twice.
	nearCandidates = `(
    SELECT c.thing_id, bool_or(c.inside) AS inside, bool_or(c.touches) AS touches, min(c.dist) AS dist
    FROM (
      SELECT p.thing_id, ST_Contains(p.geom, pt.g) AS inside, true AS touches, NULL::float8 AS dist
      FROM thing_part p
      WHERE ST_Intersects(p.geom, pt.g)
      UNION ALL
      SELECT g.thing_id, false, false, ST_Distance(g.geog, pt.g::geography)
      FROM thing_part_geog g
      WHERE ST_DWithin(g.geog, pt.g::geography, $?::float8)
    ) c
    GROUP BY c.thing_id
  ) hit CROSS JOIN LATERAL (SELECT * FROM thing WHERE thing.id = hit.thing_id OFFSET 0) t
  CROSS JOIN LATERAL (
    SELECT CASE WHEN hit.inside OR (hit.touches AND ST_Contains(t.geom, pt.g)) THEN 0::float8 ELSE hit.dist END AS dist
  ) d
  WHERE d.dist <= $?::float8`
	fromNearHits = `
FROM pt CROSS JOIN LATERAL ` + nearCandidates

	// An area search (a bbox or an area) turns its region into pieces: a
	// box is one envelope, or two across the antimeridian (west > east);
	// a box without width or height is the line or point it covers
	// (ST_Envelope of its diagonal), so it finds what touches that line or
	// point, and what contains it, as Locate would;
	// an area is cut by ST_Subdivide like the things, after its pieces
	// unwrapped across the antimeridian (see geo.DecodeArea) are cut at
	// +-180 and folded back (ST_WrapX leaves other areas as they are). An
	// area with no area at all (every ring collapsed onto a line or a
	// point) is, like a flat box, the lines and points it covers
	// (ST_MakeValid's linework); an area with some area must be valid
	// (areaValidity), so here no area at all means that case.
	// Each piece finds the
	// parts it meets through their GiST index (a nested loop of index
	// scans), and their things by primary key as for a point. A thing
	// meets the region exactly when one of its parts meets one of the
	// pieces (both cover their whole), so intersects needs nothing more.
	// Within and contains are settled on the whole geometries, for the
	// candidates whose stored bounding box can satisfy them (a thing
	// within the region has its box within the region's box; a thing
	// containing it, the other way round): the box test reads no
	// geometry. Every candidate is read before the page is cut, so a
	// region over a whole large collection costs as much as the
	// collection. EXPLAIN ANALYZE is in docs/BENCHMARKS.md.
	boxRegion = `WITH bb AS (
    SELECT $?::float8 AS w, $?::float8 AS s, $?::float8 AS e, $?::float8 AS n
), region AS (
    SELECT r.whole, ST_XMin(r.whole) AS xmin, ST_YMin(r.whole) AS ymin, ST_XMax(r.whole) AS xmax, ST_YMax(r.whole) AS ymax
    FROM bb CROSS JOIN LATERAL (
        SELECT CASE WHEN w <= e THEN ST_Envelope(ST_SetSRID(ST_MakeLine(ST_MakePoint(w, s), ST_MakePoint(e, n)), 4326))
               ELSE ST_Collect(ST_Envelope(ST_SetSRID(ST_MakeLine(ST_MakePoint(w, s), ST_MakePoint(180, n)), 4326)),
                               ST_Envelope(ST_SetSRID(ST_MakeLine(ST_MakePoint(-180, s), ST_MakePoint(e, n)), 4326))) END AS whole
    ) r
), piece AS (
    SELECT (ST_Dump(region.whole)).geom AS g FROM region
)
`
	areaRegion = `WITH region AS (
    SELECT r.whole, ST_XMin(r.whole) AS xmin, ST_YMin(r.whole) AS ymin, ST_XMax(r.whole) AS xmax, ST_YMax(r.whole) AS ymax
    FROM (SELECT CASE WHEN ST_Area(a.g) = 0 THEN ST_MakeValid(a.g, 'method=linework') ELSE a.g END AS whole
          FROM (SELECT ST_SetSRID(ST_WrapX(ST_WrapX(ST_GeomFromGeoJSON($?::text), 180, -360), -180, 360), 4326) AS g) a) r
), piece AS (
    SELECT ST_Subdivide(d.geom, 128) AS g FROM region CROSS JOIN LATERAL ST_Dump(region.whole) d
)
`
	regionHits = `, hit AS (
    SELECT DISTINCT p.thing_id
    FROM piece JOIN thing_part p ON ST_Intersects(p.geom, piece.g)
)
`
	fromRegionHits = `
FROM hit CROSS JOIN region CROSS JOIN LATERAL (SELECT * FROM thing WHERE thing.id = hit.thing_id OFFSET 0) t
WHERE true`
	withinRegion = `
  AND t.min_lng >= region.xmin AND t.max_lng <= region.xmax AND t.min_lat >= region.ymin AND t.max_lat <= region.ymax
  AND ST_Within(t.geom, region.whole)`
	containsRegion = `
  AND t.min_lng <= region.xmin AND t.max_lng >= region.xmax AND t.min_lat <= region.ymin AND t.max_lat >= region.ymax
  AND ST_Contains(t.geom, region.whole)`
	// areaValidity checks an area before it is searched: GEOS answers an
	// invalid polygon with wrong results or an error.
	areaValidity = `SELECT CASE WHEN d.valid THEN true ELSE ST_Dimension(ST_MakeValid(a.g, 'method=linework')) < 2 END,
       coalesce(d.reason, ''), coalesce(ST_X(d.location), 'NaN'), coalesce(ST_Y(d.location), 'NaN')
FROM (SELECT ST_GeomFromGeoJSON($1::text) AS g) a CROSS JOIN LATERAL ST_IsValidDetail(a.g) d`
	fromThings = `
FROM thing t
WHERE true`
	// The naive statements (see WholeGeometryStatement): the point, the
	// nearest and the area queries on the whole geometries.
	fromWholeGeometry = `
FROM thing t
WHERE ST_Contains(t.geom, ST_SetSRID(ST_MakePoint($?::float8, $?::float8), 4326))`
	fromWholeNear = `
FROM thing t CROSS JOIN pt
CROSS JOIN LATERAL (
    SELECT CASE WHEN ST_Contains(t.geom, pt.g) THEN 0::float8 ELSE ST_Distance(ST_Segmentize(t.geom, 0.1)::geography, pt.g::geography) END AS dist
) d
WHERE (ST_Contains(t.geom, pt.g) OR ST_DWithin(ST_Segmentize(t.geom, 0.1)::geography, pt.g::geography, $?::float8))
  AND d.dist <= $?::float8`
	fromWholeRegion = `
FROM thing t CROSS JOIN region
WHERE ST_Intersects(t.geom, region.whole)`
	wholeWithin = `
  AND ST_Within(t.geom, region.whole)`
	wholeContains = `
  AND ST_Contains(t.geom, region.whole)`

	noDistance   = `, NULL::float8`
	withDistance = `, d.dist`

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
	// whereExpr leads a CQL2 filter's condition (expr.go).
	whereExpr = `
  AND `
	afterCursor = `
  AND (t.name COLLATE "C", t.id) > ($?::text COLLATE "C", $?::bigint)`
	afterNearCursor = `
  AND (d.dist, t.name COLLATE "C", t.id) > ($?::float8, $?::text COLLATE "C", $?::bigint)`
	orderAndLimit = `
ORDER BY t.name COLLATE "C", t.id
LIMIT $?::bigint`
	nearOrderAndLimit = `
ORDER BY d.dist, t.name COLLATE "C", t.id
LIMIT $?::bigint`
	countThings = `SELECT count(*)`
)

// SearchStatement returns the SQL and the bind values Search sends for q,
// which must be valid, so that search-bench can send the very same statement
// straight to the database. Rows scan with ScanThing; there is one row more
// than q.Limit when a next page exists. A sorted query's rows carry its sort
// values after ScanThing's columns (sort.go).
func SearchStatement(q geo.Query) (string, []any) {
	var s statement
	s.hits(q.Filter)
	s.columns(q.IncludeGeometry, q.Output)
	s.add(distanceColumn(q.Filter))
	s.sortColumns(q.SortBy)
	s.from(q.Filter)
	return s.finish(q)
}

// CountStatement returns the SQL and bind values that count every thing f
// selects (Search's total), which must be valid: SearchStatement's filter
// without its columns, cursor, order and limit.
func CountStatement(f geo.Filter) (string, []any) {
	var s statement
	s.hits(f)
	s.add(countThings)
	s.from(f)
	s.filters(f)
	return s.sql.String(), s.args
}

// hits adds the CTEs that find the candidates of a point, nearest, box or
// area filter.
func (s *statement) hits(f geo.Filter) {
	switch {
	case f.Point != nil:
		s.add(thePoint, f.Point.Lng, f.Point.Lat)
	case f.BBox != nil || f.Area != nil:
		s.region(f)
		s.add(regionHits)
	}
}

// from adds the FROM clause of f's candidates, and the exactness checks of
// a point, a distance or a relation.
func (s *statement) from(f geo.Filter) {
	switch {
	case f.Point != nil && f.MaxDistanceM > 0:
		s.add(fromNearHits, f.MaxDistanceM, f.MaxDistanceM)
	case f.Point != nil:
		s.add(fromPointHits)
	case f.BBox != nil || f.Area != nil:
		s.add(fromRegionHits)
		switch f.Relation {
		case geo.Within:
			s.add(withinRegion)
		case geo.Contains:
			s.add(containsRegion)
		}
	default:
		s.add(fromThings)
	}
}

// region adds the CTEs region (the whole region and its bounds) and piece
// (the region cut up) of f's bbox or area.
func (s *statement) region(f geo.Filter) {
	if f.BBox != nil {
		s.add(boxRegion, f.BBox.MinLng, f.BBox.MinLat, f.BBox.MaxLng, f.BBox.MaxLat)
		return
	}
	s.add(areaRegion, f.Area.GeoJSON())
}

// WholeGeometryStatement answers a point, nearest or area query the naive
// way, on every candidate's whole geometry without the parts table, with
// the same other filters, columns and order as SearchStatement: ST_Contains
// for a point (through the things' GiST index); for a nearest search,
// ST_Contains or else ST_Distance on geography, for every thing; for an
// area, ST_Intersects, ST_Within or ST_Contains. The service never sends it;
// it is the reference that search-bench and the tests measure the parts
// against. q.Point, q.BBox or q.Area must be set.
func WholeGeometryStatement(q geo.Query) (string, []any) {
	var s statement
	switch {
	case q.Point != nil && q.MaxDistanceM > 0:
		s.add(thePoint, q.Point.Lng, q.Point.Lat)
	case q.BBox != nil || q.Area != nil:
		s.region(q.Filter)
	}
	s.columns(q.IncludeGeometry, q.Output)
	s.add(distanceColumn(q.Filter))
	switch {
	case q.Point != nil && q.MaxDistanceM > 0:
		s.add(fromWholeNear, q.MaxDistanceM, q.MaxDistanceM)
	case q.Point != nil:
		s.add(fromWholeGeometry, q.Point.Lng, q.Point.Lat)
	default:
		s.add(fromWholeRegion)
		switch q.Relation {
		case geo.Within:
			s.add(wholeWithin)
		case geo.Contains:
			s.add(wholeContains)
		}
	}
	return s.finish(q)
}

func distanceColumn(f geo.Filter) string {
	if f.Point != nil && f.MaxDistanceM > 0 {
		return withDistance
	}
	return noDistance
}

// finish adds the filters other than the point, the cursor, the order and
// the limit (one more than q.Limit tells whether a next page exists).
func (s *statement) finish(q geo.Query) (string, []any) {
	s.filters(q.Filter)
	if len(q.SortBy) > 0 {
		s.sortedTail(q)
		return s.sql.String(), s.args
	}
	nearest := q.Point != nil && q.MaxDistanceM > 0
	switch {
	case q.After != nil && nearest:
		s.add(afterNearCursor, q.After.DistanceM, q.After.Name, q.After.ID)
	case q.After != nil:
		s.add(afterCursor, q.After.Name, q.After.ID)
	}
	if nearest {
		s.add(nearOrderAndLimit, q.Limit+1)
	} else {
		s.add(orderAndLimit, q.Limit+1)
	}
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
	if f.Where != nil {
		s.add(whereExpr)
		s.expr(*f.Where)
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

// querier is what a page is read through: the pool, or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Search returns one page of things matching q. With q.WithTotal, the page
// and the count are read in one read-only REPEATABLE READ transaction, so
// that both see the same snapshot; without, one statement on the pool.
func (s *SearchService) Search(ctx context.Context, q geo.Query) (geo.Page, error) {
	if err := q.Filter.Validate(); err != nil {
		return geo.Page{}, err
	}
	if err := q.Output.Validate(); err != nil {
		return geo.Page{}, err
	}
	if err := q.ValidateSort(); err != nil {
		return geo.Page{}, err
	}
	if q.Limit <= 0 {
		return geo.Page{}, geo.Errorf(geo.Invalid, "page size must be positive")
	}
	if q.Area != nil {
		if err := s.checkArea(ctx, *q.Area); err != nil {
			return geo.Page{}, err
		}
	}
	if !q.WithTotal {
		return readPage(ctx, s.pool, q)
	}
	var page geo.Page
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var err error
		if page, err = readPage(ctx, tx, q); err != nil {
			return err
		}
		sql, args := CountStatement(q.Filter)
		return tx.QueryRow(ctx, sql, args...).Scan(&page.Total)
	})
	if err != nil {
		return geo.Page{}, classify(ctx, "search", err)
	}
	return page, nil
}

// Nearest searches are read in widening circles: first within
// nearRadii's first radius, then each next one, up to max_distance_m. The
// statement within a radius r ranks every thing within r, so its ranking
// is the true one's prefix of the things within r (any other thing is
// farther than r, so after all of them): once a circle holds a whole page
// (the page is cut, by its size or its byte budget), that page is the
// answer. Within 1,000 km of a point among 20,000 things, the whole circle
// measured every thing's distance (3 s on a loaded machine); the first
// circles hold a page after a few dozen (docs/BENCHMARKS.md). A search
// whose page the circles never fill costs at most a third more than the
// whole circle alone (each radius is 4 times the last).
const (
	nearFirstDivisor = 64
	nearGrowth       = 4
	nearFirstMin     = 2_000 // metres
)

// nearRadii returns the radii of a nearest search within maxDistance, the
// last being maxDistance.
func nearRadii(maxDistance float64) []float64 {
	var radii []float64
	for r := max(maxDistance/nearFirstDivisor, nearFirstMin); r < maxDistance; r *= nearGrowth {
		radii = append(radii, r)
	}
	return append(radii, maxDistance)
}

// readPage reads one page of q through db; a nearest search in widening
// circles (nearRadii) unless it is sorted otherwise.
func readPage(ctx context.Context, db querier, q geo.Query) (geo.Page, error) {
	if q.Point == nil || q.MaxDistanceM <= 0 || len(q.SortBy) > 0 {
		return readPageWithin(ctx, db, q)
	}
	radii := nearRadii(q.MaxDistanceM)
	for i, r := range radii {
		within := q
		within.MaxDistanceM = r
		page, err := readPageWithin(ctx, db, within)
		if err != nil || page.Next != nil || i == len(radii)-1 {
			return page, err
		}
	}
	panic("unreachable: nearRadii ends with the distance")
}

// readPageWithin reads one page of q through db with one statement.
func readPageWithin(ctx context.Context, db querier, q geo.Query) (geo.Page, error) {
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
	rows, err := db.Query(ctx, sql, args...)
	if err != nil {
		return geo.Page{}, classify(ctx, "search", err)
	}
	defer rows.Close()
	var page geo.Page
	var last []geo.SortValue // the sort values of the last thing of the page
	size := 0
	for rows.Next() {
		var t geo.Thing
		var vals []geo.SortValue
		if len(q.SortBy) > 0 {
			t, vals, err = scanSorted(rows, len(q.SortBy))
		} else {
			t, err = ScanThing(rows)
		}
		if err != nil {
			return geo.Page{}, classify(ctx, "search", err)
		}
		if len(page.Things) == q.Limit { // the row beyond the limit: a next page exists
			page.Next = cursorAfter(page.Things[q.Limit-1], last)
			break
		}
		page.Things = append(page.Things, t)
		last = vals
		if q.MaxBytes > 0 {
			for _, v := range rows.RawValues() {
				size += len(v)
			}
			if size >= q.MaxBytes {
				// Cut the page here; the rows not read are discarded as
				// they arrive, never held.
				page.Next = cursorAfter(t, vals)
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

// cursorAfter returns the position of t, whose sort values are vals, in
// the result order.
func cursorAfter(t geo.Thing, vals []geo.SortValue) *geo.Cursor {
	c := &geo.Cursor{Name: t.Name, ID: t.ID, Sort: vals}
	if t.DistanceM != nil {
		c.DistanceM = *t.DistanceM
	}
	return c
}

// checkArea returns an Invalid error, with PostGIS's reason and place,
// unless a is a valid polygon in the OGC sense. It is not repaired: the
// repaired area would be another question than the one asked.
func (s *SearchService) checkArea(ctx context.Context, a geo.Area) error {
	var valid bool
	var reason string
	var x, y float64
	if err := s.pool.QueryRow(ctx, areaValidity, a.GeoJSON()).Scan(&valid, &reason, &x, &y); err != nil {
		return classify(ctx, "check area", err)
	}
	if valid {
		return nil
	}
	if math.IsNaN(x) || math.IsNaN(y) {
		return geo.Errorf(geo.Invalid, "area is not a valid polygon: %s", reason)
	}
	return geo.Errorf(geo.Invalid, "area is not a valid polygon: %s at (%g %g)", reason, x, y)
}

// ScanThing scans one row of the statements SearchStatement returns.
func ScanThing(row pgx.CollectableRow) (geo.Thing, error) {
	var t geo.Thing
	err := row.Scan(&t.ID, &t.Collection, &t.Key, &t.Name, &t.Properties,
		&t.BBox.MinLng, &t.BBox.MinLat, &t.BBox.MaxLng, &t.BBox.MaxLat, &t.GeometryGeoJSON, &t.DistanceM)
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
