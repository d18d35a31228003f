package postgis

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/geosearch/search/internal/geo"
)

// A Locate batch is one statement: the points travel as two float8 arrays,
// unnest ... WITH ORDINALITY numbers them, and a lateral subquery runs the
// point query of SearchStatement (the same parts lookup, the same exactness
// rule, the same filters, order and limit) for each of them. A point's rows
// are therefore exactly the first page Search returns for it. Rows come
// ordered by the point's ordinal, then (name, id).
const (
	locatePoints = `WITH pts AS (
    SELECT u.ord, ST_SetSRID(ST_MakePoint(u.lng, u.lat), 4326) AS g
    FROM unnest($?::float8[], $?::float8[]) WITH ORDINALITY AS u(lng, lat, ord)
)
`
	locateFrom = `, pts.ord
FROM pts CROSS JOIN LATERAL (
  SELECT t.*
  FROM (
    SELECT p.thing_id, bool_or(ST_Contains(p.geom, pts.g)) AS inside
    FROM thing_part p
    WHERE ST_Intersects(p.geom, pts.g)
    GROUP BY p.thing_id
  ) hit CROSS JOIN LATERAL (SELECT * FROM thing WHERE thing.id = hit.thing_id OFFSET 0) t
  WHERE (hit.inside OR ST_Contains(t.geom, pts.g))`
	locateOrderAndLimit = `
  ORDER BY t.name COLLATE "C", t.id
  LIMIT $?::bigint
) t
ORDER BY pts.ord, t.name COLLATE "C", t.id`

	// With a distance, the lateral subquery is SearchStatement's nearest
	// query instead (nearHits, fromNearHits) for each point.
	locateNearFrom = `, pts.ord
FROM pts CROSS JOIN LATERAL (
  SELECT t.*, d.dist
  FROM (
    SELECT c.thing_id, bool_or(c.inside) AS inside, bool_or(c.touches) AS touches, min(c.dist) AS dist
    FROM (
      SELECT p.thing_id, ST_Contains(p.geom, pts.g) AS inside, true AS touches, NULL::float8 AS dist
      FROM thing_part p
      WHERE ST_Intersects(p.geom, pts.g)
      UNION ALL
      SELECT g.thing_id, false, false, ST_Distance(g.geog, pts.g::geography)
      FROM thing_part_geog g
      WHERE ST_DWithin(g.geog, pts.g::geography, $?::float8)
    ) c
    GROUP BY c.thing_id
  ) hit CROSS JOIN LATERAL (SELECT * FROM thing WHERE thing.id = hit.thing_id OFFSET 0) t
  CROSS JOIN LATERAL (
    SELECT CASE WHEN hit.inside OR (hit.touches AND ST_Contains(t.geom, pts.g)) THEN 0::float8 ELSE hit.dist END AS dist
  ) d
  WHERE d.dist <= $?::float8`
	locateNearOrderAndLimit = `
  ORDER BY d.dist, t.name COLLATE "C", t.id
  LIMIT $?::bigint
) t
ORDER BY pts.ord, t.dist, t.name COLLATE "C", t.id`
	locateDistance = `, t.dist`
)

// LocateStatement returns the SQL and bind values Locate sends for q, which
// must be valid. Each row holds the columns ScanThing reads, then the
// point's 1-based ordinal.
func LocateStatement(q geo.LocateQuery) (string, []any) {
	lngs := make([]float64, len(q.Points))
	lats := make([]float64, len(q.Points))
	for i, p := range q.Points {
		lngs[i], lats[i] = p.Lng, p.Lat
	}
	var s statement
	s.add(locatePoints, lngs, lats)
	s.columns(q.IncludeGeometry, q.Output)
	if q.MaxDistanceM > 0 {
		s.add(locateDistance)
		s.add(locateNearFrom, q.MaxDistanceM, q.MaxDistanceM)
		s.filters(q.Filter)
		s.add(locateNearOrderAndLimit, q.Limit)
		return s.sql.String(), s.args
	}
	s.add(noDistance)
	s.add(locateFrom)
	s.filters(q.Filter)
	s.add(locateOrderAndLimit, q.Limit)
	return s.sql.String(), s.args
}

