package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"

	"github.com/geosearch/search/internal/geo"
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
// run sets up, verifies, runs the rounds and the phases after them, and
// returns the report. Everything it started is stopped when it returns.
func run(ctx context.Context, o options, log io.Writer) (*report, error) {
	b, r, err := newBench(ctx, o, log)
	if err != nil {
		return nil, err
	}
	sv, err := b.startServers(ctx)
	defer sv.close()
	if err != nil {
		return nil, err
	}
	pool, err := b.openPool(ctx, sv.dbURL)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	if b.pmPID, err = postmasterPID(ctx, sv.dbURL); err != nil {
		b.progress("database CPU will not be measured: %v", err)
	}
	if err := b.importCountries(ctx, sv.main, pool, r); err != nil {
		return nil, err
	}
	if err := b.verify(ctx, r, sv, pool); err != nil {
		return nil, err
	}
	kinds, locate := b.roundKinds(sv, pool)
	if err := b.alternate(ctx, r, kinds); err != nil {
		return nil, err
	}
	if err := b.curves(ctx, r, sv, pool, append([]roundKind{kinds[0], kinds[1]}, locate...)); err != nil {
		return nil, err
	}
	if err := b.databasePhases(ctx, r, sv, pool); err != nil {
		return nil, err
	}
	return r, b.finish(ctx, r, pool)
}

// newBench is the bench of o and its report, with the settings filled in
// and the Locate batch size chosen (the server's default unless
// --locate-batch).
func newBench(ctx context.Context, o options, log io.Writer) (*bench, *report, error) {
	b := &bench{o: o, log: log, points: randomPoints(o.seed, o.points)}
	r := &report{Machine: describeMachine(), Settings: settingsReport{
		Rounds: o.rounds, Duration: o.duration.String(), Concurrency: o.concurrency,
		Seed: o.seed, Points: o.points, GridCells: o.gridCells, Countries: o.countries,
	}}
	b.batch = o.locateBatch
	if b.batch == 0 {
		var err error
		if b.batch, err = serverLocateBatch(ctx); err != nil {
			return nil, nil, err
		}
	}
	r.LocateBatch = b.batch
	return b, r, nil
}

// verify checks the servers' answers against the database's before
// anything is timed: points, names and Locate on the main server, points on
// the others.
func (b *bench) verify(ctx context.Context, r *report, sv *servers, pool *pgxpool.Pool) error {
	o := b.o
	b.progress("verifying %d points and %d name searches", o.verify, len(nameQueries))
	r.Verified.Points, r.Verified.NameQueries = o.verify, len(nameQueries)
	var err error
	if r.Verified.PointHits, err = verifyPoints(ctx, sv.main.conn, pool, b.points[:o.verify], true); err != nil {
		return fmt.Errorf("answers differ:\n%w", err)
	}
	if err := verifyNames(ctx, sv.main.conn, pool); err != nil {
		return fmt.Errorf("answers differ: %w", err)
	}
	if err := verifyLocate(ctx, sv.main.conn, pool, b.points[:o.verify]); err != nil {
		return fmt.Errorf("answers differ:\n%w", err)
	}
	for _, other := range []endpoint{sv.logging, sv.baseline} {
		if other.conn == nil {
			continue
		}
		if _, err := verifyPoints(ctx, other.conn, pool, b.points[:min(o.verify, 100)], false); err != nil {
			return fmt.Errorf("answers differ (server %s):\n%w", other.proc.name, err)
		}
	}
	return nil
}

