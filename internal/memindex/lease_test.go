package memindex_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/geo/geotest"
	"github.com/geosearch/search/internal/memindex"
	"github.com/geosearch/search/internal/postgis"
)

// instance is one search-server's index as the server wires it: a
// registry with peers on the primary, running, and listening.
type instance struct {
	svc    *memindex.SearchService
	reg    *memindex.Registry
	counts *counts
	stop   func() // ends Run and Listen and waits for them
}

func leaseConfig(mode string, lease time.Duration) memindex.Config {
	return memindex.Config{Mode: mode, BudgetBytes: 1 << 30, PollInterval: 250 * time.Millisecond, Lease: lease}
}

// newInstance builds an instance on store and pool; run starts its loops
// (stopped at the test's end).
func newInstance(t *testing.T, store *postgis.SearchService, pool *pgxpool.Pool, cfg memindex.Config, run bool) *instance {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	c := &counts{}
	reg := memindex.NewRegistry(store, cfg, logger)
	reg.UsePeers(memindex.NewPeers(postgis.NewIndexPeers(pool, pool), cfg.Lease, logger, c))
	in := &instance{svc: memindex.NewSearchService(store, reg, c), reg: reg, counts: c, stop: func() {}}
	if run {
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() { reg.Run(ctx) })
		wg.Go(func() { reg.Listen(ctx) })
		var once sync.Once
		in.stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
		t.Cleanup(in.stop)
	}
	return in
}

func (c *counts) get(name string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[name]
}

// waitUntil polls cond until it holds, failing after a deadline.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// rows counts memindex_peer's rows, and those not expired.
func rows(t *testing.T, pool *pgxpool.Pool) (all, live int) {
	t.Helper()
	if err := pool.QueryRow(context.Background(),
		`SELECT count(*), count(*) FILTER (WHERE expires > now()) FROM memindex_peer`).Scan(&all, &live); err != nil {
		t.Fatal(err)
	}
	return all, live
}

func inMemory(reg *memindex.Registry, collection string) bool {
	for _, s := range reg.Status() {
		if s.Collection == collection && s.InMemory {
			return true
		}
	}
	return false
}

