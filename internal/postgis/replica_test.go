package postgis_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/geo/geotest"
	"github.com/geosearch/search/internal/postgis"
	"github.com/geosearch/search/internal/postgis/postgistest"
)

// replicated is a service reading from a hot standby and writing to its
// primary, as a server with DATABASE_URL on the standby and
// DATABASE_WRITE_URL on the primary.
type replicated struct {
	dbs     *postgistest.Replicated
	svc     *postgis.SearchService
	replica *postgis.Replica
	primary string // the database's URL on the primary
}

func newReplicated(t testing.TB, maxLag time.Duration) *replicated {
	t.Helper()
	dbs := postgistest.StartReplicatedT(t)
	primaryURL, standbyURL := dbs.NewDatabase(t)
	cfg := postgis.Config{URL: standbyURL, WriteURL: primaryURL, MaxWriteConns: 2}
	st := postgis.NewStatementTimeout(0)
	ctx := context.Background()
	read, err := postgis.Open(ctx, cfg, "replica-test", st)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(read.Close)
	writer, err := postgis.OpenWriter(ctx, cfg, "replica-test", st)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(writer.Close)
	probe, err := postgis.OpenProbe(ctx, cfg, "replica-test", st)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(probe.Close)
	check, err := postgis.OpenCheck(ctx, cfg, "replica-test", st)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(check.Close)
	return &replicated{
		dbs:     dbs,
		svc:     postgis.NewSearchService(read, postgis.WithWriter(writer)),
		replica: postgis.NewReplica(read, check, probe, maxLag),
		primary: primaryURL,
	}
}

