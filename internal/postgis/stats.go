package postgis

import (
	"context"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/geosearch/search/internal/geo"
)

const statsSQL = `SELECT (SELECT count(*) FROM thing), (SELECT count(*) FROM thing_part)`

// statsMaxAge is how old the counts Stats returns may be. Counting scans
// both tables; without this bound every Monitor call would, and a client
// calling Monitor in a loop would keep the database busy counting.
const statsMaxAge = 5 * time.Second

// statsTimeout bounds one count, which runs for every caller waiting on it
// and so is not cancelled with the first caller's request.
const statsTimeout = 30 * time.Second

// statsCache keeps the last counts: at most one count runs at a time per
// service, shared by every caller that asks meanwhile, and an import that
// this service commits makes the next call count again.
type statsCache struct {
	maxAge time.Duration
	flight singleflight.Group

	mu  sync.Mutex
	gen uint64 // bumped by every committed import
	st  geo.Stats
	at  time.Time // when st was counted; zero: never
	of  uint64    // the gen st was counted in
}

// cached returns the current generation and the counts kept, and whether
// they are of that generation and younger than maxAge.
func (c *statsCache) cached() (gen uint64, st geo.Stats, fresh bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen, c.st, !c.at.IsZero() && c.of == c.gen && time.Since(c.at) < c.maxAge
}

// invalidate makes the next Stats count again.
func (c *statsCache) invalidate() {
	c.mu.Lock()
	c.gen++
	c.mu.Unlock()
}

// Stats counts things and parts, as of at most statsMaxAge ago (or of this
// service's last committed import, whichever is later).
func (s *SearchService) Stats(ctx context.Context) (geo.Stats, error) {
	c := &s.stats
	gen, st, fresh := c.cached()
	if fresh {
		return st, nil
	}
	ch := c.flight.DoChan(strconv.FormatUint(gen, 10), func() (any, error) {
		// A count that ended between this caller's look at the cache and
		// its DoChan has left the flight already: look again, or every
		// caller that came in that window would count once more.
		if gen2, st, fresh := c.cached(); fresh && gen2 == gen {
			return st, nil
		}
		qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), statsTimeout)
		defer cancel()
		var st geo.Stats
		if err := s.pool.QueryRow(qctx, statsSQL).Scan(&st.Things, &st.Parts); err != nil {
			return nil, classify(qctx, "count things", err)
		}
		c.mu.Lock()
		if c.gen == gen {
			c.st, c.at, c.of = st, time.Now(), gen
		}
		c.mu.Unlock()
		return st, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return geo.Stats{}, r.Err
		}
		return r.Val.(geo.Stats), nil
	case <-ctx.Done():
		return geo.Stats{}, classify(ctx, "count things", ctx.Err())
	}
}
