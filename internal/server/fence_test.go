package server_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/geo/geotest"
	"github.com/geosearch/search/internal/kafka"
	"github.com/geosearch/search/internal/kafka/kafkatest"
	"github.com/geosearch/search/internal/postgis"
	"github.com/geosearch/search/internal/server/servertest"
)

// fenceFixture is a fresh database with the 1:50m countries and a grid of
// 10-degree cells in the collection "zones", the service on it, and the
// oracle's events for positions: computed from Search's answers.
func fenceFixture(t *testing.T) (dbURL string, svc *postgis.SearchService) {
	t.Helper()
	dbURL = servertest.Cluster.NewDatabase(t)
	pool, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	svc = postgis.NewSearchService(pool)
	var cells []geo.Feature
	for x := -180; x < 180; x += 10 {
		for y := -80; y < 80; y += 10 {
			cells = append(cells, geotest.Square(fmt.Sprintf("cell %d %d", x, y), fmt.Sprintf("%d:%d", x, y), nil, float64(x), float64(y), float64(x+10), float64(y+10)))
		}
	}
	features := append(geotest.Load(t, "ne_50m_countries.geojson"), cells...)
	if _, err := svc.Import(context.Background(), geo.ImportOptions{Collection: "zones"}, &geotest.Source{Features: features}); err != nil {
		t.Fatal(err)
	}
	return dbURL, svc
}