// roundKinds are the kinds the alternating rounds run, gRPC's first and
// direct SQL's second, and among them Locate's.
func (b *bench) roundKinds(sv *servers, pool *pgxpool.Pool) (kinds, locate []roundKind) {
	main := sv.main
	kinds = []roundKind{
		{kind: kindGRPC, at: main, op: same(grpcPoint(main.conn, b.points))},
		{kind: kindDirect, at: endpoint{}, op: same(directPoint(pool, b.points))},
		{kind: kindNaive, at: endpoint{}, op: same(naivePoint(pool, b.points))},
		{kind: kindName, at: main, op: grpcNameWalk(main.conn, b.o.seed)},
		{kind: kindHealth, at: main, op: same(grpcHealth(main.conn))},
	}
	if sv.bare.conn != nil {
		kinds = append(kinds, roundKind{kind: kindBareHealth, at: sv.bare, op: same(grpcHealth(sv.bare.conn))})
	}
	if sv.logging.conn != nil {
		kinds = append(kinds, roundKind{kind: kindGRPCLogging, at: sv.logging, op: same(grpcPoint(sv.logging.conn, b.points))})
	}
	if sv.baseline.conn != nil {
		kinds = append(kinds, roundKind{kind: kindBaseline, at: sv.baseline, op: same(grpcPoint(sv.baseline.conn, b.points))})
	}
	locate = b.locateKinds(main, pool)
	kinds = append(kinds, locate...)
	kinds = append(kinds, b.locatePerMessageKind(main))
	if sv.baseline.conn != nil {
		// The bulk form, as kindLocate's (it was a message per point, so
		// that the two were not the same work): a baseline from before
		// the bulk form answers its rounds with errors.
		ls, op := grpcLocateBulk(sv.baseline.conn, b.points, b.batch)
		kinds = append(kinds, roundKind{kind: kindBaseLocate, at: sv.baseline, op: op, per: b.batch, done: ls.close})
	}
	return kinds, locate
}

// curves runs what follows the rounds on the main server: the concurrency
// sweep of sweepKinds, the Locate batch curve, search-client locate and the
// soak.
func (b *bench) curves(ctx context.Context, r *report, sv *servers, pool *pgxpool.Pool, sweepKinds []roundKind) error {
	o := b.o
	if len(o.sweep) > 0 {
		b.progress("sweep: concurrency %v, %s per kind and level", o.sweep, o.sweepDuration)
		if err := b.sweep(ctx, r, sweepKinds); err != nil {
			return err
		}
	}
	if len(o.locateBatches) > 0 {
		if err := b.batchCurve(ctx, r, pool); err != nil {
			return err
		}
	}
	if err := b.cliPhase(ctx, r, sv.main, sv.dbURL, sv.dir); err != nil {
		return err
	}
	if o.soak > 0 && sv.main.proc != nil {
		b.progress("soak: %s of gRPC point searches", o.soak)
		sk := b.soak(ctx, sv.main)
		r.Soak = &sk
	}
	return nil
}

// databasePhases runs the phases that need a database of the bench's own:
// the subdivision curve and the grid.
func (b *bench) databasePhases(ctx context.Context, r *report, sv *servers, pool *pgxpool.Pool) error {
	if sv.db == nil {
		return nil
	}
	if len(b.o.subdivide) > 0 {
		if err := b.subdivideCurve(ctx, r, pool); err != nil {
			return err
		}
	}
	if b.o.gridCells > 0 {
		if err := b.gridPhase(ctx, r, sv.db, sv.dir); err != nil {
			return err
		}
	}
	return nil
}

// finish records the machine's load and the database's description,
// computes the summary and writes the plots.
func (b *bench) finish(ctx context.Context, r *report, pool *pgxpool.Pool) error {
	r.Machine.LoadEnd = loadAverage()
	if err := b.describeDatabase(ctx, pool, &r.Machine); err != nil {
		return err
	}
	r.summarize()
	if b.o.plotsDir != "" {
		var err error
		if r.Plots, err = r.writePlots(b.o.plotsDir); err != nil {
			return err
		}
	}
	return nil
}

func (b *bench) progress(format string, args ...any) {
	fmt.Fprintf(b.log, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// openPool opens the direct rounds' pool: as many connections as requests
// in flight (up to the sweep's highest concurrency, so that each level of
// the sweep has a connection per request; --concurrency of them open at
// once), pgx's defaults otherwise (statements prepared and cached per
// connection, as the server's pool does).
func (b *bench) openPool(ctx context.Context, url string) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("--database-url: %w", err)
	}
	pc.MaxConns = int32(max(b.o.concurrency, slices.Max(append([]int{0}, b.o.sweep...))))
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
	cpu, err := procCPU(at.pid())
	if err != nil {
		return 0
	}
	return cpu
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
