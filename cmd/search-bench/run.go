package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/postgis"
)

// Import targets of the issue, in seconds.
const (
	countriesImportTarget = 10
	gridImportTarget      = 60
)

// endpoint is where gRPC rounds go: a connection, and the server process
// when the benchmark started it (for its CPU and RSS).
type endpoint struct {
	conn *grpc.ClientConn
	proc *serverProc // nil for a server the benchmark did not start
}

func (e endpoint) pid() int {
	if e.proc == nil {
		return 0
	}
	return e.proc.pid()
}

// roundKind is one kind of round and what it runs against.
type roundKind struct {
	kind string
	at   endpoint
	op   func(int) op
	// per is the answers one call of op gets (the points of a Locate
	// batch); 0 means 1. Rates and CPU are per answer.
	per int
	// done, if set, is called after each run of op's workers (it ends
	// their Locate streams).
	done func()
}

// warm runs k untimed.
func (b *bench) warm(ctx context.Context, k roundKind, concurrency int, d time.Duration) {
	runLoad(ctx, concurrency, d, k.op)
	if k.done != nil {
		k.done()
	}
}

// alternate warms every kind up (o.warmup each), then runs o.rounds rounds
// of every kind in turn, so that a change of load touches each kind alike,
// and adds the results to r.
func (b *bench) alternate(ctx context.Context, r *report, kinds []roundKind) error {
	if b.o.warmup > 0 {
		b.progress("warming up: %s of each kind", b.o.warmup)
		for _, k := range kinds {
			b.warm(ctx, k, b.o.concurrency, b.o.warmup)
		}
	}
	for round := 1; round <= b.o.rounds; round++ {
		for _, k := range kinds {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			rr := b.measure(ctx, round, k, b.o.concurrency, b.o.duration)
			b.progress("round %d %-13s %7.0f req/s  p50 %6.2f ms  p99 %7.2f ms  errors %d", round, k.kind, rr.RPS, rr.P50Ms, rr.P99Ms, rr.Errors)
			r.Rounds = append(r.Rounds, rr)
		}
	}
	return nil
}

// bench holds what the rounds run against.
type bench struct {
	o      options
	log    io.Writer
	points []geo.Point
	pmPID  int // the PostgreSQL server's postmaster, 0 if unknown
	batch  int // points per Locate batch
}

