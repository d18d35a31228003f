package fencebench_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/geo/geotest"
	"github.com/geosearch/search/internal/kafka"
	"github.com/geosearch/search/internal/kafka/kafkatest"
	"github.com/geosearch/search/internal/memindex"
	"github.com/geosearch/search/internal/metrics"
	"github.com/geosearch/search/internal/postgis"
	"github.com/geosearch/search/internal/postgis/postgistest"
)

var cluster *postgistest.Cluster

func TestMain(m *testing.M) { os.Exit(postgistest.Main(m, &cluster)) }

const (
	devices   = 1000
	perDevice = 200   // positions per device in one round (the track set)
	batch     = 10000 // FENCE_BATCH's default
)

// fixture is the pipeline the server wires when FENCE_ENABLED is on
// (cmd/search-server/fence.go), in this process: the in-memory index's
// SearchService over 10,000 polygons, the Tracker, the positions consumer
// and the relay, on a kfake broker.
type fixture struct {
	broker    *kafkatest.Broker
	dbURL     string
	svc       *postgis.SearchService // Locate through the database
	lookups   *memindex.SearchService
	pool      *pgxpool.Pool
	cfg       kafka.FenceConfig
	relay     *kafka.Relay
	positions *kafka.Positions
	timings   *timings
	// memindexRate and grpcRate are the last locate-memindex and
	// locate-grpc runs' positions/s.
	memindexRate, grpcRate float64
}

// timings sums the pipeline's timers (fence.batch_locate, ...) per name.
type timings struct {
	metrics.Nop
	mu  sync.Mutex
	sum map[string]time.Duration
	n   map[string]int
}

func (t *timings) Timing(name string, d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sum[name] += d
	t.n[name]++
}

// report adds each timer's mean, in ms, to b's metrics.
func (t *timings) report(b *testing.B) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for name, d := range t.sum {
		b.ReportMetric(float64(d.Microseconds())/1000/float64(t.n[name]), strings.TrimPrefix(name, "fence.")+"-ms")
	}
}

func (t *timings) reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	clear(t.sum)
	clear(t.n)
}

func newFixture(b *testing.B) *fixture {
	b.Helper()
	ctx := context.Background()
	dbURL := cluster.NewDatabase(b)
	dbc := postgis.Config{URL: dbURL, MaxWriteConns: 4}
	pool, err := postgis.Open(ctx, dbc, "fencebench", postgis.NewStatementTimeout(0))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	// The fence's pool of its own, as the server opens it (with its
	// synchronous_commit rule).
	fencePool, err := postgis.OpenFence(ctx, dbc, "fencebench", postgis.NewStatementTimeout(0))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(fencePool.Close)
	svc := postgis.NewSearchService(pool)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := memindex.NewRegistry(svc, memindex.Config{Mode: "on", BudgetBytes: 1 << 30, PollInterval: time.Second}, logger)
	lookups := memindex.NewSearchService(svc, reg, metrics.Nop{})
	if _, err := lookups.Import(ctx, geo.ImportOptions{Collection: "zones"}, &geotest.Source{Features: geotest.Grid(100, nil)}); err != nil {
		b.Fatal(err)
	}
	if err := reg.Refresh(ctx); err != nil {
		b.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	b.Cleanup(cancel)
	go reg.Run(rctx)
	f := &fixture{broker: kafkatest.Start(b), dbURL: dbURL, svc: svc, lookups: lookups, pool: pool}
	f.cfg = kafka.FenceConfig{
		Enabled: true, PositionsTopic: "geofence-positions", EventsTopic: "geofence-events",
		CheckpointTopic: "geofence-relay-checkpoints", Group: "search-geofence", RelayTxnID: "search-geofence-relay",
		MaxFuture: time.Minute, Batch: batch,
	}
	store := postgis.NewFenceStore(fencePool)
	tracker := geo.NewTracker(lookups, store, f.cfg.MaxFuture, nil)
	brokers := []string{f.broker.Addr()}
	f.timings = &timings{sum: map[string]time.Duration{}, n: map[string]int{}}
	f.relay = kafka.NewRelay(f.cfg, brokers, store, logger, f.timings)
	f.positions = kafka.NewPositions(f.cfg, brokers, tracker, store, logger, f.timings)
	go f.relay.Run(rctx)
	return f
}

// round is the positions of round r: every device's perDevice next steps,
// interleaved (one position of each device, then the next), later than
// every earlier round's.
func round(walks []geo.Fix, r int) []geo.Fix {
	shift := time.Duration(r*perDevice) * time.Second
	out := make([]geo.Fix, 0, len(walks))
	for i := range perDevice {
		for d := range devices {
			p := walks[d*perDevice+i]
			p.Time = p.Time.Add(shift)
			out = append(out, p)
		}
	}
	return out
}

// hold puts fixes in the positions topic inside a producer's transaction
// and leaves it open: a read_committed consumer (the positions consumer
// is one) sees none of them until release commits it, and then all of
// them at once, already in the broker.
func (f *fixture) hold(b *testing.B, fixes []geo.Fix) (release func()) {
	b.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(f.broker.Addr()), kgo.AllowAutoTopicCreation(),
		kgo.TransactionalID("fencebench-positions"), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := cl.BeginTransaction(); err != nil {
		b.Fatal(err)
	}
	recs := make([]*kgo.Record, len(fixes))
	for i, p := range fixes {
		recs[i] = &kgo.Record{Topic: f.cfg.PositionsTopic, Key: []byte(p.Device), Value: kafka.EncodePosition(p)}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		b.Fatal(err)
	}
	return func() {
		defer cl.Close()
		if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
			b.Fatal(err)
		}
	}
}

