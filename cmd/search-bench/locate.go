package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/sethvargo/go-envconfig"
	"google.golang.org/grpc"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/grpcapi"
	"github.com/geosearch/search/internal/postgis"
)

// Targets of issue 14 (Locate) and issue 15 (unary server CPU).
const (
	locateDirectTarget     = 2.0 // Locate's point rate over the direct single-point SQL's
	locateServerUsTarget   = 5.0 // server CPU per located point, us
	unaryServerUsTarget    = 40  // server CPU per unary point Search, us
	cliRSSTargetMB         = 100 // search-client locate's peak RSS on --cli-points points
	cliSmallPoints         = 10_000
	defaultSweepConcurrent = "1,2,4,8,16,32,64"
)

// serverLocateBatch is the server's default LOCATE_BATCH_SIZE, read from
// its configuration struct so that the benchmark follows it.
func serverLocateBatch(ctx context.Context) (int, error) {
	var c grpcapi.Config
	if err := envconfig.ProcessWith(ctx, &envconfig.Config{Target: &c, Lookuper: envconfig.MapLookuper(nil)}); err != nil {
		return 0, fmt.Errorf("the server's default settings: %w", err)
	}
	return c.LocateBatchSize, nil
}

// locateKinds are the Locate rounds on the same points as the unary ones:
// Locate through gRPC (one stream per worker, the bulk form: a call's
// points in one message), and its set-based statement straight to the
// database, both batch points per call.
func (b *bench) locateKinds(at endpoint, pool *pgxpool.Pool) []roundKind {
	ls, op := grpcLocateBulk(at.conn, b.points, b.batch)
	return []roundKind{
		{kind: kindLocate, at: at, op: op, per: b.batch, done: ls.close},
		{kind: kindSetSQL, at: endpoint{}, op: same(setSQL(pool, b.points, b.batch)), per: b.batch},
	}
}

// verifyLocate checks that Locate answers each of points exactly as the
// direct Search statement does, through one stream.
func verifyLocate(ctx context.Context, conn *grpc.ClientConn, pool *pgxpool.Pool, points []geo.Point) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := searchv1.NewSearchServiceClient(conn).Locate(ctx)
	if err != nil {
		return err
	}
	go func() {
		for i, p := range points {
			if stream.Send(&searchv1.LocateRequest{Id: strconv.Itoa(i), Point: &searchv1.Point{Lat: p.Lat, Lng: p.Lng}}) != nil {
				return
			}
		}
		_ = stream.CloseSend()
	}()
	for i, p := range points {
		resp, err := stream.Recv()
		if err != nil {
			return fmt.Errorf("locate answer %d: %w", i, err)
		}
		if resp.GetId() != strconv.Itoa(i) {
			return fmt.Errorf("locate answer %d has id %q", i, resp.GetId())
		}
		var got []int64
		for _, t := range resp.GetThings() {
			got = append(got, t.GetId())
		}
		sql, args := postgis.SearchStatement(pointQuery(p))
		want, err := queryIDs(ctx, pool, sql, args)
		if err != nil {
			return err
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("point %d %v: Locate returned %v, the direct Search statement %v", i, p, got, want)
		}
	}
	return nil
}

// sweepPoint is one kind at one concurrency.
type sweepPoint struct {
	Kind        string  `json:"kind"`
	Concurrency int     `json:"concurrency"`
	RPS         float64 `json:"rps"` // answers per second
	P50Ms       float64 `json:"p50_ms"`
	P99Ms       float64 `json:"p99_ms"` // per call: a batch for Locate and set sql
	ServerUsReq float64 `json:"server_cpu_us_per_request"`
	DBUsReq     float64 `json:"db_cpu_us_per_request"`
	BenchUsReq  float64 `json:"bench_cpu_us_per_request"`
	Errors      int     `json:"errors"`
}

// sweep runs each of kinds at each concurrency of o.sweep for
// o.sweepDuration, the kinds alternating at each level.
func (b *bench) sweep(ctx context.Context, r *report, kinds []roundKind) error {
	for _, c := range b.o.sweep {
		for _, k := range kinds {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			b.warm(ctx, k, c, min(b.o.warmup, b.o.sweepDuration/4))
			rr := b.measure(ctx, 0, k, c, b.o.sweepDuration)
			b.progress("sweep concurrency %2d %-8s %8.0f answers/s  p99 %7.2f ms  errors %d", c, k.kind, rr.RPS, rr.P99Ms, rr.Errors)
			r.Sweep = append(r.Sweep, sweepPoint{Kind: k.kind, Concurrency: c, RPS: rr.RPS, P50Ms: rr.P50Ms, P99Ms: rr.P99Ms,
				ServerUsReq: rr.ServerUsReq, DBUsReq: rr.DBUsReq, BenchUsReq: rr.BenchUsReq, Errors: rr.Errors})
		}
	}
	return nil
}

// batchPoint is the set-based statement at one batch size.
type batchPoint struct {
	Batch    int       `json:"batch"`
	RPS      float64   `json:"points_per_second"`
	P50Ms    float64   `json:"p50_ms"` // per statement
	P99Ms    float64   `json:"p99_ms"`
	DBUsReq  float64   `json:"db_cpu_us_per_point"`
	AllUsReq float64   `json:"db_and_bench_cpu_us_per_point"`
	PerRound []float64 `json:"points_per_second_per_round"`
}