// run sets up, verifies, runs the rounds (and the soak) and returns the
// report. Everything it started is stopped when it returns.
func run(ctx context.Context, o options, log io.Writer) (*report, error) {
	b := &bench{o: o, log: log, points: randomPoints(o.seed, o.points)}
	r := &report{Machine: describeMachine(), Settings: settingsReport{
		Rounds: o.rounds, Duration: o.duration.String(), Concurrency: o.concurrency,
		Seed: o.seed, Points: o.points, GridCells: o.gridCells, Countries: o.countries,
	}}
	b.batch = o.locateBatch
	if b.batch == 0 {
		var err error
		if b.batch, err = serverLocateBatch(ctx); err != nil {
			return nil, err
		}
	}
	r.LocateBatch = b.batch

	var (
		main, logging, baseline, bare endpoint
		dbURL                         = o.databaseURL
		db                            *database
		obs                           *observability
		dir                           string
	)
	if o.serverAddr == "" {
		var err error
		if dir, err = os.MkdirTemp("", "search-bench-"); err != nil {
			return nil, err
		}
		defer func() {
			if o.keepLogs {
				b.progress("server logs kept in %s", dir)
			} else {
				os.RemoveAll(dir)
			}
		}()
		b.progress("starting PostgreSQL with PostGIS")
		if db, err = startDatabase(ctx); err != nil {
			return nil, err
		}
		defer db.close()
		if dbURL, err = db.create(ctx, "bench"); err != nil {
			return nil, err
		}
		env := withEnv(map[string]string{"DATABASE_URL": dbURL, "LOCATE_BATCH_SIZE": strconv.Itoa(b.batch)}, o.serverEnv)
		if o.pprofAddr != "" {
			env["PPROF_ADDR"] = o.pprofAddr
		}
		b.progress("starting search-server (%s)", o.serverBin)
		p, err := startServer(ctx, o.serverBin, dir, "plain", env)
		if err != nil {
			return nil, err
		}
		defer p.stop()
		main = endpoint{conn: p.conn, proc: p}
		if o.baselineBin != "" {
			b.progress("starting the baseline search-server (%s)", o.baselineBin)
			env := map[string]string{"DATABASE_URL": dbURL}
			if o.baselineSock {
				env["DATABASE_URL"] = db.cluster.SocketURL("bench")
			}
			for _, kv := range o.baselineEnv {
				k, v, _ := strings.Cut(kv, "=")
				env[k] = v
			}
			p, err := startServer(ctx, o.baselineBin, dir, "baseline", env)
			if err != nil {
				return nil, err
			}
			defer p.stop()
			baseline = endpoint{conn: p.conn, proc: p}
		}
		self, err := os.Executable()
		if err != nil {
			return nil, err
		}
		b.progress("starting a bare grpc-go server (health service only)")
		bp, err := startServer(ctx, self, dir, "bare", map[string]string{bareServerEnv: "1"})
		if err != nil {
			return nil, err
		}
		defer bp.stop()
		bare = endpoint{conn: bp.conn, proc: bp}
		if o.logging {
			if obs, err = startObservability(); err != nil {
				return nil, err
			}
			defer obs.close()
			env := obs.env()
			env["DATABASE_URL"] = dbURL
			b.progress("starting search-server with Kafka log shipping and StatsD on")
			p, err := startServer(ctx, o.serverBin, dir, "logging", env)
			if err != nil {
				return nil, err
			}
			defer p.stop()
			logging = endpoint{conn: p.conn, proc: p}
		}
	} else {
		conn, err := grpc.NewClient(o.serverAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		main = endpoint{conn: conn}
	}

	pool, err := b.openPool(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	if b.pmPID, err = postmasterPID(ctx, dbURL); err != nil {
		b.progress("database CPU will not be measured: %v", err)
	}

	if err := b.importCountries(ctx, main, pool, r); err != nil {
		return nil, err
	}
	b.progress("verifying %d points and %d name searches", o.verify, len(nameQueries))
	r.Verified.Points, r.Verified.NameQueries = o.verify, len(nameQueries)
	if r.Verified.PointHits, err = verifyPoints(ctx, main.conn, pool, b.points[:o.verify], true); err != nil {
		return nil, fmt.Errorf("answers differ:\n%w", err)
	}
	if err := verifyNames(ctx, main.conn, pool); err != nil {
		return nil, fmt.Errorf("answers differ: %w", err)
	}
	if err := verifyLocate(ctx, main.conn, pool, b.points[:o.verify]); err != nil {
		return nil, fmt.Errorf("answers differ:\n%w", err)
	}
	for _, other := range []endpoint{logging, baseline} {
		if other.conn == nil {
			continue
		}
		if _, err := verifyPoints(ctx, other.conn, pool, b.points[:min(o.verify, 100)], false); err != nil {
			return nil, fmt.Errorf("answers differ (server %s):\n%w", other.proc.name, err)
		}
	}

	kinds := []roundKind{
		{kind: kindGRPC, at: main, op: same(grpcPoint(main.conn, b.points))},
		{kind: kindDirect, at: endpoint{}, op: same(directPoint(pool, b.points))},
		{kind: kindNaive, at: endpoint{}, op: same(naivePoint(pool, b.points))},
		{kind: kindName, at: main, op: grpcNameWalk(main.conn, o.seed)},
		{kind: kindHealth, at: main, op: same(grpcHealth(main.conn))},
	}
	if bare.conn != nil {
		kinds = append(kinds, roundKind{kind: kindBareHealth, at: bare, op: same(grpcHealth(bare.conn))})
	}
	if logging.conn != nil {
		kinds = append(kinds, roundKind{kind: kindGRPCLogging, at: logging, op: same(grpcPoint(logging.conn, b.points))})
	}
	if baseline.conn != nil {
		kinds = append(kinds, roundKind{kind: kindBaseline, at: baseline, op: same(grpcPoint(baseline.conn, b.points))})
	}
	locate := b.locateKinds(main, pool)
	kinds = append(kinds, locate...)
	kinds = append(kinds, b.locatePerMessageKind(main))
	if baseline.conn != nil {
		ls, op := grpcLocate(baseline.conn, b.points, b.batch)
		kinds = append(kinds, roundKind{kind: kindBaseLocate, at: baseline, op: op, per: b.batch, done: ls.close})
	}
	if err := b.alternate(ctx, r, kinds); err != nil {
		return nil, err
	}

	if len(o.sweep) > 0 {
		b.progress("sweep: concurrency %v, %s per kind and level", o.sweep, o.sweepDuration)
		sweepKinds := []roundKind{kinds[0], kinds[1]} // grpc, direct
		sweepKinds = append(sweepKinds, locate...)
		if err := b.sweep(ctx, r, sweepKinds); err != nil {
			return nil, err
		}
	}
	if len(o.locateBatches) > 0 {
		if err := b.batchCurve(ctx, r, pool); err != nil {
			return nil, err
		}
	}
	if err := b.cliPhase(ctx, r, main, dbURL, dir); err != nil {
		return nil, err
	}

	if o.soak > 0 && main.proc != nil {
		b.progress("soak: %s of gRPC point searches", o.soak)
		sk := b.soak(ctx, main)
		r.Soak = &sk
	}

	if len(o.subdivide) > 0 && db != nil {
		if err := b.subdivideCurve(ctx, r, pool); err != nil {
			return nil, err
		}
	}

	if o.gridCells > 0 && db != nil {
		if err := b.gridPhase(ctx, r, db, dir); err != nil {
			return nil, err
		}
	}
	r.Machine.LoadEnd = loadAverage()
	if err := b.describeDatabase(ctx, pool, &r.Machine); err != nil {
		return nil, err
	}
	r.summarize()
	if o.plotsDir != "" {
		if r.Plots, err = r.writePlots(o.plotsDir); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func (b *bench) progress(format string, args ...any) {
	fmt.Fprintf(b.log, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// openPool opens the direct rounds' pool: as many connections as requests
// in flight, pgx's defaults otherwise (statements prepared and cached per
// connection, as the server's pool does).
func (b *bench) openPool(ctx context.Context, url string) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("--database-url: %w", err)
	}
	pc.MaxConns = int32(b.o.concurrency)
	pc.MinConns = int32(b.o.concurrency)
	pc.ConnConfig.RuntimeParams["application_name"] = "search-bench"
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, err
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("database: %w", err)
	}
	return pool, nil
}

// importAndAnalyze imports ds through at and then runs ANALYZE, as
// autovacuum would shortly after a bulk load, so that no round runs on a
// plan made without statistics.
func (b *bench) importAndAnalyze(ctx context.Context, at endpoint, ds *dataset, pool *pgxpool.Pool) (importResult, error) {
	srv0, db0, self0 := b.serverCPU(at), treeCPU(b.pmPID), selfCPU()
	imp, err := importDataset(ctx, at.conn, ds)
	if err != nil {
		return imp, err
	}
	imp.ServerCPUSeconds = (b.serverCPU(at) - srv0).Seconds()
	imp.DBCPUSeconds = (treeCPU(b.pmPID) - db0).Seconds()
	imp.BenchCPUSeconds = (selfCPU() - self0).Seconds()
	b.progress("imported %d features (%d rejected) in %.2f s: %.0f features/s, %.0f vertices/s",
		imp.Imported, imp.Rejected, imp.Seconds, imp.FeaturesPerSec, imp.VerticesPerSec)
	if _, err := pool.Exec(ctx, "ANALYZE thing, thing_part"); err != nil {
		return imp, fmt.Errorf("analyze: %w", err)
	}
	return imp, nil
}

func (b *bench) serverCPU(at endpoint) time.Duration {
	if at.proc == nil {
		return 0
	}
	st, err := readStat(at.pid())
	if err != nil {
		return 0
	}
	return st.cpu
}

// round runs one timed round and measures the CPU of the server (if the
// round goes through one), of the database and of the benchmark itself.
func (b *bench) round(ctx context.Context, n int, kind string, at endpoint, newOp func(int) op) roundResult {
	return b.measure(ctx, n, roundKind{kind: kind, at: at, op: newOp}, b.o.concurrency, b.o.duration)
}

// measure runs one timed round of k at concurrency for d. For a kind whose
// call gets several answers (k.per), requests, rates and CPU are counted
// per answer and latencies per call.
func (b *bench) measure(ctx context.Context, n int, k roundKind, concurrency int, d time.Duration) roundResult {
	per := max(k.per, 1)
	srv0, db0, self0 := b.serverCPU(k.at), treeCPU(b.pmPID), selfCPU()
	res := runLoad(ctx, concurrency, d, k.op)
	if k.done != nil {
		k.done()
	}
	secs := res.Elapsed.Seconds()
	srv, db, self := (b.serverCPU(k.at) - srv0).Seconds(), (treeCPU(b.pmPID) - db0).Seconds(), (selfCPU() - self0).Seconds()
	answers := res.Requests * per
	rr := roundResult{
		Round: n, Kind: k.kind, Requests: answers, RPS: float64(answers) / secs, AnswersPerCall: per, Concurrency: concurrency,
		P50Ms: ms(percentile(res.Latencies, 0.50)), P99Ms: ms(percentile(res.Latencies, 0.99)), P999Ms: ms(percentile(res.Latencies, 0.999)),
		Errors: res.Errors, FirstError: res.FirstErr,
		ServerCores: srv / secs, DBCores: db / secs, BenchCores: self / secs,
	}
	if answers > 0 {
		rr.HitRate = float64(res.Results) / float64(answers)
		rr.ServerUsReq = srv * 1e6 / float64(answers)
		rr.DBUsReq = db * 1e6 / float64(answers)
		rr.BenchUsReq = self * 1e6 / float64(answers)
	}
	if k.at.proc != nil {
		if rss, err := readRSS(k.at.pid()); err == nil {
			rr.ServerRSSMB = float64(rss) / (1 << 20)
		}
	}
	return rr
}

// soak searches for o.soak and samples the server's RSS every interval.
// Warm-up is the first tenth (between 5 s and a minute, at most half): the
// pool, gRPC's buffers and the Go heap settle there.
func (b *bench) soak(ctx context.Context, at endpoint) soakResult {
	d := b.o.soak
	warmup := min(max(d/10, 5*time.Second), time.Minute, d/2)
	interval := min(max(d/60, time.Second), 10*time.Second)
	var count atomic.Int64
	grpcOp := grpcPoint(at.conn, b.points)
	counted := func(ctx context.Context, i int) (int, error) {
		count.Add(1)
		return grpcOp(ctx, i)
	}
	var res loadResult
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		res = runLoad(ctx, b.o.concurrency, d, same(counted))
	}()
	sk := soakResult{Duration: d.String(), WarmupSeconds: warmup.Seconds()}
	start := time.Now()
	last, lastCount := start, int64(0)
	t := time.NewTicker(interval)
	for time.Since(start) < d && ctx.Err() == nil {
		<-t.C
		now, c := time.Now(), count.Load()
		rss, _ := readRSS(at.pid())
		s := soakSample{Seconds: now.Sub(start).Seconds(), RSSMB: float64(rss) / (1 << 20), RPS: float64(c-lastCount) / now.Sub(last).Seconds()}
		sk.Samples = append(sk.Samples, s)
		last, lastCount = now, c
		if s.Seconds >= warmup.Seconds() {
			if sk.RSSAfterWarmupMB == 0 {
				sk.RSSAfterWarmupMB = s.RSSMB
			}
			sk.RSSMaxMB = max(sk.RSSMaxMB, s.RSSMB)
			sk.RSSLastMB = s.RSSMB
		}
	}
	t.Stop()
	wg.Wait()
	sk.Requests, sk.Errors = res.Requests, res.Errors
	sk.RPS = float64(res.Requests) / res.Elapsed.Seconds()
	sk.P99Ms = ms(percentile(res.Latencies, 0.99))
	if sk.RSSAfterWarmupMB > 0 {
		sk.GrowthPct = (sk.RSSLastMB - sk.RSSAfterWarmupMB) / sk.RSSAfterWarmupMB * 100
	}
	return sk
}

// gridPhase imports the synthetic grid into a database of its own, served
// by a server of its own, and runs alternating gRPC and direct rounds on it.
func (b *bench) gridPhase(ctx context.Context, r *report, db *database, dir string) error {
	url, err := db.create(ctx, "bench_grid")
	if err != nil {
		return err
	}
	b.progress("starting search-server on the grid database")
	p, err := startServer(ctx, b.o.serverBin, dir, "grid", withEnv(map[string]string{"DATABASE_URL": url}, b.o.serverEnv))
	if err != nil {
		return err
	}
	defer p.stop()
	at := endpoint{conn: p.conn, proc: p}
	pool, err := b.openPool(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	ds := gridCells(b.o.gridCells)
	b.progress("importing %s: %d features, %d vertices", ds.name, len(ds.requests), ds.vertices)
	imp, err := b.importAndAnalyze(ctx, at, ds, pool)
	if err != nil {
		return err
	}
	imp.TargetSeconds = gridImportTarget
	r.Imports = append(r.Imports, imp)
	n := min(b.o.verify, 200)
	if _, err := verifyPoints(ctx, at.conn, pool, b.points[:n], true); err != nil {
		return fmt.Errorf("answers differ on the grid:\n%w", err)
	}
	r.Verified.GridPoints = n
	kinds := []roundKind{
		{kind: kindGridGRPC, at: at, op: same(grpcPoint(at.conn, b.points))},
		{kind: kindGridDirect, at: endpoint{}, op: same(directPoint(pool, b.points))},
	}
	if err := b.alternate(ctx, r, kinds); err != nil {
		return err
	}
	return b.collectionsAndMemory(ctx, r, at, pool)
}

// collectionsPhase imports the countries into collection "countries" beside
// the grid (which is in "default") and measures point searches over both
// collections against searches scoped to the countries, through gRPC and
// directly, in alternating rounds; it records both plans for Paris.
func (b *bench) collectionsPhase(ctx context.Context, r *report, at endpoint, pool *pgxpool.Pool) error {
	ds, err := loadGeoJSON(b.o.countries)
	if err != nil {
		return err
	}
	ds.collection = "countries"
	ds.name += " beside the grid"
	b.progress("importing %s into collection countries", ds.name)
	imp, err := b.importAndAnalyze(ctx, at, ds, pool)
	if err != nil {
		return err
	}
	imp.TargetSeconds = countriesImportTarget
	r.Imports = append(r.Imports, imp)
	n := min(b.o.verify, 200)
	if _, err := verifyPoints(ctx, at.conn, pool, b.points[:n], true, "countries"); err != nil {
		return fmt.Errorf("scoped answers differ:\n%w", err)
	}
	r.Verified.ScopedPoints = n
	paris := geo.Point{Lat: 48.85, Lng: 2.35}
	for _, pq := range []struct {
		name string
		q    geo.Query
	}{
		{"point search over every collection (countries beside the grid), Paris", pointQuery(paris)},
		{"point search scoped to collection countries, Paris", pointQuery(paris, "countries")},
		{"property filter name IN (France, Spain), every collection", geo.Query{Limit: defaultPageSize, Filter: geo.Filter{
			Properties: []geo.PropertyFilter{{Key: "name", Values: []any{"France", "Spain"}}}}}},
	} {
		sql, args := postgis.SearchStatement(pq.q)
		text, err := explain(ctx, pool, sql, args)
		if err != nil {
			return err
		}
		r.Plans = append(r.Plans, plan{Name: pq.name, Text: text})
	}
	kinds := []roundKind{
		{kind: kindMixedGRPC, at: at, op: same(grpcPoint(at.conn, b.points))},
		{kind: kindScopedGRPC, at: at, op: same(grpcPoint(at.conn, b.points, "countries"))},
		{kind: kindMixedDirect, at: endpoint{}, op: same(directPoint(pool, b.points))},
		{kind: kindScopedDirect, at: endpoint{}, op: same(directPoint(pool, b.points, "countries"))},
	}
	if err := b.alternate(ctx, r, kinds); err != nil {
		return err
	}
	return nil
}

// explain returns EXPLAIN (ANALYZE, BUFFERS) of sql with args, run twice so
// that the second, reported, run reads warm pages.
func explain(ctx context.Context, pool *pgxpool.Pool, sql string, args []any) (string, error) {
	var lines []string
	for range 2 {
		rows, err := pool.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+sql, args...)
		if err != nil {
			return "", fmt.Errorf("explain: %w", err)
		}
		lines, err = pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return "", fmt.Errorf("explain: %w", err)
		}
	}
	return strings.Join(lines, "\n"), nil
}

func (b *bench) describeDatabase(ctx context.Context, pool *pgxpool.Pool, m *machine) error {
	err := pool.QueryRow(ctx, "SELECT current_setting('server_version'), postgis_lib_version()").Scan(&m.Postgres, &m.PostGIS)
	if err != nil {
		return fmt.Errorf("database version: %w", err)
	}
	m.Postgres, m.PostGIS = "PostgreSQL "+m.Postgres, "PostGIS "+m.PostGIS
	return nil
}

func writeJSON(w io.Writer, r *report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// subdivideCurve rebuilds thing_part with each of o.subdivide as
// ST_Subdivide's vertex limit and runs direct rounds of the point query on
// each, the sizes alternating within each round. It leaves the parts at
// the last size; the database is thrown away after the run.
func (b *bench) subdivideCurve(ctx context.Context, r *report, pool *pgxpool.Pool) error {
	sizes := b.o.subdivide
	land, err := b.landPoints(ctx, pool, 10_000)
	if err != nil {
		return err
	}
	res := make([]subdivideResult, len(sizes))
	dbs, landDBs := make([][]float64, len(sizes)), make([][]float64, len(sizes))
	p50s, p99s, landP99s := make([][]float64, len(sizes)), make([][]float64, len(sizes)), make([][]float64, len(sizes))
	for round := 1; round <= b.o.rounds; round++ {
		for i, n := range sizes {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			parts, err := b.rebuildParts(ctx, pool, n)
			if err != nil {
				return err
			}
			if round == 1 {
				if _, err := verifyPoints(ctx, nil, pool, b.points[:min(b.o.verify, 300)], true); err != nil {
					return fmt.Errorf("parts of %d vertices:\n%w", n, err)
				}
			}
			runLoad(ctx, b.o.concurrency, b.o.warmup, same(directPoint(pool, b.points)))
			rr := b.round(ctx, round, fmt.Sprintf("parts %d", n), endpoint{}, same(directPoint(pool, b.points)))
			b.progress("round %d subdivide %4d: %6d parts %7.0f req/s  p50 %6.2f ms  p99 %7.2f ms", round, n, parts, rr.RPS, rr.P50Ms, rr.P99Ms)
			lr := b.round(ctx, round, fmt.Sprintf("land parts %d", n), endpoint{}, same(directPoint(pool, land)))
			b.progress("round %d subdivide %4d: %6d parts %7.0f req/s  p99 %7.2f ms on land points", round, n, parts, lr.RPS, lr.P99Ms)
			res[i].MaxVertices, res[i].Parts = n, parts
			res[i].PerRound = append(res[i].PerRound, rr.RPS)
			res[i].LandPerRound = append(res[i].LandPerRound, lr.RPS)
			dbs[i], p50s[i], p99s[i] = append(dbs[i], rr.DBUsReq), append(p50s[i], rr.P50Ms), append(p99s[i], rr.P99Ms)
			landDBs[i], landP99s[i] = append(landDBs[i], lr.DBUsReq), append(landP99s[i], lr.P99Ms)
		}
	}
	for i := range res {
		res[i].RPS, res[i].DBUsReq = median(res[i].PerRound), median(dbs[i])
		res[i].P50Ms, res[i].P99Ms = median(p50s[i]), median(p99s[i])
		res[i].LandRPS, res[i].LandDBUsReq, res[i].LandP99Ms = median(res[i].LandPerRound), median(landDBs[i]), median(landP99s[i])
	}
	r.Subdivide = res
	return nil
}

// landPoints returns up to n of the random points, in order, that are
// inside some thing.
func (b *bench) landPoints(ctx context.Context, pool *pgxpool.Pool, n int) ([]geo.Point, error) {
	var land []geo.Point
	for _, p := range b.points {
		sql, args := postgis.SearchStatement(pointQuery(p))
		ids, err := queryIDs(ctx, pool, sql, args)
		if err != nil {
			return nil, fmt.Errorf("find land points: %w", err)
		}
		if len(ids) > 0 {
			if land = append(land, p); len(land) == n {
				break
			}
		}
	}
	if len(land) == 0 {
		return nil, fmt.Errorf("none of the %d random points is inside a thing", len(b.points))
	}
	return land, nil
}

// rebuildParts recuts every thing's parts at n vertices, as the
// thing_part_sync trigger does at 128.
func (b *bench) rebuildParts(ctx context.Context, pool *pgxpool.Pool, n int) (int64, error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback(ctx) }() // a no-op after Commit
	if _, err := tx.Exec(ctx, "TRUNCATE thing_part"); err != nil {
		return 0, fmt.Errorf("rebuild parts: %w", err)
	}
	tag, err := tx.Exec(ctx, "INSERT INTO thing_part (thing_id, geom) SELECT t.id, (ST_Dump(ST_Subdivide(t.geom, $1::int))).geom FROM thing t", n)
	if err != nil {
		return 0, fmt.Errorf("rebuild parts at %d vertices: %w", n, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, err
	}
	if _, err := pool.Exec(ctx, "VACUUM ANALYZE thing_part"); err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}