// pointSearch searches collection at (x, y) without a token and returns
// the names found.
func pointSearch(t *testing.T, svc geo.SearchService, collection string, x, y float64) []string {
	t.Helper()
	p := geo.Point{Lng: x, Lat: y}
	page, err := svc.Search(context.Background(), geo.Query{Filter: geo.Filter{Point: &p, Collections: []string{collection}}, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	return names(page.Things)
}

// TestReadsOnAnotherInstanceSeeTheWrite: two instances on one database;
// after each write through A returns (imports, a replacement by key, a
// delete, a replace import, a collection delete), a read without a token
// through B at once sees it, every time, and B answers from memory.
func TestReadsOnAnotherInstanceSeeTheWrite(t *testing.T) {
	t.Parallel()
	store, pool := newService(t)
	importInto(t, store, "c", false, geotest.Square("base", "base", nil, 100, 0, 101, 1))
	a := newInstance(t, store, pool, leaseConfig("on", 2*time.Second), true)
	b := newInstance(t, store, pool, leaseConfig("on", 2*time.Second), true)
	waitUntil(t, "both leased, c in memory on B", func() bool {
		return a.reg.Leased() && b.reg.Leased() && inMemory(b.reg, "c")
	})
	ctx := context.Background()
	sq := func(i int, name string) geo.Feature {
		x := float64(i%60) * 2
		return geotest.Square(name, fmt.Sprint(i), nil, x, 10, x+1, 11)
	}
	for i := range 40 {
		x := float64(i%60)*2 + 0.5
		name := fmt.Sprintf("s%d", i)
		importInto(t, a.svc, "c", false, sq(i, name))
		if got := pointSearch(t, b.svc, "c", x, 10.5); len(got) != 1 || got[0] != name {
			t.Fatalf("write %d: B found %v, want [%s]", i, got, name)
		}
		switch i % 4 {
		case 1: // replaced by key
			importInto(t, a.svc, "c", false, sq(i, name+"r"))
			if got := pointSearch(t, b.svc, "c", x, 10.5); len(got) != 1 || got[0] != name+"r" {
				t.Fatalf("replacement %d: B found %v", i, got)
			}
		case 2:
			if _, err := a.svc.Delete(ctx, geo.DeleteRequest{Collection: "c", Keys: []string{fmt.Sprint(i)}}); err != nil {
				t.Fatal(err)
			}
			if got := pointSearch(t, b.svc, "c", x, 10.5); len(got) != 0 {
				t.Fatalf("delete %d: B found %v", i, got)
			}
		case 3: // a collection made and deleted
			importInto(t, a.svc, "d", true, sq(i, name))
			if got := pointSearch(t, b.svc, "d", x, 10.5); len(got) != 1 {
				t.Fatalf("import into d %d: B found %v", i, got)
			}
			if _, err := a.svc.DeleteCollection(ctx, "d"); err != nil {
				t.Fatal(err)
			}
			if got := pointSearch(t, b.svc, "d", x, 10.5); len(got) != 0 {
				t.Fatalf("delete of d %d: B found %v", i, got)
			}
		}
	}
	mem, db := b.counts.sum("memory"), b.counts.sum("database")
	t.Logf("B: %d reads from memory, %d from the database; A waited on %d writes", mem, db, a.reg.Peers().Waits())
	if mem == 0 {
		t.Errorf("B answered nothing from memory (%d from the database): the test proved nothing", db)
	}
	if a.reg.Peers().Waits() == 0 {
		t.Errorf("A never waited for B")
	}
	// A clean stop removes the row at once.
	b.stop()
	a.stop()
	if all, _ := rows(t, pool); all != 0 {
		t.Errorf("%d rows after both stopped, want 0", all)
	}
}

// TestAStoppedPeerDelaysWritesUntilItsLeaseLapses: an instance that
// heartbeated once and then stopped (no refresh, no heartbeat: as if
// frozen or killed) holds a write through another instance back until its
// row has expired by the database's clock, not forever; its lease has
// lapsed by then, so it answers reads without a token from the database,
// which has the write, while reads with a token still may use memory.
func TestAStoppedPeerDelaysWritesUntilItsLeaseLapses(t *testing.T) {
	t.Parallel()
	store, pool := newService(t)
	importInto(t, store, "c", false, geotest.Square("base", "base", nil, 0, 0, 1, 1))
	a := newInstance(t, store, pool, leaseConfig("on", 2*time.Second), true)
	stopped := newInstance(t, store, pool, leaseConfig("on", 3*time.Second), false)
	refresh(t, stopped.reg)
	ctx := context.Background()
	if err := stopped.reg.Heartbeat(ctx); err != nil { // starts the lease's run
		t.Fatal(err)
	}
	refresh(t, stopped.reg) // a set read after the run began
	if err := stopped.reg.Heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	if got := pointSearch(t, stopped.svc, "c", 0.5, 0.5); len(got) != 1 || stopped.counts.sum("memory") != 1 {
		t.Fatalf("before: found %v, %d from memory; want base from memory", got, stopped.counts.sum("memory"))
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	res, err := a.svc.Import(wctx, geo.ImportOptions{Collection: "c"}, &geotest.Source{Features: []geo.Feature{
		geotest.Square("new", "new", nil, 5, 5, 6, 6)}})
	if err != nil || res.Imported != 1 || wctx.Err() != nil {
		t.Fatalf("import: %v %v (context: %v)", res, err, wctx.Err())
	}
	var expired bool
	if err := pool.QueryRow(ctx, `SELECT expires <= now() FROM memindex_peer WHERE id = $1::uuid`, stopped.reg.Peers().ID()).Scan(&expired); err != nil {
		t.Fatal(err)
	}
	if !expired {
		t.Errorf("the write returned while the stopped instance's lease was live and its index behind")
	}
	t.Logf("writes that waited: %d", a.reg.Peers().Waits())
	if stopped.reg.Leased() {
		t.Errorf("the stopped instance still holds its lease after its row expired")
	}
	lapsed := stopped.counts.get("memindex.lease_lapsed")
	if got := pointSearch(t, stopped.svc, "c", 5.5, 5.5); len(got) != 1 || got[0] != "new" {
		t.Errorf("the stopped instance found %v, want [new] from the database", got)
	}
	if stopped.counts.get("memindex.lease_lapsed") != lapsed+1 || stopped.counts.sum("memory") != 1 {
		t.Errorf("counters: memory %d, lease lapsed %d (before %d); want one more read sent to the database for the lease",
			stopped.counts.sum("memory"), stopped.counts.get("memindex.lease_lapsed"), lapsed)
	}
}

// TestNoLiveIndexNoWait: with the index off on every instance there are
// no rows and writes wait for nothing; an instance that turns it on has a
// row and writes wait for it; turned off again, its row is gone.
func TestNoLiveIndexNoWait(t *testing.T) {
	t.Parallel()
	store, pool := newService(t)
	a := newInstance(t, store, pool, leaseConfig("off", 2*time.Second), true)
	b := newInstance(t, store, pool, leaseConfig("off", 2*time.Second), true)
	importInto(t, a.svc, "c", false, geotest.Square("one", "1", nil, 0, 0, 1, 1))
	if all, _ := rows(t, pool); all != 0 || a.reg.Peers().Waits() != 0 {
		t.Fatalf("index off: %d rows, %d writes waited; want none", all, a.reg.Peers().Waits())
	}
	b.reg.Apply(leaseConfig("on", 2*time.Second))
	waitUntil(t, "B leased", b.reg.Leased)
	importInto(t, a.svc, "c", false, geotest.Square("two", "2", nil, 2, 2, 3, 3))
	if n := a.reg.Peers().Waits(); n != 1 {
		t.Errorf("with B on, %d writes waited, want 1", n)
	}
	if got := pointSearch(t, b.svc, "c", 2.5, 2.5); len(got) != 1 {
		t.Errorf("B found %v", got)
	}
	b.reg.Apply(leaseConfig("off", 2*time.Second))
	waitUntil(t, "B's row gone", func() bool { all, _ := rows(t, pool); return all == 0 })
	importInto(t, a.svc, "c", false, geotest.Square("three", "3", nil, 4, 4, 5, 5))
	if n := a.reg.Peers().Waits(); n != 1 {
		t.Errorf("with B off again, %d writes waited, want still 1", n)
	}
}
