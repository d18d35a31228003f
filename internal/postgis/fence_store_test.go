package postgis_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/geo/geotest"
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

// TestOutboxCommitOrder: while a transaction that writes events is open,
// the reader waits for it (events committed after it began cannot be
// passed to it), but not for other transactions; once it commits, its
// events and the later ones are pending in (xid, id) order.
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
	if _, err := slow.Exec(ctx, `INSERT INTO fence_outbox (events, collections, devices, seqs, types, thing_ids, thing_keys, lats, lngs, ats)
VALUES (1, '{zones}', '{early}', '{1}', '{enter}', '{1}', '{a}', '{5}', '{5}', ARRAY[now()])`); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Track(ctx, []geo.Fix{{Device: "late", Collection: "zones", Point: geo.Point{Lat: 5, Lng: 5}, Time: fenceT0}}, nil); err != nil {
		t.Fatal(err)
	}
	// The reader waits for the open writer rather than pass it.
	wctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer cancel()
	if page, err := store.Pending(wctx, geo.OutboxMark{}, 100); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("pending while an earlier writer is open: %d events, %v; want to wait", len(page), err)
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

// TestOutboxReaderMissesNothing: while eight writers apply batches at once,
// a reader follows the outbox as the relay does (Pending after its mark,
// Trim behind it); at the end it has read every event exactly once.
func TestOutboxReaderMissesNothing(t *testing.T) {
	t.Parallel()
	tr, svc, store, _ := newTracker(t)
	ctx := context.Background()
	importInto(t, svc, geo.ImportOptions{Collection: "zones"}, grid(12, nil))
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			positions := geotest.Tracks(uint64(100+w), "zones", 5, 40, 30, fenceT0)
			for i := range positions {
				positions[i].Device = fmt.Sprintf("w%d-%s", w, positions[i].Device)
			}
			for start := 0; start < len(positions); start += 7 {
				if _, err := tr.Track(ctx, positions[start:min(start+7, len(positions))], nil); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	writersDone := make(chan struct{})
	go func() { wg.Wait(); close(writersDone) }()
	seen := map[string]int{}
	var mark geo.OutboxMark
	read := func() int {
		page, err := store.Pending(ctx, mark, 13)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			seen[fmt.Sprint(e.Device, "#", e.Seq)]++
			mark = e.Mark
		}
		if err := store.Trim(ctx, mark); err != nil {
			t.Fatal(err)
		}
		return len(page)
	}
	for done := false; !done; {
		select {
		case <-writersDone:
			done = true
		default:
			read()
		}
	}
	for read() > 0 {
	}
	var total int
	var deviceSeqs = map[string]int64{}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("%s read %d times", k, n)
		}
		total++
		var dev string
		var seq int64
		if _, err := fmt.Sscanf(strings.Replace(k, "#", " ", 1), "%s %d", &dev, &seq); err == nil && seq > deviceSeqs[dev] {
			deviceSeqs[dev] = seq
		}
	}
	var want int64
	for _, s := range deviceSeqs {
		want += s
	}
	if int64(total) != want || total < 200 {
		t.Fatalf("read %d events; the devices' last seqs add up to %d", total, want)
	}
}

// TestPendingOrdersByXidNumerically: events of xid 9 come before those of
// xid 10 and 100 (as text, "10" sorts first: the relay would pass over 9's
// and trim them unread).
func TestPendingOrdersByXidNumerically(t *testing.T) {
	t.Parallel()
	_, _, store, pool := newTracker(t)
	ctx := context.Background()
	for _, xid := range []string{"100", "9", "10"} {
		if _, err := pool.Exec(ctx, `INSERT INTO fence_outbox (xid, events, collections, devices, seqs, types, thing_ids, thing_keys, lats, lngs, ats)
VALUES ($1::text::xid8, 1, '{zones}', ARRAY['x' || $1], '{1}', '{enter}', '{1}', '{a}', '{5}', '{5}', ARRAY[now()])`, xid); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	var mark geo.OutboxMark
	for {
		page, err := store.Pending(ctx, mark, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		got = append(got, page[0].Device)
		mark = page[0].Mark
	}
	if diff := cmp.Diff([]string{"x9", "x10", "x100"}, got); diff != "" {
		t.Fatalf("pending order (-want +got):\n%s", diff)
	}
}
