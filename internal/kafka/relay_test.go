package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/kafka"
	"github.com/geosearch/search/internal/kafka/kafkatest"
	"github.com/geosearch/search/internal/metrics"
)

// memOutbox is an in-memory geo.Outbox: events in commit order, marks
// (1, i+1), one lead at a time. When failTrim is positive, the Trim that
// brings it to 0 fails (a crash after the Kafka commit, before the database
// hears of it).
type memOutbox struct {
	mu       sync.Mutex
	events   []geo.OutboxEvent
	trimmed  geo.OutboxMark
	lead     sync.Mutex
	failTrim int
}

func (o *memOutbox) add(es ...geo.Event) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, e := range es {
		o.events = append(o.events, geo.OutboxEvent{Mark: geo.OutboxMark{XID: 1, ID: int64(len(o.events) + 1)}, Event: e})
	}
}

func (o *memOutbox) Lead(ctx context.Context, fn func(context.Context) error) error {
	for !o.lead.TryLock() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	defer o.lead.Unlock()
	return fn(ctx)
}

func (o *memOutbox) Pending(_ context.Context, after geo.OutboxMark, n int) ([]geo.OutboxEvent, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []geo.OutboxEvent
	for _, e := range o.events {
		if e.Mark.ID > after.ID && len(out) < n {
			out = append(out, e)
		}
	}
	return out, nil
}

func (o *memOutbox) Trim(_ context.Context, upTo geo.OutboxMark) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.failTrim > 0 {
		if o.failTrim--; o.failTrim == 0 {
			return errors.New("the database went away")
		}
	}
	o.trimmed = upTo
	return nil
}

func fenceConfig() kafka.FenceConfig {
	return kafka.FenceConfig{Enabled: true, PositionsTopic: "positions", EventsTopic: "events", CheckpointTopic: "checkpoints",
		Group: "g", RelayTxnID: "relay", MaxFuture: time.Minute, Batch: 7}
}

// someEvents returns n events over 5 devices, seq 1, 2... per device.
func someEvents(n int) []geo.Event {
	var out []geo.Event
	seq := map[string]int64{}
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		dev := fmt.Sprintf("dev-%d", i%5)
		seq[dev]++
		out = append(out, geo.Event{Device: dev, Collection: "zones", Type: geo.TransitionType(1 + i%2), Seq: seq[dev],
			Thing: geo.FenceThing{ID: int64(i), Key: fmt.Sprint("k", i)}, Point: geo.Point{Lat: 1, Lng: 2}, Time: t0.Add(time.Duration(i) * time.Second)})
	}
	return out
}

// readEvents reads the events topic to its end, read_committed, and checks
// that every device's events come as seq 1, 2, 3... with none twice and
// none missing; it returns how many there are.
func readEvents(t *testing.T, broker string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	next := map[string]int64{}
	n := 0
	err := kafka.ReadEvents(ctx, kafka.EventsOptions{Brokers: []string{broker}, Topic: "events"}, func(e geo.Event) error {
		if want := next[e.Device] + 1; e.Seq != want {
			return fmt.Errorf("device %s: seq %d after %d", e.Device, e.Seq, want-1)
		}
		next[e.Device] = e.Seq
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func relayUntil(t *testing.T, r *kafka.Relay, n int64) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	eventually(t, fmt.Sprintf("%d events published", n), func() bool { return r.Published() >= n })
	cancel()
	<-done
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestRelayPublishesEachOnce: events reach the topic, keyed by device, in
// each device's order, once; a relay started again (a restart, another
// instance taking over) resumes after the last committed batch.
func TestRelayPublishesEachOnce(t *testing.T) {
	t.Parallel()
	broker := kafkatest.Start(t)
	ob := &memOutbox{}
	ob.add(someEvents(40)...)
	relayUntil(t, kafka.NewRelay(fenceConfig(), []string{broker.Addr()}, ob, quiet(), metrics.Nop{}), 40)
	if n := readEvents(t, broker.Addr()); n != 40 {
		t.Fatalf("read %d events, want 40", n)
	}
	ob.add(someEvents(60)[40:]...)
	relayUntil(t, kafka.NewRelay(fenceConfig(), []string{broker.Addr()}, ob, quiet(), metrics.Nop{}), 20)
	if n := readEvents(t, broker.Addr()); n != 60 {
		t.Fatalf("read %d events after a second relay, want 60", n)
	}
	if ob.trimmed.ID != 60 {
		t.Fatalf("outbox trimmed to %d, want 60", ob.trimmed.ID)
	}
}

// TestRelayCrashes: a relay that dies after producing a batch but before
// committing it (its transaction left open), and one that dies after the
// commit but before the database hears of it, are followed by relays that
// neither lose nor repeat an event for a read_committed reader.
func TestRelayCrashes(t *testing.T) {
	t.Parallel()
	broker := kafkatest.Start(t)
	ob := &memOutbox{}
	ob.add(someEvents(30)...)
	crash := errors.New("kill -9")
	r := kafka.NewRelay(fenceConfig(), []string{broker.Addr()}, ob, quiet(), metrics.Nop{})
	batches := 0
	kafka.SetBeforeCommit(r, func() error {
		if batches++; batches == 3 {
			return crash
		}
		return nil
	})
	if err := r.RunOnce(context.Background()); !errors.Is(err, crash) {
		t.Fatalf("relay: %v, want the crash", err)
	}
	if got := r.Published(); got != 14 {
		t.Fatalf("published %d before the crash, want 14 (two batches of 7)", got)
	}
	ob.failTrim = 2 // the next relay commits a batch, then loses the database
	r2 := kafka.NewRelay(fenceConfig(), []string{broker.Addr()}, ob, quiet(), metrics.Nop{})
	if err := r2.RunOnce(context.Background()); err == nil {
		t.Fatal("the relay went on without its database")
	}
	if got := r2.Published(); got != 7 {
		t.Fatalf("the second relay published %d, want one batch of 7", got)
	}
	relayUntil(t, kafka.NewRelay(fenceConfig(), []string{broker.Addr()}, ob, quiet(), metrics.Nop{}), 30-14-r2.Published())
	if n := readEvents(t, broker.Addr()); n != 30 {
		t.Fatalf("read %d events, want 30", n)
	}
}
