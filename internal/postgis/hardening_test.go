package postgis_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/postgis"
)

// newWriterService is newService with a writing pool of its own, opened as
// the server opens it, on url with extra connection parameters (a
// lock_timeout, say) when given.
func newWriterService(t *testing.T, params string) (svc *postgis.SearchService, reader, writer *pgxpool.Pool, dbURL string) {
	t.Helper()
	dbURL = cluster.NewDatabase(t)
	cfg := postgis.Config{URL: dbURL, MaxWriteConns: 2}
	if params != "" {
		cfg.WriteURL = dbURL + "&" + params
	}
	st := postgis.NewStatementTimeout(0)
	reader, err := postgis.Open(context.Background(), cfg, "hardening-test", st)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reader.Close)
	writer, err = postgis.OpenWriter(context.Background(), cfg, "hardening-test", st)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(writer.Close)
	return postgis.NewSearchService(reader, postgis.WithWriter(writer)), reader, writer, dbURL
}

// funcSource yields the features fn returns for each index in turn; fn
// returns io.EOF to end.
type funcSource func(ctx context.Context, i int) (geo.Feature, error)

type countingSource struct {
	fn funcSource
	i  int
}

func (s *countingSource) Next(ctx context.Context) (geo.Feature, error) {
	f, err := s.fn(ctx, s.i)
	f.Index = s.i
	s.i++
	return f, err
}

func storedThings(t *testing.T, pool *pgxpool.Pool) int64 {
	t.Helper()
	var n int64
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM thing").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestPanicMidImportRollsBackAndReleasesTheConnection(t *testing.T) {
	t.Parallel()
	svc, reader, writer, _ := newWriterService(t, "")
	src := &countingSource{fn: func(_ context.Context, i int) (geo.Feature, error) {
		if i == 250 { // after a batch of 200 has been written
			panic("boom in the middle of an import")
		}
		return square(fmt.Sprintf("f%d", i), 0, 0, 1, 1), nil
	}}
	func() {
		defer func() {
			if r := recover(); r == nil {
				t.Fatal("the import did not panic")
			}
		}()
		_, _ = svc.Import(context.Background(), geo.ImportOptions{}, src)
	}()
	if n := writer.Stat().AcquiredConns(); n != 0 {
		t.Errorf("after the panic %d writing connections are still checked out, want 0", n)
	}
	if n := storedThings(t, reader); n != 0 {
		t.Errorf("after the panic %d things are stored, want 0", n)
	}
	// Shutdown: closing the pool waits for every connection to come back.
	closed := make(chan struct{})
	go func() { writer.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(time.Minute):
		t.Fatal("closing the writing pool after a panic mid-import never returned")
	}
}

