package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/geo/geotest"
	"github.com/geosearch/search/internal/kafka"
	"github.com/geosearch/search/internal/kafka/kafkatest"
	"github.com/geosearch/search/internal/metrics"
)

// cellSearch is a geo.SearchService (only Collection and Locate) whose
// collection "zones" is the 1-degree cells of [0, 10]²: a point is inside
// the cell it falls in, by id 1 + 10*floor(lng) + floor(lat).
type cellSearch struct{ geo.SearchService }

func (cellSearch) Collection(_ context.Context, name string) (geo.Collection, error) {
	if name != "zones" {
		return geo.Collection{}, geo.Errorf(geo.NotFound, "no collection %q", name)
	}
	return geo.Collection{Name: name}, nil
}

func (cellSearch) Locate(_ context.Context, q geo.LocateQuery) ([][]geo.Thing, error) {
	out := make([][]geo.Thing, len(q.Points))
	for i, p := range q.Points {
		out[i] = []geo.Thing{}
		if th, ok := cellOf(p); ok {
			out[i] = []geo.Thing{{ID: th.ID, Key: th.Key, Collection: "zones"}}
		}
	}
	return out, nil
}

func cellOf(p geo.Point) (geo.FenceThing, bool) {
	if p.Lat < 0 || p.Lat >= 10 || p.Lng < 0 || p.Lng >= 10 {
		return geo.FenceThing{}, false
	}
	x, y := int(math.Floor(p.Lng)), int(math.Floor(p.Lat))
	return geo.FenceThing{ID: int64(1 + 10*x + y), Key: fmt.Sprintf("%d-%d", x, y)}, true
}

// memFences is an in-memory geo.FenceStore: Apply is one critical section.
type memFences struct {
	mu      sync.Mutex
	states  map[geo.DeviceKey]geo.DeviceState
	offsets map[int32]int64
	events  []geo.Event
}

func newMemFences() *memFences {
	return &memFences{states: map[geo.DeviceKey]geo.DeviceState{}, offsets: map[int32]int64{}}
}

func (m *memFences) Apply(_ context.Context, keys []geo.DeviceKey, offsets []geo.Offset, step func(map[geo.DeviceKey]geo.DeviceState) (geo.FenceChange, error)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, o := range offsets {
		if cur, ok := m.offsets[o.Partition]; ok && cur != o.From {
			return geo.Errorf(geo.Aborted, "offset of %d moved on", o.Partition)
		}
	}
	states := map[geo.DeviceKey]geo.DeviceState{}
	for _, k := range keys {
		if s, ok := m.states[k]; ok {
			states[k] = s
		}
	}
	change, err := step(states)
	if err != nil {
		return err
	}
	for k, s := range change.States {
		m.states[k] = s
	}
	for _, k := range change.Deleted {
		delete(m.states, k)
	}
	for _, o := range offsets {
		m.offsets[o.Partition] = o.Next
	}
	m.events = append(m.events, change.Events...)
	return nil
}

func (m *memFences) Offsets(context.Context, string, string) (map[int32]int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[int32]int64{}
	for p, o := range m.offsets {
		out[p] = o
	}
	return out, nil
}

func (m *memFences) stored() (int64, []geo.Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var n int64
	for _, o := range m.offsets {
		n += o
	}
	return n, append([]geo.Event(nil), m.events...)
}

// producePositions writes positions to the topic, keyed by device.
func producePositions(t *testing.T, broker string, topic string, positions []geo.Fix) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	recs := make([]*kgo.Record, len(positions))
	for i, p := range positions {
		recs[i] = &kgo.Record{Topic: topic, Key: []byte(p.Device), Value: kafka.EncodePosition(p)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// TestPositionsCrashAndTwoMembers: a consumer that dies in the middle of
// the stream (before applying its third batch) is followed by two members
// of the group sharing the partitions; the events stored are exactly the
// oracle's, none lost, none doubled, and bad records are counted.
func TestPositionsCrashAndTwoMembers(t *testing.T) {
	t.Parallel()
	broker := kafkatest.Start(t)
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second).UTC()
	positions := geotest.Tracks(7, "zones", 20, 60, 0.8, t0)
	for i := range positions { // squeeze the walks into the cells
		positions[i].Point.Lat = math.Mod(math.Abs(positions[i].Point.Lat), 12)
		positions[i].Point.Lng = math.Mod(math.Abs(positions[i].Point.Lng), 12)
	}
	producePositions(t, broker.Addr(), "positions", positions)
	raw, err := kgo.NewClient(kgo.SeedBrokers(broker.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	bad := []*kgo.Record{
		{Topic: "positions", Key: []byte("x"), Value: []byte("not json")},
		{Topic: "positions", Key: []byte("y"), Value: []byte(`{"device":"y","collection":"zones","lat":95,"lng":1,"time":"2026-01-01T00:00:00Z"}`)},
	}
	if err := raw.ProduceSync(context.Background(), bad...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	total := int64(len(positions) + len(bad))

	store := newMemFences()
	tracker := geo.NewTracker(cellSearch{}, store, time.Minute, nil)
	cfg := fenceConfig()
	cfg.Batch = 50
	crash := errors.New("kill -9")
	first := kafka.NewPositions(cfg, []string{broker.Addr()}, tracker, store, quiet(), metrics.Nop{})
	batches := 0
	kafka.SetBeforeApply(first, func(int) error {
		if batches++; batches == 3 {
			return crash
		}
		return nil
	})
	if err := first.RunOnce(context.Background()); !errors.Is(err, crash) {
		t.Fatalf("first consumer: %v, want the crash", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	members := []*kafka.Positions{
		kafka.NewPositions(cfg, []string{broker.Addr()}, tracker, store, quiet(), metrics.Nop{}),
		kafka.NewPositions(cfg, []string{broker.Addr()}, tracker, store, quiet(), metrics.Nop{}),
	}
	for _, m := range members {
		wg.Go(func() { m.Run(ctx) })
	}
	eventually(t, "every record applied", func() bool { n, _ := store.stored(); return n == total })
	// The lag counts from the stored offsets: once the last batch is
	// stored, none.
	eventually(t, "no consumer lag", func() bool {
		return members[0].Counts().Lag == 0 && members[1].Counts().Lag == 0
	})
	cancel()
	wg.Wait()

	_, got := store.stored()
	want := geotest.OracleEvents(positions, func(i int) []geo.FenceThing {
		if th, ok := cellOf(positions[i].Point); ok {
			return []geo.FenceThing{th}
		}
		return nil
	})
	if len(want) < 100 {
		t.Fatalf("the oracle sees only %d events", len(want))
	}
	geotest.SortEvents(got)
	geotest.SortEvents(want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("events (-oracle +stored):\n%s", diff)
	}
	var rejected int64
	for _, m := range append(members, first) {
		rejected += m.Counts().Rejected
	}
	if rejected != 2 {
		t.Fatalf("rejected %d records, want the 2 bad ones", rejected)
	}
}