// runConsumer runs the positions consumer, as a server runs it, until
// the returned stop is called.
func (f *fixture) runConsumer(b *testing.B) (stop func()) {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.positions.RunOnce(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("positions consumer: %v", err)
		}
	}
}

// BenchmarkGeofenceKafka measures geofencing end to end against 10,000
// polygons (a 100 × 100 grid), with the in-memory index on. The positions
// consumer runs throughout, a member of its group, as a server's does. A
// round of 1,000 devices × 200 positions is put in the positions topic in
// an open producer transaction (invisible to the consumer, which reads
// read_committed); the clock runs from that transaction's commit, which
// releases the round at once, until every event the round caused is
// committed to the events topic by the relay. A round before the clock
// has the consumer join its group.
//
// In the same run, on the same points in batches of the same size:
// locate-grpc asks a search-server's Locate RPC (the issue's "plain
// Locate"; x-locate-grpc is the fraction of its rate); locate-memindex
// asks the in-memory index's SearchService (the one the tracker uses) in
// this process, a stricter floor (no gRPC, no Kafka, no database;
// x-locate-memindex); locate-postgis the database's Locate (MEMINDEX off).
// kafka also reports the mean time of each stage per batch:
// batch_locate-ms (containment, overlapped with the previous batch's
// transaction), batch_apply-ms (the transaction), relay_read-ms and
// relay_publish-ms; and the CPU time per position of this process (kfake
// included) and of PostgreSQL, which, unlike the rates, hardly depend on
// what else the machine runs.
// Timings belong here and in make bench, never in tests.
func BenchmarkGeofenceKafka(b *testing.B) {
	f := newFixture(b)
	walks := geotest.Tracks(28, "zones", devices, perDevice, 2, time.Now().Add(-24*time.Hour).Truncate(time.Millisecond))
	first := round(walks, 0)
	points := make([]geo.Point, len(first))
	for i, p := range first {
		points[i] = p.Point
	}
	b.Run("locate-memindex", func(b *testing.B) { f.memindexRate = benchLocate(b, f.lookups, points) })
	// The server runs during its sub-benchmark only: its loops (the
	// index's polling, health checks) stay out of kafka's CPU counts.
	b.Run("locate-grpc", func(b *testing.B) { f.grpcRate = benchLocateGRPC(b, f.startServer(b), points) })
	b.Run("locate-postgis", func(b *testing.B) { benchLocate(b, f.svc, points) })
	r := 0 // rounds outlive a run of the sub-benchmark
	b.Run("kafka", func(b *testing.B) {
		var positions, events int64
		var goCPU, pgCPU time.Duration // this process's, PostgreSQL's
		stop := f.runConsumer(b)
		defer stop()
		warm := round(walks, r)
		r++
		before, published := f.positions.Counts(), f.relay.Published()
		f.hold(b, warm)()
		f.await(b, before.Consumed+int64(len(warm)), published-before.Events)
		f.timings.reset()
		for b.Loop() {
			b.StopTimer()
			fixes := round(walks, r)
			r++
			release := f.hold(b, fixes)
			before := f.positions.Counts()
			published := f.relay.Published()
			pg0 := postgresCPU()
			self0 := selfCPU()
			b.StartTimer()
			release()
			f.await(b, before.Consumed+int64(len(fixes)), published-before.Events)
			b.StopTimer()
			self1 := selfCPU()
			pg1 := postgresCPU()
			goCPU, pgCPU = goCPU+self1-self0, pgCPU+pg1-pg0
			b.StartTimer()
			after := f.positions.Counts()
			if after.Rejected != before.Rejected || after.Stale != before.Stale {
				b.Fatalf("rejected %d, stale %d positions of the benchmark", after.Rejected-before.Rejected, after.Stale-before.Stale)
			}
			positions += int64(len(fixes))
			events += after.Events - before.Events
		}
		rate := float64(positions) / b.Elapsed().Seconds()
		b.ReportMetric(rate, "positions/s")
		b.ReportMetric(float64(events)/float64(positions), "events/position")
		if f.memindexRate > 0 {
			b.ReportMetric(rate/f.memindexRate, "x-locate-memindex")
		}
		if f.grpcRate > 0 {
			b.ReportMetric(rate/f.grpcRate, "x-locate-grpc")
		}
		f.timings.report(b)
		b.ReportMetric(float64(goCPU.Microseconds())/float64(positions), "go-cpu-µs/position")
		b.ReportMetric(float64(pgCPU.Microseconds())/float64(positions), "pg-cpu-µs/position")
	})
}