func TestTransientFaultsEndTheImportWhole(t *testing.T) {
	t.Parallel()
	t.Run("connection terminated", func(t *testing.T) {
		t.Parallel()
		svc, reader, _, _ := newWriterService(t, "")
		src := &countingSource{fn: func(ctx context.Context, i int) (geo.Feature, error) {
			switch i {
			case 250: // a batch of 200 is in the open transaction
				if _, err := reader.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
					WHERE application_name = 'hardening-test/write' AND backend_xid IS NOT NULL AND datname = current_database()`); err != nil {
					return geo.Feature{}, err
				}
			case 450:
				return geo.Feature{}, io.EOF
			}
			return square(fmt.Sprintf("f%d", i), 0, 0, 1, 1), nil
		}}
		_, err := svc.Import(context.Background(), geo.ImportOptions{}, src)
		if code := geo.ErrorCode(err); code != geo.Unavailable {
			t.Errorf("import on a terminated connection: %v (%s), want unavailable", err, code)
		}
		if n := storedThings(t, reader); n != 0 {
			t.Errorf("%d things stored, want 0", n)
		}
	})
	t.Run("lock timeout", func(t *testing.T) {
		t.Parallel()
		svc, reader, _, dbURL := newWriterService(t, "lock_timeout=200")
		ctx := context.Background()
		locker, err := pgx.Connect(ctx, dbURL)
		if err != nil {
			t.Fatal(err)
		}
		defer locker.Close(ctx)
		tx, err := locker.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "LOCK TABLE thing IN ACCESS EXCLUSIVE MODE"); err != nil {
			t.Fatal(err)
		}
		_, err = svc.Import(ctx, geo.ImportOptions{}, &countingSource{fn: func(_ context.Context, i int) (geo.Feature, error) {
			if i == 3 {
				return geo.Feature{}, io.EOF
			}
			return square(fmt.Sprintf("f%d", i), 0, 0, 1, 1), nil
		}})
		_ = tx.Rollback(ctx)
		if code := geo.ErrorCode(err); code != geo.Aborted {
			t.Errorf("import behind a lock: %v (%s), want aborted", err, code)
		}
		if n := storedThings(t, reader); n != 0 {
			t.Errorf("%d things stored, want 0", n)
		}
	})
	t.Run("deadlock", func(t *testing.T) {
		t.Parallel()
		svc, reader, _, _ := newWriterService(t, "")
		// Two imports write keys a and b in opposite orders, each waiting
		// for the other's first batch: PostgreSQL kills one of them.
		var wrote sync.WaitGroup
		wrote.Add(2)
		source := func(first, second string) geo.FeatureSource {
			return &countingSource{fn: func(_ context.Context, i int) (geo.Feature, error) {
				switch {
				case i == 0:
					f := square(first+"-"+second, 0, 0, 1, 1)
					f.Key = first
					return f, nil
				case i < 200:
					return square(fmt.Sprintf("%s-filler-%d", first, i), 0, 0, 1, 1), nil
				case i == 200: // the first batch is written
					wrote.Done()
					wrote.Wait()
					f := square(second+"-again", 0, 0, 1, 1)
					f.Key = second
					return f, nil
				}
				return geo.Feature{}, io.EOF
			}}
		}
		errs := make([]error, 2)
		var done sync.WaitGroup
		for i, src := range []geo.FeatureSource{source("a", "b"), source("b", "a")} {
			done.Add(1)
			go func() {
				defer done.Done()
				_, errs[i] = svc.Import(context.Background(), geo.ImportOptions{}, src)
			}()
		}
		done.Wait()
		var aborted, ok int
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case geo.ErrorCode(err) == geo.Aborted:
				aborted++
			default:
				t.Errorf("import: %v (%s), want success or aborted", err, geo.ErrorCode(err))
			}
		}
		if aborted != 1 || ok != 1 {
			t.Errorf("%d imports aborted and %d succeeded, want 1 and 1", aborted, ok)
		}
		if n := storedThings(t, reader); n != 201 {
			t.Errorf("%d things stored, want the 201 of the import that succeeded", n)
		}
	})
}

func TestARefusedFeatureIsRejectedAlone(t *testing.T) {
	t.Parallel()
	svc, _ := newService(t)
	var fs []geo.Feature
	for i := range 5 {
		f := square(fmt.Sprintf("f%d", i), 0, 0, 1, 1)
		f.Index = i
		fs = append(fs, f)
	}
	// jsonb cannot hold a NUL character: the database refuses this one.
	fs[2].Properties = map[string]any{"note": "a\x00b"}
	res := mustImport(t, svc, fs)
	if res.Imported != 4 || len(res.Rejected.Listed) != 1 || res.Rejected.Listed[0].Index != 2 ||
		!strings.HasPrefix(res.Rejected.Listed[0].Reason, "the database could not store") {
		t.Errorf("imported %d, rejected %+v; want 4 and feature 2 refused by the database", res.Imported, res.Rejected)
	}
}

func TestImportLeavesNoSavepointBehind(t *testing.T) {
	t.Parallel()
	_, pool := newService(t)
	ctx := context.Background()
	fs := []geo.Feature{square("a", 0, 0, 1, 1), square("b", 0, 0, 1, 1), square("c", 0, 0, 1, 1)}
	fs[1].Properties = map[string]any{"note": "a\x00b"} // refused: the batch is replayed one by one
	for i := range fs {
		fs[i].Index = i
	}
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		for round := range 2 { // a clean batch, then one replayed feature by feature
			batch := fs
			if round == 0 {
				batch = []geo.Feature{fs[0], fs[2]}
			}
			res, err := postgis.WriteBatch(ctx, tx, batch)
			if err != nil {
				return err
			}
			if want := len(batch) - round; res.Imported != want {
				t.Errorf("round %d: imported %d, want %d", round, res.Imported, want)
			}
			for _, name := range []string{"import_batch", "import_feature"} {
				if _, err := tx.Exec(ctx, "SAVEPOINT probe"); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT "+name)
				var pgErr *pgconn.PgError
				if !errors.As(err, &pgErr) || pgErr.Code != "3B001" {
					t.Errorf("round %d: savepoint %s is still defined (ROLLBACK TO it: %v)", round, name, err)
				}
				if _, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT probe"); err != nil {
					return err
				}
				if _, err := tx.Exec(ctx, "RELEASE SAVEPOINT probe"); err != nil {
					return err
				}
			}
		}
		return errors.New("roll back")
	})
	if err == nil || err.Error() != "roll back" {
		t.Fatal(err)
	}
}

// countingTracer counts the statements a pool sends that contain a string.
type countingTracer struct {
	match string
	n     atomic.Int64
}

func (c *countingTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if strings.Contains(d.SQL, c.match) {
		c.n.Add(1)
	}
	return ctx
}

func (c *countingTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// tracedService returns a service on a fresh database whose statements
// containing match are counted by the tracer returned.
func tracedService(t *testing.T, match string) (*postgis.SearchService, *countingTracer) {
	t.Helper()
	pc, err := pgxpool.ParseConfig(cluster.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	tracer := &countingTracer{match: match}
	pc.ConnConfig.Tracer = tracer
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return postgis.NewSearchService(pool), tracer
}

func TestStatsCountsAtMostOnceForManyCallers(t *testing.T) {
	t.Parallel()
	svc, tracer := tracedService(t, "count(*) FROM thing_part")
	mustImport(t, svc, []geo.Feature{square("a", 0, 0, 1, 1), square("b", 2, 2, 3, 3)})

	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := svc.Stats(context.Background())
			if err != nil || st.Things != 2 {
				t.Errorf("stats: %+v, %v; want 2 things", st, err)
			}
		}()
	}
	wg.Wait()
	if n := tracer.n.Load(); n != 1 {
		t.Errorf("50 callers counted %d times, want once", n)
	}
	// An import through the service makes the next call count again.
	mustImport(t, svc, []geo.Feature{square("c", 4, 4, 5, 5)})
	st, err := svc.Stats(context.Background())
	if err != nil || st.Things != 3 {
		t.Errorf("stats after an import: %+v, %v; want 3 things", st, err)
	}
	if n := tracer.n.Load(); n != 2 {
		t.Errorf("counted %d times, want twice", n)
	}
}

func TestPagesEndAtTheirByteBudget(t *testing.T) {
	t.Parallel()
	svc, _ := newService(t)
	var fs []geo.Feature
	for i := range 7 {
		fs = append(fs, square(fmt.Sprintf("f%d", i), 0, 0, 1, 1))
	}
	mustImport(t, svc, fs)
	q := geo.Query{Filter: geo.Filter{Query: "f"}, Limit: 100, MaxBytes: 1, IncludeGeometry: true}
	var got []string
	for pages := 0; ; pages++ {
		page, err := svc.Search(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Things) > 1 {
			t.Fatalf("a page with a 1-byte budget holds %d things, want 1", len(page.Things))
		}
		got = append(got, names(page.Things)...)
		if page.Next == nil {
			break
		}
		if pages > 20 {
			t.Fatal("paging never ends")
		}
		q.After = page.Next
	}
	if want := []string{"f0", "f1", "f2", "f3", "f4", "f5", "f6"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("paged %v, want %v", got, want)
	}
	// Without a budget the limit alone decides.
	page, err := svc.Search(context.Background(), geo.Query{Filter: geo.Filter{Query: "f"}, Limit: 100, IncludeGeometry: true})
	if err != nil || len(page.Things) != 7 || page.Next != nil {
		t.Errorf("unbudgeted page: %d things, next %v, err %v; want 7, nil, nil", len(page.Things), page.Next, err)
	}
}
