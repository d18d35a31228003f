package postgis_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/geo/geotest"
	"github.com/geosearch/search/internal/postgis"
)

// eventLines renders events as "device type key #seq".
func eventLines(events []geo.Event) []string {
	var out []string
	for _, e := range events {
		out = append(out, fmt.Sprintf("%s %s %s #%d", e.Device, e.Type, e.Thing.Key, e.Seq))
	}
	return out
}

// TestTrackFenceChanges: a thing that a replace import drops, or that a
// delete removes, gets its exit at the device's next position (with its
// key, though it is gone); a deleted collection's next position emits every
// exit, is rejected as NotFound and forgets the device.
func TestTrackFenceChanges(t *testing.T) {
	t.Parallel()
	tr, svc, store, _ := newTracker(t)
	ctx := context.Background()
	a := geotest.Square("a", "a", nil, 0, 0, 10, 10)
	b := geotest.Square("b", "b", nil, 0, 0, 10, 10)
	c := geotest.Square("c", "c", nil, 0, 0, 10, 10)
	importInto(t, svc, geo.ImportOptions{Collection: "zones"}, []geo.Feature{a, b, c})
	p := geo.Point{Lat: 5, Lng: 5}
	at := func(sec int) geo.Fix {
		return geo.Fix{Device: "d", Collection: "zones", Point: p, Time: fenceT0.Add(time.Duration(sec) * time.Second)}
	}
	step := func(sec int) ([]string, error) {
		res, err := tr.Track(ctx, []geo.Fix{at(sec)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return eventLines(res[0].Events), res[0].Err
	}
	check := func(name string, got []string, want ...string) {
		t.Helper()
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("%s (-want +got):\n%s", name, diff)
		}
	}
	got, _ := step(1)
	check("first position", got, "d enter a #1", "d enter b #2", "d enter c #3")
	importInto(t, svc, geo.ImportOptions{Collection: "zones", Replace: true}, []geo.Feature{b, c})
	got, _ = step(2)
	check("after a replace without a", got, "d exit a #4")
	if _, err := svc.Delete(ctx, geo.DeleteRequest{Collection: "zones", Keys: []string{"b"}}); err != nil {
		t.Fatal(err)
	}
	got, _ = step(3)
	check("after deleting b", got, "d exit b #5")
	if _, err := svc.DeleteCollection(ctx, "zones"); err != nil {
		t.Fatal(err)
	}
	got, err := step(4)
	check("after deleting the collection", got, "d exit c #6")
	if geo.ErrorCode(err) != geo.NotFound {
		t.Fatalf("a position of a deleted collection: %v, want NotFound", err)
	}
	got, err = step(5)
	check("the next position", got)
	if geo.ErrorCode(err) != geo.NotFound {
		t.Fatalf("again: %v, want NotFound", err)
	}
	// Made again, the collection starts the device afresh.
	importInto(t, svc, geo.ImportOptions{Collection: "zones"}, []geo.Feature{a})
	got, _ = step(6)
	check("the collection made again", got, "d enter a #1")
	if n := len(outbox(t, store)); n != 7 {
		t.Fatalf("outbox holds %d events, want 7", n)
	}
}

// TestApplyOffsetMovedOn: a batch whose offset was moved on by another
// consumer stores nothing (Aborted); one from the stored offset moves it.
func TestApplyOffsetMovedOn(t *testing.T) {
	t.Parallel()
	tr, svc, store, _ := newTracker(t)
	ctx := context.Background()
	importInto(t, svc, geo.ImportOptions{Collection: "zones"}, []geo.Feature{geotest.Square("a", "a", nil, 0, 0, 10, 10)})
	fix := func(sec int) []geo.Fix {
		return []geo.Fix{{Device: "d", Collection: "zones", Point: geo.Point{Lat: 5, Lng: 5}, Time: fenceT0.Add(time.Duration(sec) * time.Second)}}
	}
	off := func(from, next int64) []geo.Offset {
		return []geo.Offset{{Group: "g", Topic: "positions", Partition: 2, From: from, Next: next}}
	}
	if _, err := tr.Track(ctx, fix(1), off(0, 10)); err != nil {
		t.Fatal(err)
	}
	_, err := tr.Track(ctx, fix(2), off(0, 12)) // a zombie, from 0 again
	if geo.ErrorCode(err) != geo.Aborted {
		t.Fatalf("a batch from a moved offset: %v, want Aborted", err)
	}
	if _, err := tr.Track(ctx, fix(3), off(10, 11)); err != nil {
		t.Fatal(err)
	}
	got, err := store.Offsets(ctx, "g", "positions")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[int32]int64{2: 11}, got); diff != "" {
		t.Fatalf("offsets (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"d enter a #1"}, eventLines(outbox(t, store))); diff != "" {
		t.Fatalf("outbox (-want +got):\n%s", diff)
	}
}

// TestTrackConcurrentDevice: many batches of one new device at once (the
// gRPC stream and the Kafka input may both carry it) still number its
// events 1, 2, 3... once each: the device is locked even before it has a
// state.
func TestTrackConcurrentDevice(t *testing.T) {
	t.Parallel()
	tr, svc, store, _ := newTracker(t)
	importInto(t, svc, geo.ImportOptions{Collection: "zones"}, []geo.Feature{geotest.Square("a", "a", nil, 0, 0, 10, 10)})
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := range 16 {
		wg.Go(func() {
			p := geo.Point{Lat: 5, Lng: 5 + float64(i%2)*20} // in, out, in, ...
			_, err := tr.Track(context.Background(), []geo.Fix{{Device: "d", Collection: "zones", Point: p, Time: fenceT0.Add(time.Duration(i) * time.Second)}}, nil)
			if err != nil {
				failed.Add(1)
				t.Error(err)
			}
		})
	}
	wg.Wait()
	seen := map[int64]int{}
	for _, e := range outbox(t, store) {
		seen[e.Seq]++
	}
	for seq := int64(1); seq <= int64(len(seen)); seq++ {
		if seen[seq] != 1 {
			t.Fatalf("seq %d emitted %d times (all: %v)", seq, seen[seq], seen)
		}
	}
}

// TestOutboxCommitOrder: an event written by a transaction still open is
// not pending, and neither is any event committed after it began, so the
// relay can never pass it: both appear once it commits, in (xid, id) order.
func TestOutboxCommitOrder(t *testing.T) {
	t.Parallel()
	tr, svc, store, pool := newTracker(t)
	ctx := context.Background()
	importInto(t, svc, geo.ImportOptions{Collection: "zones"}, []geo.Feature{geotest.Square("a", "a", nil, 0, 0, 10, 10)})
	slow, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = slow.Rollback(ctx) }()
	// An import, or any transaction that does not write events, holds
	// nothing back.
	other, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = other.Rollback(ctx) }()
	if _, err := other.Exec(ctx, `UPDATE collection SET updated_at = now()`); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Track(ctx, []geo.Fix{{Device: "first", Collection: "zones", Point: geo.Point{Lat: 5, Lng: 5}, Time: fenceT0}}, nil); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"first enter a #1"}, eventLines(outbox(t, store))); diff != "" {
		t.Fatalf("pending while an unrelated transaction is open (-want +got):\n%s", diff)
	}
	// A writer of events takes the writer lock first, as Apply does.
	if _, err := slow.Exec(ctx, `SELECT pg_advisory_xact_lock_shared(28, 3)`); err != nil {
		t.Fatal(err)
	}
	if _, err := slow.Exec(ctx, `INSERT INTO fence_outbox (collection, device, seq, type, thing_id, thing_key, lat, lng, at)
VALUES ('zones', 'early', 1, 'enter', 1, 'a', 5, 5, now())`); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Track(ctx, []geo.Fix{{Device: "late", Collection: "zones", Point: geo.Point{Lat: 5, Lng: 5}, Time: fenceT0}}, nil); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"first enter a #1"}, eventLines(outbox(t, store))); diff != "" {
		t.Fatalf("pending while an earlier writer is open (-want +got):\n%s", diff)
	}
	if err := slow.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"first enter a #1", "early enter a #1", "late enter a #1"}, eventLines(outbox(t, store))); diff != "" {
		t.Fatalf("pending after the commit (-want +got):\n%s", diff)
	}
	// Trim drops what is relayed, and no more.
	page, err := store.Pending(ctx, geo.OutboxMark{}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Trim(ctx, page[0].Mark); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"early enter a #1", "late enter a #1"}, eventLines(outbox(t, store))); diff != "" {
		t.Fatalf("pending after trimming the first (-want +got):\n%s", diff)
	}
}

