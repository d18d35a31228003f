package postgis

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/geosearch/search/internal/geo"
)

// A Locate batch is one statement: the points travel as two float8 arrays,
// unnest ... WITH ORDINALITY numbers them (pts, named pt in the lateral
// subquery), and a lateral subquery runs the point query of SearchStatement
// (pointCandidates, nearCandidates: the same text, the same parts lookup,
// the same exactness rule, the same filters, order and limit) for each of
// them. A point's rows are therefore exactly the first page Search returns
// for it. Rows come ordered by the point's ordinal, then (name, id).
const (
	locatePoints = `WITH pts AS (
    SELECT u.ord, ST_SetSRID(ST_MakePoint(u.lng, u.lat), 4326) AS g
    FROM unnest($?::float8[], $?::float8[]) WITH ORDINALITY AS u(lng, lat, ord)
)
`
	locateFrom = `, pt.ord
FROM pts AS pt CROSS JOIN LATERAL (
  SELECT t.*
  FROM ` + pointCandidates
	locateOrderAndLimit = `
  ORDER BY t.name COLLATE "C", t.id
  LIMIT $?::bigint
) t
ORDER BY pt.ord, t.name COLLATE "C", t.id`

	// With a distance, each point's subquery is the nearest query.
	locateNearFrom = `, pt.ord
FROM pts AS pt CROSS JOIN LATERAL (
  SELECT t.*, d.dist
  FROM ` + nearCandidates
	locateNearOrderAndLimit = `
  ORDER BY d.dist, t.name COLLATE "C", t.id
  LIMIT $?::bigint
) t
ORDER BY pt.ord, t.dist, t.name COLLATE "C", t.id`
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
