package postgis

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/geosearch/search/internal/geo"
)

// collectionPropertiesSQL reads the keys of every thing's properties in
// one collection (through the (collection, key) index's leading column) and
// the JSON types of their values. Keys sort byte-wise, as names do.
const collectionPropertiesSQL = `SELECT p.key COLLATE "C" AS key, array_agg(DISTINCT jsonb_typeof(p.value) ORDER BY jsonb_typeof(p.value))
FROM thing t CROSS JOIN LATERAL jsonb_each(t.properties) p
WHERE t.collection = $1::text
GROUP BY 1
ORDER BY 1
LIMIT $2::bigint`

// CollectionProperties implements geo.PropertyLister.
func (s *SearchService) CollectionProperties(ctx context.Context, collection string) ([]geo.Property, error) {
	if err := geo.ValidateCollectionName(collection); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, collectionPropertiesSQL, collection, geo.MaxCollectionProperties)
	if err != nil {
		return nil, classify(ctx, "collection properties", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (geo.Property, error) {
		var p geo.Property
		err := row.Scan(&p.Key, &p.Types)
		return p, err
	})
	if err != nil {
		return nil, classify(ctx, "collection properties", fmt.Errorf("scan: %w", err))
	}
	return out, nil
}

var _ geo.PropertyLister = (*SearchService)(nil)
