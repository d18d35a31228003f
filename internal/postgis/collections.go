package postgis

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/singleflight"

	"github.com/geosearch/search/internal/geo"
)

// A collection's count and bounding box are aggregated from its things
// (a count column kept by every writer would serialize imports on one
// row), but not per request: every write into a collection moves its
// updated_at in the same transaction, so an aggregate stays true for as
// long as the row's updated_at is the one it was computed with. A request
// reads the row by its primary key (or the small collection table, to
// list them) and aggregates only a collection that changed since.
const (
	collectionRowSQL  = `SELECT updated_at FROM collection WHERE name = $1::text`
	collectionRowsSQL = `SELECT name, updated_at FROM collection ORDER BY name`
	// collectionAggregateSQL reads the row and its things in one snapshot,
	// so the aggregate belongs to the updated_at it returns. The unique
	// (collection, key) index leads with the collection.
	collectionAggregateSQL = `SELECT c.updated_at, count(t.id),
       min(t.min_lng), min(t.min_lat), max(t.max_lng), max(t.max_lat)
FROM collection c LEFT JOIN thing t ON t.collection = c.name
WHERE c.name = $1::text
GROUP BY c.updated_at`
)

// collectionCache keeps each collection's aggregate with the updated_at it
// belongs to. Concurrent misses of one collection aggregate once.
type collectionCache struct {
	flight     singleflight.Group
	aggregates atomic.Int64 // aggregates run, for tests

	mu   sync.Mutex
	aggs map[string]geo.Collection
}

func (c *collectionCache) get(name string, updated time.Time) (geo.Collection, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a, ok := c.aggs[name]
	return a, ok && a.Updated.Equal(updated)
}

func (c *collectionCache) put(a geo.Collection) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.aggs == nil {
		c.aggs = map[string]geo.Collection{}
	}
	if old, ok := c.aggs[a.Name]; !ok || !old.Updated.After(a.Updated) {
		c.aggs[a.Name] = a
	}
}

// retain forgets the collections not in names (deleted ones).
func (c *collectionCache) retain(names map[string]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for n := range c.aggs {
		if !names[n] {
			delete(c.aggs, n)
		}
	}
}

// Collection returns one collection with its count and bounding box: one
// read of its row by primary key, and an aggregate of its things only when
// it changed since the last one.
func (s *SearchService) Collection(ctx context.Context, name string) (geo.Collection, error) {
	if err := geo.ValidateCollectionName(name); err != nil {
		return geo.Collection{}, err
	}
	var updated time.Time
	err := s.pool.QueryRow(ctx, collectionRowSQL, name).Scan(&updated)
	if errors.Is(err, pgx.ErrNoRows) {
		return geo.Collection{}, geo.Errorf(geo.NotFound, "there is no collection %q", name)
	}
	if err != nil {
		return geo.Collection{}, classify(ctx, "read collection", err)
	}
	return s.collectionAt(ctx, name, updated)
}

// Collections lists every collection, by name, with its count and
// bounding box (see Collection).
func (s *SearchService) Collections(ctx context.Context) ([]geo.Collection, error) {
	rows, err := s.pool.Query(ctx, collectionRowsSQL)
	if err != nil {
		return nil, classify(ctx, "list collections", err)
	}
	type row struct {
		name    string
		updated time.Time
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		return x, r.Scan(&x.name, &x.updated)
	})
	if err != nil {
		return nil, classify(ctx, "list collections", err)
	}
	out := make([]geo.Collection, 0, len(list))
	names := make(map[string]bool, len(list))
	for _, r := range list {
		names[r.name] = true
		c, err := s.collectionAt(ctx, r.name, r.updated)
		if geo.ErrorCode(err) == geo.NotFound {
			continue // deleted since the list was read
		}
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	s.collections.retain(names)
	return out, nil
}

// collectionAt returns collection name as of updated: from the cache, or
// aggregated (then as of its current updated_at, which may be later).
func (s *SearchService) collectionAt(ctx context.Context, name string, updated time.Time) (geo.Collection, error) {
	if c, ok := s.collections.get(name, updated); ok {
		return c, nil
	}
	v, err, _ := s.collections.flight.Do(name, func() (any, error) {
		return s.aggregateCollection(context.WithoutCancel(ctx), name)
	})
	if err != nil {
		return geo.Collection{}, err
	}
	return v.(geo.Collection), nil
}

func (s *SearchService) aggregateCollection(ctx context.Context, name string) (geo.Collection, error) {
	s.collections.aggregates.Add(1)
	c := geo.Collection{Name: name}
	var minLng, minLat, maxLng, maxLat *float64
	err := s.pool.QueryRow(ctx, collectionAggregateSQL, name).Scan(&c.Updated, &c.Count, &minLng, &minLat, &maxLng, &maxLat)
	if errors.Is(err, pgx.ErrNoRows) {
		return c, geo.Errorf(geo.NotFound, "there is no collection %q", name)
	}
	if err != nil {
		return c, classify(ctx, "count collection", fmt.Errorf("collection %q: %w", name, err))
	}
	if minLng != nil && minLat != nil && maxLng != nil && maxLat != nil {
		c.BBox = &geo.BBox{MinLng: *minLng, MinLat: *minLat, MaxLng: *maxLng, MaxLat: *maxLat}
	}
	s.collections.put(c)
	return c, nil
}