// Locate answers a batch of points with one statement (LocateStatement), or
// for a nearest Locate one per widening circle (locateNearest).
func (s *SearchService) Locate(ctx context.Context, q geo.LocateQuery) ([][]geo.Thing, error) {
	if err := q.ValidateScope(); err != nil {
		return nil, err
	}
	f := q.Filter
	f.Point = nil
	if q.Limit <= 0 {
		return nil, geo.Errorf(geo.Invalid, "limit must be positive")
	}
	for i, p := range q.Points {
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("point %d: %w", i, err)
		}
	}
	out := make([][]geo.Thing, len(q.Points))
	if len(q.Points) == 0 {
		return out, nil
	}
	q.Filter = f
	if q.MaxDistanceM <= 0 {
		return s.locateWithin(ctx, q)
	}
	return s.locateNearest(ctx, q)
}

// locateNearest answers a nearest Locate in widening circles, as Search
// (nearRadii): each point is answered by the first circle that holds its
// limit of things, or by the last. The answers are those of one statement
// within the whole distance.
func (s *SearchService) locateNearest(ctx context.Context, q geo.LocateQuery) ([][]geo.Thing, error) {
	out := make([][]geo.Thing, len(q.Points))
	answered := len(q.Points) // a byte budget may answer fewer
	pending := make([]int, len(q.Points))
	for i := range pending {
		pending[i] = i
	}
	radii := nearRadii(q.MaxDistanceM)
	for ri, r := range radii {
		within := q
		within.MaxDistanceM = r
		within.Points = make([]geo.Point, len(pending))
		for k, i := range pending {
			within.Points[k] = q.Points[i]
		}
		got, err := s.locateWithin(ctx, within)
		if err != nil {
			return nil, err
		}
		if len(got) < len(pending) {
			answered = pending[len(got)]
		}
		next := pending[:0]
		for k, things := range got {
			i := pending[k]
			out[i] = things
			if len(things) < q.Limit && ri < len(radii)-1 {
				next = append(next, i)
			}
		}
		pending = next
		if len(pending) == 0 {
			break
		}
	}
	return out[:answered], nil
}

// locateWithin answers a Locate with one statement (LocateStatement).
func (s *SearchService) locateWithin(ctx context.Context, q geo.LocateQuery) ([][]geo.Thing, error) {
	out := make([][]geo.Thing, len(q.Points))
	sql, args := LocateStatement(q)
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, classify(ctx, "locate", err)
	}
	defer rows.Close()
	size := 0
	var cur int64 // the point of the last row read
	for rows.Next() {
		t, ord, err := ScanLocated(rows)
		if err != nil {
			return nil, classify(ctx, "locate", err)
		}
		if ord != cur && q.MaxBytes > 0 && size >= q.MaxBytes {
			// Rows come in point order, so every point before this row's
			// is answered: stop with those. The rows not read are discarded
			// as they arrive, never held.
			out = out[:ord-1]
			break
		}
		cur = ord
		out[ord-1] = append(out[ord-1], t)
		if q.MaxBytes > 0 {
			for _, v := range rows.RawValues() {
				size += len(v)
			}
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, classify(ctx, "locate", err)
	}
	return out, nil
}

// ScanLocated scans one row of LocateStatement: a thing, as ScanThing, and
// the 1-based ordinal of the point it answers.
func ScanLocated(row pgx.CollectableRow) (geo.Thing, int64, error) {
	var ord int64
	var t geo.Thing
	err := row.Scan(&t.ID, &t.Collection, &t.Key, &t.Name, &t.Properties,
		&t.BBox.MinLng, &t.BBox.MinLat, &t.BBox.MaxLng, &t.BBox.MaxLat, &t.GeometryGeoJSON, &t.DistanceM, &ord)
	return t, ord, err
}
