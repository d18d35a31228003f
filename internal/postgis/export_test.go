package postgis

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/geosearch/search/internal/geo"
)

// WriteBatch writes features as one import batch inside tx, for tests that
// look at the transaction afterwards. They go to the default collection.
func WriteBatch(ctx context.Context, tx pgx.Tx, features []geo.Feature) (geo.ImportResult, error) {
	var res geo.ImportResult
	if _, err := tx.Exec(ctx, openCollectionSQL, geo.DefaultCollection); err != nil {
		return res, err
	}
	batch := make([]pending, 0, len(features))
	for _, f := range features {
		p, err := newPending(f)
		if err != nil {
			return res, err
		}
		batch = append(batch, p)
	}
	return res, writeBatch(ctx, tx, geo.DefaultCollection, batch, &res)
}

// LastLag is the lag r measured at its last Ping.
func (r *Replica) LastLag() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lag
}

// CollectionAggregates is how many times s aggregated a collection's
// things (its count and box) since it was built.
func CollectionAggregates(s *SearchService) int64 { return s.collections.aggregates.Load() }

// WaitPolls is how many replay checks r's WaitFor calls made.
func (r *Replica) WaitPolls() int64 { return r.polls.Load() }

// WaitLoops is how many replay poll loops r started.
func (r *Replica) WaitLoops() int64 { return r.loops.Load() }