// oracle is the events positions cause by Search's answers, per device in
// seq order. The searches run four at a time (the big kill test asks
// 200,000).
func oracle(t *testing.T, svc geo.SearchService, positions []geo.Fix) []geo.Event {
	t.Helper()
	inside := make([][]geo.FenceThing, len(positions))
	errs := make([]error, len(positions))
	var wg sync.WaitGroup
	const workers = 4
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(positions); i += workers {
				inside[i], errs[i] = geotest.Inside(svc, positions[i])
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	want := geotest.OracleEvents(positions, func(i int) []geo.FenceThing { return inside[i] })
	geotest.SortEvents(want)
	return want
}

// topicEvents reads the events topic to its end as a read_committed reader
// and sorts them per device; it fails unless every device's events come in
// seq order.
func topicEvents(t *testing.T, broker string) []geo.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var got []geo.Event
	last := map[geo.DeviceKey]int64{}
	err := kafka.ReadEvents(ctx, kafka.EventsOptions{Brokers: []string{broker}, Topic: "geofence-events"}, func(e geo.Event) error {
		k := geo.DeviceKey{Collection: e.Collection, Device: e.Device}
		if e.Seq <= last[k] {
			return fmt.Errorf("device %s: seq %d after %d in the topic", e.Device, e.Seq, last[k])
		}
		last[k] = e.Seq
		got = append(got, e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	geotest.SortEvents(got)
	return got
}

// dbCount is a count(*)-like query's answer.
func dbCount(t *testing.T, dbURL, sql string) int64 {
	t.Helper()
	conn := servertest.Connect(t, dbURL)
	defer conn.Close(context.Background())
	var n int64
	if err := conn.QueryRow(context.Background(), sql).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func waitUntil(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// fenceSize is the kill test's devices × positions per device: small in
// make test, the 1,000 × 200 in make bench.
var fenceSize = flag.String("fence-size", "150x40", "devices × positions per device of TestGeofenceThroughKafkaSurvivesKill9, as DxN")

// TestGeofenceThroughKafkaSurvivesKill9 replays 150 devices × 40 positions
// (-fence-size; make bench: 1,000 × 200)
// through the positions topic into two server processes, kills one with
// SIGKILL once about a third is applied, starts it again, and reads the
// events topic as a read_committed consumer: exactly the events an oracle
// computes from PostGIS's Search answers, none missing, none doubled, in
// per-device order.
func TestGeofenceThroughKafkaSurvivesKill9(t *testing.T) {
	t.Parallel()
	broker := kafkatest.Start(t)
	dbURL, svc := fenceFixture(t)
	var devices, perDevice int
	if _, err := fmt.Sscanf(*fenceSize, "%dx%d", &devices, &perDevice); err != nil || devices < 1 || perDevice < 1 {
		t.Fatalf("-fence-size %q: want devices x positions, e.g. 1000x200", *fenceSize)
	}
	positions := geotest.Tracks(28, "zones", devices, perDevice, 4, time.Now().Add(-2*time.Hour).Truncate(time.Millisecond).UTC())
	// Batches of 50 make many transactions to kill in the middle of; the
	// big size takes batches of 1,000 and more time.
	batch, scale := 50, time.Duration(1)
	if len(positions) > 50_000 {
		batch, scale = 1000, time.Duration(len(positions)/20_000)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker.Addr()), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	recs := make([]*kgo.Record, len(positions))
	for i, p := range positions {
		recs[i] = &kgo.Record{Topic: "geofence-positions", Key: []byte(p.Device), Value: kafka.EncodePosition(p)}
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"DATABASE_URL": dbURL, "KAFKA_BROKERS": broker.Addr(), "FENCE_ENABLED": "true", "FENCE_BATCH": strconv.Itoa(batch), "LOG_LEVEL": "debug"}
	a := servertest.StartProc(t, env)
	b := servertest.StartProc(t, env)
	applied := func() int64 { return dbCount(t, dbURL, `SELECT coalesce(sum(next_offset), 0) FROM fence_offset`) }
	waitUntil(t, "a third of the positions applied", scale*2*time.Minute, func() bool { return applied() >= int64(len(positions))/3 })
	killedAt := applied()
	if err := a.Cmd.Process.Kill(); err != nil { // SIGKILL: no shutdown at all
		t.Fatal(err)
	}
	_ = a.Wait(t)
	c := servertest.StartProc(t, env)
	waitUntil(t, "every position applied and every event relayed", scale*3*time.Minute, func() bool {
		return applied() == int64(len(positions)) && dbCount(t, dbURL, `SELECT count(*) FROM fence_outbox`) == 0
	})
	// The instances' consumers have every partition's last record: no lag.
	for _, p := range []*servertest.Proc{b, c} {
		waitUntil(t, "no consumer lag in Monitor", time.Minute, func() bool { return fenceStatus(t, p.Addr).GetConsumerLag() == 0 })
		if st := fenceStatus(t, p.Addr); st.GetDevicesTracked() != int64(devices) || st.GetOutbox() != 0 || st.GetPositionsRejected() != 0 {
			t.Fatalf("Monitor's geofence = %v, want %d devices, an empty outbox, nothing rejected", st, devices)
		}
	}
	want := oracle(t, svc, positions)
	t.Logf("%d devices × %d positions, an instance killed with %d of them applied: the oracle has %d events", devices, perDevice, killedAt, len(want))
	if len(want) < 1000 {
		t.Fatalf("the oracle sees only %d events: the walk tests too little", len(want))
	}
	got := topicEvents(t, broker.Addr())
	if diff := cmp.Diff(want, got); diff != "" {
		seen := map[string]bool{}
		for _, e := range got {
			seen[fmt.Sprint(e.Device, e.Seq)] = true
		}
		for _, e := range want {
			if !seen[fmt.Sprint(e.Device, e.Seq)] {
				t.Logf("missing %s #%d %s", e.Device, e.Seq, e.Time)
			}
		}
		t.Fatalf("events in the topic: %d, want %d", len(got), len(want))
	}
}

// TestGeofenceThroughTrack sends positions through the gRPC Track stream:
// every position is answered in order, the answers' events are the
// oracle's, a replay of the same stream is all stale, and the events topic
// holds each event once (WatchEvents reads it back too).
func TestGeofenceThroughTrack(t *testing.T) {
	t.Parallel()
	broker := kafkatest.Start(t)
	dbURL, svc := fenceFixture(t)
	ts := servertest.Start(t, map[string]string{"DATABASE_URL": dbURL, "KAFKA_BROKERS": broker.Addr(), "FENCE_ENABLED": "true"}, true)
	positions := geotest.Tracks(29, "zones", 40, 40, 4, time.Now().Add(-time.Hour).Truncate(time.Millisecond).UTC())
	send := func() (events []geo.Event, stale int) {
		stream, err := ts.Client.Track(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for _, p := range positions {
				_ = stream.Send(&searchv1.TrackRequest{Device: p.Device, Collection: p.Collection,
					Point: &searchv1.Point{Lat: p.Point.Lat, Lng: p.Point.Lng}, Time: timestamppb.New(p.Time)})
			}
			_ = stream.CloseSend()
		}()
		for n := 0; ; n++ {
			resp, err := stream.Recv()
			if err == io.EOF {
				if n != len(positions) {
					t.Fatalf("%d answers to %d positions", n, len(positions))
				}
				geotest.SortEvents(events)
				return events, stale
			}
			if err != nil {
				t.Fatal(err)
			}
			if resp.GetError() != nil {
				t.Fatalf("position %d: %v", n, resp.GetError())
			}
			if resp.GetStale() {
				stale++
			}
			for _, e := range resp.GetEvents() {
				if e.GetDevice() != positions[n].Device || !e.GetTime().AsTime().Equal(positions[n].Time) {
					t.Fatalf("answer %d is about %s at %v, not position %d", n, e.GetDevice(), e.GetTime().AsTime(), n)
				}
				events = append(events, eventFromProto(e))
			}
		}
	}
	got, _ := send()
	want := oracle(t, svc, positions)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("Track's events (-oracle +got):\n%s", diff)
	}
	again, stale := send()
	if len(again) != 0 || stale != len(positions) {
		t.Fatalf("a replay caused %d events and %d stale answers, want none and %d", len(again), stale, len(positions))
	}
	waitUntil(t, "every event relayed", time.Minute, func() bool { return dbCount(t, dbURL, `SELECT count(*) FROM fence_outbox`) == 0 })
	if diff := cmp.Diff(want, topicEvents(t, broker.Addr())); diff != "" {
		t.Fatalf("events in the topic (-oracle +got):\n%s", diff)
	}
	// Track is not the positions topic: Monitor counts no consumed
	// position, but the relay's events and the devices stored.
	st := fenceStatus(t, ts.Addr)
	if wantSt := (&searchv1.GeofenceStatus{EventsPublished: int64(len(want)), DevicesTracked: 40}); !proto.Equal(st, wantSt) {
		t.Fatalf("Monitor's geofence = %v, want %v", st, wantSt)
	}
	watch, err := ts.Client.WatchEvents(context.Background(), &searchv1.WatchEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var watched []geo.Event
	for {
		e, err := watch.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		watched = append(watched, eventFromProto(e))
	}
	geotest.SortEvents(watched)
	if diff := cmp.Diff(want, watched); diff != "" {
		t.Fatalf("WatchEvents (-oracle +got):\n%s", diff)
	}
}

// fenceStatus is Monitor's geofence of the server at addr.
func fenceStatus(t *testing.T, addr string) *searchv1.GeofenceStatus {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	resp, err := searchv1.NewSearchServiceClient(conn).Monitor(context.Background(), &searchv1.MonitorRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetGeofence() == nil {
		t.Fatal("Monitor has no geofence on a server with FENCE_ENABLED")
	}
	return resp.GetGeofence()
}

func eventFromProto(e *searchv1.FenceEvent) geo.Event {
	typ := geo.Enter
	if e.GetType() == searchv1.FenceEventType_FENCE_EVENT_TYPE_EXIT {
		typ = geo.Exit
	}
	return geo.Event{Device: e.GetDevice(), Collection: e.GetCollection(), Type: typ, Seq: e.GetSeq(),
		Thing: geo.FenceThing{ID: e.GetThingId(), Key: e.GetThingKey()},
		Point: geo.Point{Lat: e.GetPoint().GetLat(), Lng: e.GetPoint().GetLng()}, Time: e.GetTime().AsTime()}
}
