package postgis

import (
	"github.com/jackc/pgx/v5"

	"github.com/geosearch/search/internal/geo"
)

// A sorted search (geo.Query.SortBy) orders by the sort keys' values, then
// id, in the order geo.SortKey defines, from the constant fragments below.
// Each key is three expressions on the thing's properties, the property's
// name a bind parameter: its kind (1 number, 2 string, 3 boolean, as
// geo.SortKind numbers them; NULL for a missing value, which sorts last in
// either direction), its numeric value (numbers only) and its text (strings
// and booleans, byte-wise: "false" before "true"). Within one kind only
// one of the two values is not NULL, so ordering by (kind, number, text)
// is ordering by the value.
//
// Every page selects each key's kind and text (->>, a number's digits as
// stored) after the other columns, and the cursor carries them: the next
// page starts after the last row's values and id, a keyset condition
// written as an OR of one branch per key (the keys before it equal, this
// one after) and a last branch (every key equal, a greater id). A cursor's
// value is compared with the expression of its own kind, a number as
// numeric, so the comparison is exact. No OFFSET: a page costs the same
// wherever it is. Property values are not indexed, so a sorted page sorts
// every thing the filter selects (a top-N sort); the filter's indexes
// still find them.
const (
	sortKind   = `(CASE jsonb_typeof(t.properties -> $?::text) WHEN 'number' THEN 1 WHEN 'string' THEN 2 WHEN 'boolean' THEN 3 END)`
	sortNumber = `(CASE WHEN jsonb_typeof(t.properties -> $?::text) = 'number' THEN (t.properties ->> $?::text)::numeric END)`
	sortText   = `((CASE WHEN jsonb_typeof(t.properties -> $?::text) IN ('string', 'boolean') THEN t.properties ->> $?::text END) COLLATE "C")`
	sortValue  = `t.properties ->> $?::text`

	sortComma     = `, `
	sortOrderBy   = "\nORDER BY "
	sortAsc       = ` ASC NULLS LAST, `
	sortDesc      = ` DESC NULLS LAST, `
	sortByIDLimit = `t.id
LIMIT $?::bigint`

	sortAfterOpen  = "\n  AND ("
	sortAfterClose = `)`
	sortOr         = ` OR `
	sortAnd        = ` AND `
	sortOpen       = `(`
	sortClose      = `)`
	sortIsNull     = ` IS NULL`
	sortKindEq     = ` = $?::int`
	sortKindGt     = ` > $?::int`
	sortKindLt     = ` < $?::int`
	sortEq         = ` = `
	sortGt         = ` > `
	sortLt         = ` < `
	sortNumberV    = `$?::numeric`
	sortTextV      = `($?::text COLLATE "C")`
	sortIDAfter    = `t.id > $?::bigint`
)

// sortColumns adds each sort key's kind and text to the select list.
func (s *statement) sortColumns(by []geo.SortKey) {
	for _, k := range by {
		s.add(sortComma)
		s.add(sortKind, k.Property)
		s.add(sortComma)
		s.add(sortValue, k.Property)
	}
}

// sortedTail adds the keyset condition of q.After, the order and the limit
// of a sorted search.
func (s *statement) sortedTail(q geo.Query) {
	if q.After != nil {
		s.sortAfter(q.SortBy, *q.After)
	}
	s.add(sortOrderBy)
	for _, k := range q.SortBy {
		dir := sortAsc
		if k.Desc {
			dir = sortDesc
		}
		s.add(sortKind, k.Property)
		s.add(dir)
		s.add(sortNumber, k.Property, k.Property)
		s.add(dir)
		s.add(sortText, k.Property, k.Property)
		s.add(dir)
	}
	s.add(sortByIDLimit, q.Limit+1)
}

// sortAfter adds the condition that keeps the rows after c.
func (s *statement) sortAfter(by []geo.SortKey, c geo.Cursor) {
	s.add(sortAfterOpen)
	for i, k := range by {
		v := c.Sort[i]
		if v.Kind == geo.SortMissing {
			continue // nothing sorts after a missing value but its ties
		}
		s.add(sortOpen)
		s.sortEqualBefore(by[:i], c)
		s.add(sortOpen)
		s.add(sortKind, k.Property)
		s.add(sortIsNull)
		s.add(sortOr)
		s.add(sortKind, k.Property)
		if k.Desc {
			s.add(sortKindLt, int(v.Kind))
		} else {
			s.add(sortKindGt, int(v.Kind))
		}
		s.add(sortOr)
		s.add(sortOpen)
		s.add(sortKind, k.Property)
		s.add(sortKindEq, int(v.Kind))
		s.add(sortAnd)
		cmp := sortGt
		if k.Desc {
			cmp = sortLt
		}
		s.sortCompare(k, v, cmp)
		s.add(sortClose)
		s.add(sortClose)
		s.add(sortClose)
		s.add(sortOr)
	}
	s.add(sortOpen)
	s.sortEqualBefore(by, c)
	s.add(sortIDAfter, c.ID)
	s.add(sortClose)
	s.add(sortAfterClose)
}

// sortEqualBefore adds "key = value AND " for each of by, with c's values.
func (s *statement) sortEqualBefore(by []geo.SortKey, c geo.Cursor) {
	for i, k := range by {
		v := c.Sort[i]
		s.add(sortKind, k.Property)
		if v.Kind == geo.SortMissing {
			s.add(sortIsNull)
		} else {
			s.add(sortKindEq, int(v.Kind))
			s.add(sortAnd)
			s.sortCompare(k, v, sortEq)
		}
		s.add(sortAnd)
	}
}

// sortCompare adds "value(k) op v" with the expression of v's kind.
func (s *statement) sortCompare(k geo.SortKey, v geo.SortValue, op string) {
	if v.Kind == geo.SortNumber {
		s.add(sortNumber, k.Property, k.Property)
		s.add(op)
		s.add(sortNumberV, v.Text)
		return
	}
	s.add(sortText, k.Property, k.Property)
	s.add(op)
	s.add(sortTextV, v.Text)
}

// scanSorted scans a row of a sorted statement: ScanThing's columns, then
// each of n sort keys' kind and text.
func scanSorted(row pgx.CollectableRow, n int) (geo.Thing, []geo.SortValue, error) {
	var t geo.Thing
	kinds := make([]*int32, n)
	texts := make([]*string, n)
	dest := []any{&t.ID, &t.Collection, &t.Key, &t.Name, &t.Properties,
		&t.BBox.MinLng, &t.BBox.MinLat, &t.BBox.MaxLng, &t.BBox.MaxLat, &t.GeometryGeoJSON, &t.DistanceM}
	for i := range n {
		dest = append(dest, &kinds[i], &texts[i])
	}
	if err := row.Scan(dest...); err != nil {
		return t, nil, err
	}
	vals := make([]geo.SortValue, n)
	for i := range n {
		if kinds[i] != nil && texts[i] != nil {
			vals[i] = geo.SortValue{Kind: geo.SortKind(*kinds[i]), Text: *texts[i]}
		}
	}
	return t, vals, nil
}
