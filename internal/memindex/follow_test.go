package memindex_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/geo/geotest"
	"github.com/geosearch/search/internal/memindex"
)

// liveWrite is the k-th write of TestReadsWhileWritesRun to the collection
// "live": a replace import, a plain import, a delete of one thing by key
// or a delete of the whole collection, each leaving names at the probe
// point that no other state has.
func liveWrite(ctx context.Context, store geo.SearchService, k int) error {
	sq := func(name, key string, d float64) geo.Feature { return geotest.Square(name, key, nil, d, d, 10-d, 10-d) }
	var err error
	switch k % 4 {
	case 0:
		src := &geotest.Source{Features: []geo.Feature{sq(fmt.Sprintf("g%03d-a", k), "a", 0), sq(fmt.Sprintf("g%03d-b", k), "b", 1), sq(fmt.Sprintf("g%03d-c", k), "c", 2)}}
		_, err = store.Import(ctx, geo.ImportOptions{Collection: "live", Replace: true}, src)
	case 1:
		_, err = store.Import(ctx, geo.ImportOptions{Collection: "live"}, &geotest.Source{Features: []geo.Feature{sq(fmt.Sprintf("g%03d-d", k), "d", 3)}})
	case 2:
		_, err = store.Delete(ctx, geo.DeleteRequest{Collection: "live", Keys: []string{"b"}})
	case 3:
		_, err = store.DeleteCollection(ctx, "live")
	}
	return err
}

// readRecord is one read of TestReadsWhileWritesRun: the names it got, the
// last write finished before it began (-1: none), whether it carried a
// token for that write, and the last write begun before it ended.
type readRecord struct {
	names      []string
	done, upTo int
	token      bool
	locate     bool
}

// TestReadsWhileWritesRun writes to a collection (replace imports, imports,
// deletes of things and of the collection) through the store, as another
// instance would, while reads run through the index. The store's answer
// after each write is that write's state (one writer: nothing else
// changes it). Every read must equal one state, not older than the write
// its token names (a read with a token) and not newer than the last write
// begun: never a mix of two states. It checks outcomes only, never
// timing; at the end, a read with a token must come from memory within a
// deadline.
func TestReadsWhileWritesRun(t *testing.T) {
	t.Parallel()
	store, pool := newService(t)
	importInto(t, store, "steady", false, geotest.Square("steady", "s", nil, 0, 0, 10, 10))
	mem, reg, c := indexed(t, store, onConfig(1<<30))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go reg.Run(ctx)

	p := geo.Point{Lat: 5, Lng: 5}
	q := geo.Query{Filter: geo.Filter{Point: &p, Collections: []string{"live", "steady"}}, Limit: 100}
	const writes = 60
	states := make([][]string, writes)        // the store's answer after each write
	positions := make([]geo.Position, writes) // the token of each write
	var done, begun atomic.Int64
	done.Store(-1)
	begun.Store(-1)
	writerErr := make(chan error, 1)
	go func() {
		defer close(writerErr)
		for k := range writes {
			begun.Store(int64(k))
			if err := liveWrite(ctx, store, k); err != nil {
				writerErr <- fmt.Errorf("write %d: %w", k, err)
				return
			}
			page, err := store.Search(ctx, q)
			if err != nil {
				writerErr <- err
				return
			}
			states[k] = names(page.Things)
			positions[k] = flushed(t, pool)
			done.Store(int64(k))
			time.Sleep(time.Duration(k%3) * 10 * time.Millisecond) // some states last a refresh or more
		}
	}()

	var mu sync.Mutex
	var reads []readRecord
	var wg sync.WaitGroup
	for r := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; done.Load() < writes-1; i++ {
				rec := readRecord{done: int(done.Load()), token: i%2 == 0, locate: (i/2+r)%2 == 0}
				rctx := context.Background()
				if rec.token {
					var mark *geo.ReadMark
					rctx, mark = geo.WithReadMark(rctx)
					if rec.done < 0 {
						rec.token = false
					} else {
						mark.Set(positions[rec.done])
					}
				}
				got, err := read(rctx, mem, q, rec.locate)
				if err != nil {
					t.Error(err)
					return
				}
				rec.names, rec.upTo = got, int(begun.Load())
				mu.Lock()
				reads = append(reads, rec)
				mu.Unlock()
			}
		}()
	}
	if err := <-writerErr; err != nil {
		t.Fatal(err)
	}
	wg.Wait()

	for _, rec := range reads {
		from := -1
		if rec.token {
			from = rec.done
		}
		if !matchesAState(rec.names, states, from, rec.upTo) {
			t.Errorf("read (token %v, locate %v) after write %d, before write %d ended: %v, which is no state from %d to %d",
				rec.token, rec.locate, rec.done, rec.upTo, rec.names, from, rec.upTo)
		}
	}
	fromMemory := c.sum("memory")
	t.Logf("%d reads during %d writes, %d from memory", len(reads), writes, fromMemory)

	// Once the writes stop, a read with the last write's token is answered
	// from memory, once the database has written past it (here, another
	// collection's import).
	importInto(t, store, "other", false, geotest.Square("other", "o", nil, 50, 50, 60, 60))
	deadline := time.Now().Add(30 * time.Second)
	for c.sum("memory") == fromMemory {
		if time.Now().After(deadline) {
			t.Fatal("30 s after the last write, reads still go to the database")
		}
		rctx, mark := geo.WithReadMark(context.Background())
		mark.Set(positions[writes-1])
		got, err := read(rctx, mem, q, false)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, states[writes-1]) {
			t.Fatalf("after the last write: %v, want %v", got, states[writes-1])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// flushed is the database's flushed WAL position now: the token of a write
// that returned before (postgis.Replica.WritePosition on a primary).
func flushed(t testing.TB, pool *pgxpool.Pool) geo.Position {
	var s string
	if err := pool.QueryRow(context.Background(), "SELECT pg_current_wal_flush_lsn()::text").Scan(&s); err != nil {
		t.Error(err)
		return 0
	}
	p, err := memindex.ParseLSN(s)
	if err != nil {
		t.Error(err)
	}
	return geo.Position(p)
}

// read is the names q finds, by Search or by Locate.
func read(ctx context.Context, svc geo.SearchService, q geo.Query, locate bool) ([]string, error) {
	if !locate {
		page, err := svc.Search(ctx, q)
		return names(page.Things), err
	}
	found, err := svc.Locate(ctx, geo.LocateQuery{Filter: geo.Filter{Collections: q.Collections}, Points: []geo.Point{*q.Point}, Limit: q.Limit})
	if err != nil {
		return nil, err
	}
	return names(found[0]), nil
}

func names(ts []geo.Thing) []string {
	out := []string{}
	for _, t := range ts {
		out = append(out, t.Name)
	}
	return out
}

// matchesAState reports whether got is one of states[from..upTo]; state
// -1 is before the first write: only "steady".
func matchesAState(got []string, states [][]string, from, upTo int) bool {
	for k := from; k <= upTo; k++ {
		want := []string{"steady"}
		if k >= 0 {
			want = states[k]
		}
		if slices.Equal(got, want) {
			return true
		}
	}
	return false
}