// batchCurve sends the set-based statement at each of o.locateBatches
// points per statement, the sizes alternating within each round, and
// records the database's CPU per point: what LOCATE_BATCH_SIZE trades.
func (b *bench) batchCurve(ctx context.Context, r *report, pool *pgxpool.Pool) error {
	sizes := b.o.locateBatches
	dbs, alls, p50s, p99s := make([][]float64, len(sizes)), make([][]float64, len(sizes)), make([][]float64, len(sizes)), make([][]float64, len(sizes))
	res := make([]batchPoint, len(sizes))
	for round := 1; round <= b.o.rounds; round++ {
		for i, n := range sizes {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			k := roundKind{kind: fmt.Sprintf("set sql %d", n), at: endpoint{}, op: same(setSQL(pool, b.points, n)), per: n}
			b.warm(ctx, k, b.o.concurrency, min(b.o.warmup, b.o.sweepDuration/4))
			rr := b.measure(ctx, round, k, b.o.concurrency, b.o.sweepDuration)
			b.progress("round %d set-based statement, %5d points: %8.0f points/s  db %5.1f us/point  p99 %7.2f ms", round, n, rr.RPS, rr.DBUsReq, rr.P99Ms)
			res[i].Batch = n
			res[i].PerRound = append(res[i].PerRound, rr.RPS)
			dbs[i], alls[i] = append(dbs[i], rr.DBUsReq), append(alls[i], rr.DBUsReq+rr.BenchUsReq)
			p50s[i], p99s[i] = append(p50s[i], rr.P50Ms), append(p99s[i], rr.P99Ms)
		}
	}
	for i := range res {
		res[i].RPS, res[i].DBUsReq, res[i].AllUsReq = median(res[i].PerRound), median(dbs[i]), median(alls[i])
		res[i].P50Ms, res[i].P99Ms = median(p50s[i]), median(p99s[i])
	}
	r.LocateBatches = res
	return nil
}

// cliResult is search-client locate run on a file of points.
type cliResult struct {
	Points       int     `json:"points"`
	Seconds      float64 `json:"seconds"`
	PointsPerSec float64 `json:"points_per_sec"`
	PeakRSSMB    float64 `json:"peak_rss_mb"` // the client's VmHWM
	ClientCPU    float64 `json:"client_cpu_seconds"`
	ServerCPU    float64 `json:"server_cpu_seconds"`
	OutputMB     float64 `json:"output_mb"` // the NDJSON it wrote
}

// cliLocate runs the real search-client binary's locate command on n
// random points (a CSV file written first) against the server at, its
// answers counted and dropped, and samples its peak RSS.
func (b *bench) cliLocate(ctx context.Context, at endpoint, dir string, n int) (cliResult, error) {
	path := filepath.Join(dir, fmt.Sprintf("points-%d.csv", n))
	if err := writePointsCSV(path, b.o.seed, n); err != nil {
		return cliResult{}, err
	}
	defer os.Remove(path)
	cmd := exec.CommandContext(ctx, b.o.clientBin, "--addr", at.proc.addr, "locate", path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return cliResult{}, err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	srv0 := b.serverCPU(at)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return cliResult{}, fmt.Errorf("start %s: %w", b.o.clientBin, err)
	}
	// The peak RSS is VmHWM, the high-water mark of the client's own
	// memory, sampled until it exits (it only grows). wait4's ru_maxrss
	// cannot tell it: Go starts a child with vfork, and exec folds the
	// parent's high-water mark, this benchmark's, into the child's.
	hwm := make(chan int64, 1)
	stop := make(chan struct{})
	go func() {
		var peak int64
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			if v, err := readStatusKB(cmd.Process.Pid, "VmHWM:"); err == nil {
				peak = max(peak, v)
			}
			select {
			case <-stop:
				hwm <- peak
				return
			case <-t.C:
			}
		}
	}()
	lines, bytes, cerr := countLines(out)
	close(stop)
	peakKB := <-hwm
	if err := cmd.Wait(); err != nil {
		return cliResult{}, fmt.Errorf("search-client locate %d points: %w\n%s", n, err, stderr.String())
	}
	if cerr != nil {
		return cliResult{}, cerr
	}
	if lines != n {
		return cliResult{}, fmt.Errorf("search-client locate wrote %d answers for %d points\n%s", lines, n, stderr.String())
	}
	secs := time.Since(start).Seconds()
	ru, _ := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	res := cliResult{Points: n, Seconds: secs, PointsPerSec: float64(n) / secs, ServerCPU: (b.serverCPU(at) - srv0).Seconds(),
		OutputMB: float64(bytes) / (1 << 20), PeakRSSMB: float64(peakKB) / 1024}
	if ru != nil {
		res.ClientCPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	}
	return res, nil
}

// writePointsCSV writes n random points as id,lat,lng with a header.
func writePointsCSV(path string, seed uint64, n int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<16)
	fmt.Fprintln(w, "id,lat,lng")
	rng := rand.New(rand.NewPCG(seed, 42))
	buf := make([]byte, 0, 64)
	for i := range n {
		buf = strconv.AppendInt(buf[:0], int64(i), 10)
		buf = append(buf, ',')
		buf = strconv.AppendFloat(buf, rng.Float64()*180-90, 'f', 6, 64)
		buf = append(buf, ',')
		buf = strconv.AppendFloat(buf, rng.Float64()*360-180, 'f', 6, 64)
		buf = append(buf, '\n')
		w.Write(buf)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func countLines(r io.Reader) (lines int, n int64, err error) {
	buf := make([]byte, 1<<16)
	for {
		k, err := r.Read(buf)
		n += int64(k)
		for _, c := range buf[:k] {
			if c == '\n' {
				lines++
			}
		}
		if err == io.EOF {
			return lines, n, nil
		}
		if err != nil {
			return lines, n, err
		}
	}
}
