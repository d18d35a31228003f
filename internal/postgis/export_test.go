package postgis

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/geosearch/search/internal/geo"
)

// WriteBatch writes features as one import batch inside tx, for tests that
// look at the transaction afterwards.
func WriteBatch(ctx context.Context, tx pgx.Tx, features []geo.Feature) (geo.ImportResult, error) {
	var res geo.ImportResult
	batch := make([]pending, 0, len(features))
	for _, f := range features {
		p, err := newPending(f)
		if err != nil {
			return res, err
		}
		batch = append(batch, p)
	}
	return res, writeBatch(ctx, tx, batch, &res)
}