// eventually calls cond until it returns nil, failing t with its last
// error after a minute.
func eventually(t testing.TB, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not so after a minute: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// token is what a write hands its client: the primary's position now.
func (r *replicated) token(t testing.TB) geo.Position {
	t.Helper()
	p, err := r.replica.WritePosition(context.Background())
	if err != nil {
		t.Fatalf("write position: %v", err)
	}
	return p
}

func (r *replicated) searchNames(t *testing.T, query string) []string {
	t.Helper()
	page, err := r.svc.Search(context.Background(), geo.Query{Filter: geo.Filter{Query: query}, Limit: 1000})
	if err != nil {
		t.Fatalf("search %q on the standby: %v", query, err)
	}
	return names(page.Things)
}

// collectionCount is the number of things in collection name as the
// standby lists it, -1 when it has no such collection.
func (r *replicated) collectionCount(t *testing.T, name string) int64 {
	t.Helper()
	cs, err := r.svc.Collections(context.Background())
	if err != nil {
		t.Fatalf("list collections on the standby: %v", err)
	}
	for _, c := range cs {
		if c.Name == name {
			return c.Count
		}
	}
	return -1
}

// TestStandbyReadsYourWrites: what is imported, replaced and deleted on
// the primary is what a search on the standby finds once it has waited
// for the write's position.
func TestStandbyReadsYourWrites(t *testing.T) {
	t.Parallel()
	r := newReplicated(t, time.Minute)
	ctx := context.Background()
	eventually(t, "standby ready", func() error { return r.replica.Ping(ctx) })

	countries := geotest.Load(t, "ne_50m_countries.geojson")
	for i := range countries {
		countries[i].Key = countries[i].Name
	}
	if _, err := r.svc.Import(ctx, geo.ImportOptions{Collection: "countries"}, &geotest.Source{Features: countries}); err != nil {
		t.Fatal(err)
	}
	if err := r.replica.WaitFor(ctx, r.token(t)); err != nil {
		t.Fatalf("wait for the import: %v", err)
	}
	if got := r.searchNames(t, "France"); len(got) != 1 {
		t.Fatalf("after the import, the standby finds %v for France, want one thing", got)
	}
	st, err := r.svc.Stats(ctx)
	if err != nil || st.Things != 241 {
		t.Fatalf("standby stats %+v, %v; want 241 things", st, err)
	}

	if _, err := r.svc.Import(ctx, geo.ImportOptions{Collection: "countries", Replace: true}, &geotest.Source{Features: countries[:10]}); err != nil {
		t.Fatal(err)
	}
	if err := r.replica.WaitFor(ctx, r.token(t)); err != nil {
		t.Fatalf("wait for the replace: %v", err)
	}
	if n := r.collectionCount(t, "countries"); n != 10 {
		t.Fatalf("after replacing with 10 things the standby counts %d", n)
	}

	if n, err := r.svc.Delete(ctx, geo.DeleteRequest{Collection: "countries", Keys: []string{countries[0].Name}}); err != nil || n != 1 {
		t.Fatalf("delete: %d, %v", n, err)
	}
	if err := r.replica.WaitFor(ctx, r.token(t)); err != nil {
		t.Fatalf("wait for the delete: %v", err)
	}
	if _, err := r.svc.Get(ctx, geo.ThingRef{Collection: "countries", Key: countries[0].Name}, false, geo.Output{}); geo.ErrorCode(err) != geo.NotFound {
		t.Fatalf("deleted thing on the standby: %v, want NotFound", err)
	}
	if _, err := r.svc.DeleteCollection(ctx, "countries"); err != nil {
		t.Fatal(err)
	}
	if err := r.replica.WaitFor(ctx, r.token(t)); err != nil {
		t.Fatalf("wait for the collection's delete: %v", err)
	}
	if n := r.collectionCount(t, "countries"); n != -1 {
		t.Fatalf("after deleting the collection the standby counts %d things in it", n)
	}

	// A forged token far beyond the primary's position is refused at once:
	// one replay check and one look at the primary, no polling until
	// MAX_REPLICA_LAG.
	before := r.replica.WaitPolls()
	forged := r.token(t) + 1<<40
	if err := r.replica.WaitFor(ctx, forged); geo.ErrorCode(err) != geo.Invalid {
		t.Fatalf("forged far-future token: %v, want Invalid", err)
	}
	if polls := r.replica.WaitPolls() - before; polls != 1 {
		t.Errorf("the forged token took %d replay checks, want 1", polls)
	}
}

// TestStandbyLagFollowsReplay: a standby that stops replaying while the
// primary writes turns not ready once it is MAX_REPLICA_LAG behind, a
// read waiting for a write it has not replayed gives up with Unavailable,
// and both recover when it catches up.
func TestStandbyLagFollowsReplay(t *testing.T) {
	t.Parallel()
	// Long enough for ten goroutines to start on a loaded machine (see
	// the waiters below).
	const maxLag = time.Second
	r := newReplicated(t, maxLag)
	ctx := context.Background()
	eventually(t, "standby ready", func() error { return r.replica.Ping(ctx) })

	if err := r.dbs.PauseReplay(ctx); err != nil {
		t.Fatal(err)
	}
	mustImport(t, r.svc, []geo.Feature{square("written while paused", 0, 0, 1, 1)})
	tok := r.token(t)
	eventually(t, "standby not ready while paused", func() error {
		if err := r.replica.Ping(ctx); geo.ErrorCode(err) != geo.Unavailable {
			return fmt.Errorf("ping gave %v, want Unavailable", err)
		}
		return nil
	})
	if lag := r.replica.LastLag(); lag <= maxLag {
		t.Errorf("not ready with a lag of %s, want more than %s", lag, maxLag)
	}
	if err := r.replica.WaitFor(ctx, tok); geo.ErrorCode(err) != geo.Unavailable {
		t.Errorf("waiting for a write the paused standby has not replayed gave %v, want Unavailable", err)
	}
	// Waiters at once share one poll loop. They start together: a waiter
	// that began after the others had given up (maxLag later) would start
	// a loop of its own, as it should.
	loops := r.replica.WaitLoops()
	var wg, ready sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, 10)
	for i := range errs {
		wg.Add(1)
		ready.Add(1)
		go func() {
			defer wg.Done()
			ready.Done()
			<-start
			errs[i] = r.replica.WaitFor(ctx, tok)
		}()
	}
	ready.Wait()
	close(start)
	wg.Wait()
	for i, err := range errs {
		if geo.ErrorCode(err) != geo.Unavailable {
			t.Errorf("waiter %d gave %v, want Unavailable", i, err)
		}
	}
	// At most one: the loop of the wait before may still be running.
	if n := r.replica.WaitLoops() - loops; n > 1 {
		t.Errorf("10 waiters at once started %d poll loops, want one at most", n)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	err := r.replica.WaitFor(short, tok)
	cancel()
	if maxLag > 50*time.Millisecond && geo.ErrorCode(err) != geo.Timeout {
		t.Errorf("waiting past the call's deadline gave %v, want Timeout", err)
	}
	if got := r.searchNames(t, "written while paused"); len(got) != 0 {
		t.Errorf("the paused standby already finds %v", got)
	}

	if err := r.dbs.ResumeReplay(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "standby ready after resuming", func() error { return r.replica.Ping(ctx) })
	if err := r.replica.WaitFor(ctx, tok); err != nil {
		t.Fatalf("wait after resuming: %v", err)
	}
	if got := r.searchNames(t, "written while paused"); len(got) != 1 {
		t.Errorf("after catching up the standby finds %v", got)
	}
}

// TestIdlePrimaryIsNoLag: the standby's last replayed transaction grows
// old while the primary writes nothing, which is no lag: the instance
// stays ready although now() - pg_last_xact_replay_timestamp() is far
// beyond MAX_REPLICA_LAG.
func TestIdlePrimaryIsNoLag(t *testing.T) {
	t.Parallel()
	const maxLag = 500 * time.Millisecond
	r := newReplicated(t, maxLag)
	ctx := context.Background()
	mustImport(t, r.svc, []geo.Feature{square("one", 0, 0, 1, 1)})
	standby, err := pgx.Connect(ctx, r.dbs.Standby.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer standby.Close(ctx)
	eventually(t, "ready while the replay timestamp is old", func() error {
		var naive time.Duration
		if err := standby.QueryRow(ctx, "SELECT coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0)::float8 * 1e9").Scan(&naive); err != nil {
			return err
		}
		if naive < 4*maxLag {
			return fmt.Errorf("the last replayed transaction is only %s old", naive)
		}
		return r.replica.Ping(ctx)
	})
}

// TestStandbyRestartAndPromotion: the same pools and Replica recover when
// the standby restarts, and when it is promoted (no lag, nothing to wait
// for, and the standby's data).
func TestStandbyRestartAndPromotion(t *testing.T) {
	t.Parallel()
	r := newReplicated(t, time.Minute)
	ctx := context.Background()
	mustImport(t, r.svc, []geo.Feature{square("before", 0, 0, 1, 1)})
	tok := r.token(t)
	eventually(t, "standby ready", func() error { return r.replica.Ping(ctx) })

	r.dbs.Standby.Stop()
	if err := r.replica.Ping(ctx); geo.ErrorCode(err) != geo.Unavailable {
		t.Fatalf("ping with the standby stopped: %v, want Unavailable", err)
	}
	if _, err := r.svc.Search(ctx, geo.Query{Filter: geo.Filter{Query: "before"}, Limit: 10}); geo.ErrorCode(err) != geo.Unavailable {
		t.Fatalf("search with the standby stopped: %v, want Unavailable", err)
	}
	mustImport(t, r.svc, []geo.Feature{square("while down", 0, 0, 1, 1)})
	tokDown := r.token(t)
	startCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := r.dbs.Standby.Start(startCtx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "standby ready after its restart", func() error { return r.replica.Ping(ctx) })
	for _, p := range []geo.Position{tok, tokDown} {
		if err := r.replica.WaitFor(ctx, p); err != nil {
			t.Fatalf("wait after the restart: %v", err)
		}
	}
	if got := r.searchNames(t, "while down"); len(got) != 1 {
		t.Fatalf("after its restart the standby finds %v", got)
	}

	if err := r.dbs.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "ready after promotion", func() error { return r.replica.Ping(ctx) })
	if err := r.replica.WaitFor(ctx, geo.Position(1<<62)); err != nil {
		t.Fatalf("a promoted standby waits for nothing: %v", err)
	}
	if got := r.searchNames(t, "before"); len(got) != 1 {
		t.Fatalf("after promotion the reading side finds %v", got)
	}
}

// TestWriterPoolCommitsSynchronously: where the database commits
// asynchronously (the test servers do), the writing pool's sessions do
// not, so that a write is flushed, and so covered by the position read
// after it, when it returns.
func TestWriterPoolCommitsSynchronously(t *testing.T) {
	t.Parallel()
	url := cluster.NewDatabase(t)
	pool, err := postgis.OpenWriter(context.Background(), postgis.Config{URL: url, MaxWriteConns: 1}, "sync-test", postgis.NewStatementTimeout(0))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var got string
	if err := pool.QueryRow(context.Background(), "SHOW synchronous_commit").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != "local" {
		t.Errorf("writing pool: synchronous_commit %q, want local", got)
	}
}

// TestWaitBoundPassingDuringTheFirstCheckIsUnavailable: when
// MAX_REPLICA_LAG passes while the first replay check is still in the
// database (a loaded standby), the read is Unavailable, as when it passes
// while polling, not an unclassified context error.
func TestWaitBoundPassingDuringTheFirstCheckIsUnavailable(t *testing.T) {
	t.Parallel()
	r := newReplicated(t, time.Nanosecond) // passes before any check can answer
	err := r.replica.WaitFor(context.Background(), r.token(t))
	if geo.ErrorCode(err) != geo.Unavailable {
		t.Errorf("WaitFor: %v, want Unavailable", err)
	}
}