// await waits until the positions consumer consumed want positions in
// all and the relay published every event they caused (published minus
// consumed events is the relay's lead over the consumer: constant).
func (f *fixture) await(b *testing.B, want, lead int64) {
	b.Helper()
	deadline := time.Now().Add(10 * time.Minute)
	for {
		c := f.positions.Counts()
		if c.Consumed >= want && f.relay.Published()-c.Events >= lead {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("after 10 minutes: %d of %d positions consumed, %d of %d events published", c.Consumed, want, f.relay.Published(), c.Events+lead)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// benchLocate asks svc for the things containing points, in batches of
// the consumer's size, and returns the positions/s it reports.
func benchLocate(b *testing.B, svc geo.SearchService, points []geo.Point) float64 {
	ctx := context.Background()
	n, things := 0, 0
	for b.Loop() {
		start := (n * batch) % len(points)
		q := geo.LocateQuery{Filter: geo.Filter{Collections: []string{"zones"}}, Points: points[start : start+batch],
			Limit: geo.MaxFenceThings + 1, Output: geo.Output{Omit: geo.FieldProperties | geo.FieldBBox}}
		found, err := svc.Locate(ctx, q)
		if err != nil {
			b.Fatal(err)
		}
		for _, ts := range found {
			things += len(ts)
		}
		n++
	}
	rate := float64(n*batch) / b.Elapsed().Seconds()
	b.ReportMetric(rate, "positions/s")
	b.ReportMetric(float64(things)/float64(n*batch), "things/position")
	return rate
}