// TestLeadIsExclusive: while one Lead runs its function, another waits;
// it runs once the first returns. A lead whose session is killed sees its
// context end.
func TestLeadIsExclusive(t *testing.T) {
	t.Parallel()
	_, _, store, pool := newTracker(t)
	ctx := context.Background()
	var running atomic.Int64
	entered := make(chan struct{})
	release := make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- store.Lead(ctx, func(context.Context) error {
			running.Add(1)
			close(entered)
			<-release
			running.Add(-1)
			return nil
		})
	}()
	<-entered
	second := make(chan error, 1)
	secondRan := make(chan struct{})
	go func() {
		second <- store.Lead(ctx, func(lctx context.Context) error {
			if running.Load() != 0 {
				return errors.New("two leads at once")
			}
			close(secondRan)
			// Kill this session: the lead must notice and end.
			_, _ = pool.Exec(context.Background(), `SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND classid = 28 AND objid = 1 AND granted`)
			select {
			case <-lctx.Done():
				return nil
			case <-time.After(30 * time.Second):
				return errors.New("the lead's context outlived its session")
			}
		})
	}()
	select {
	case <-secondRan:
		t.Fatal("the second lead ran while the first held the lock")
	case <-time.After(1500 * time.Millisecond):
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := <-second; err != nil {
		t.Fatal(err)
	}
}

func TestFullXID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		next uint64
		x    uint32
		want uint64
	}{
		{"first epoch", 1000, 900, 900},
		{"same epoch", 5<<32 | 1000, 900, 5<<32 | 900},
		{"previous epoch", 5<<32 | 10, 0xFFFFFFF0, 4<<32 | 0xFFFFFFF0},
		{"just below next", 5<<32 | 10, 9, 5<<32 | 9},
	}
	for _, tc := range tests {
		if got := postgis.FullXID(tc.next, tc.x); got != tc.want {
			t.Errorf("%s: fullXID(%#x, %#x) = %#x, want %#x", tc.name, tc.next, tc.x, got, tc.want)
		}
	}
}
