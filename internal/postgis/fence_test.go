package postgis_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/geo/geotest"
	"github.com/geosearch/search/internal/postgis"
)

var fenceT0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// newTracker returns a tracker on a fresh database, its service, store and
// pool.
func newTracker(t *testing.T) (*geo.Tracker, *postgis.SearchService, *postgis.FenceStore, *pgxpool.Pool) {
	t.Helper()
	svc, pool := newService(t)
	store := postgis.NewFenceStore(pool)
	return geo.NewTracker(svc, store, 5*time.Minute, nil), svc, store, pool
}

// track applies positions in batches of n and returns every event, and
// fails on any batch error or rejected position.
func track(t *testing.T, tr *geo.Tracker, positions []geo.Fix, n int) []geo.Event {
	t.Helper()
	var events []geo.Event
	for start := 0; start < len(positions); start += n {
		batch := positions[start:min(start+n, len(positions))]
		res, err := tr.Track(context.Background(), batch, nil)
		if err != nil {
			t.Fatalf("track batch at %d: %v", start, err)
		}
		for i, r := range res {
			if r.Err != nil {
				t.Fatalf("position %d: %v", start+i, r.Err)
			}
			events = append(events, r.Events...)
		}
	}
	return events
}

// outbox reads the whole outbox, in commit order.
func outbox(t *testing.T, store *postgis.FenceStore) []geo.Event {
	t.Helper()
	var out []geo.Event
	var mark geo.OutboxMark
	for {
		page, err := store.Pending(context.Background(), mark, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			return out
		}
		for _, e := range page {
			out = append(out, e.Event)
		}
		mark = page[len(page)-1].Mark
	}
}

// TestTrackEqualsSearch walks 60 devices × 60 positions over the 1:50m
// countries and overlapping grid cells, in one collection, and checks the
// events against an oracle fed with Search's answer for each position;
// the outbox holds the same events.
func TestTrackEqualsSearch(t *testing.T) {
	t.Parallel()
	tr, svc, store, _ := newTracker(t)
	importInto(t, svc, geo.ImportOptions{Collection: "zones"}, append(geotest.Load(t, "ne_50m_countries.geojson"), grid(12, nil)...))
	positions := geotest.Tracks(1, "zones", 60, 60, 3, fenceT0)
	got := track(t, tr, positions, 250)
	want := geotest.OracleEvents(positions, func(i int) []geo.FenceThing { return geotest.SearchInside(t, svc, positions[i]) })
	if len(want) < 500 {
		t.Fatalf("the oracle sees only %d events: the walk is too tame to test anything", len(want))
	}
	geotest.SortEvents(got)
	geotest.SortEvents(want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("events (-oracle +tracker):\n%s", diff)
	}
	stored := outbox(t, store)
	geotest.SortEvents(stored)
	if diff := cmp.Diff(want, stored); diff != "" {
		t.Fatalf("outbox (-oracle +stored):\n%s", diff)
	}
}

// TestTrackStaleAndInvalid: a position not after the device's last one is
// ignored (Stale, no events, no state change); bad positions are rejected
// one by one and the batch goes on.
func TestTrackStaleAndInvalid(t *testing.T) {
	t.Parallel()
	tr, svc, store, _ := newTracker(t)
	importInto(t, svc, geo.ImportOptions{Collection: "zones"}, []geo.Feature{geotest.Square("a", "a", nil, 0, 0, 10, 10)})
	in, out := geo.Point{Lat: 5, Lng: 5}, geo.Point{Lat: 20, Lng: 20}
	fix := func(dev string, p geo.Point, sec int) geo.Fix {
		return geo.Fix{Device: dev, Collection: "zones", Point: p, Time: fenceT0.Add(time.Duration(sec) * time.Second)}
	}
	long := string(make([]byte, geo.MaxDeviceLength+1))
	batch := []geo.Fix{
		fix("d", in, 10),  // enter
		fix("d", out, 10), // same time: stale
		fix("d", out, 5),  // older: stale
		{Device: "d", Collection: "zones", Point: geo.Point{Lat: 91}, Time: fenceT0.Add(20 * time.Second)}, // invalid
		{Device: long, Collection: "zones", Point: in, Time: fenceT0},                                      // invalid
		{Device: "d", Collection: "zones", Point: in, Time: time.Now().Add(time.Hour)},                     // invalid: far future
		{Device: "d", Collection: "nowhere", Point: in, Time: fenceT0},                                     // not found
		fix("d", out, 11), // exit
	}
	res, err := tr.Track(context.Background(), batch, nil)
	if err != nil {
		t.Fatal(err)
	}
	type summary struct {
		Events []string
		Stale  bool
		Code   string
	}
	var got []summary
	for _, r := range res {
		s := summary{Stale: r.Stale}
		for _, e := range r.Events {
			s.Events = append(s.Events, fmt.Sprintf("%s %s #%d", e.Type, e.Thing.Key, e.Seq))
		}
		if r.Err != nil {
			s.Code = geo.ErrorCode(r.Err).String()
		}
		got = append(got, s)
	}
	want := []summary{
		{Events: []string{"enter a #1"}}, {Stale: true}, {Stale: true},
		{Code: "invalid"}, {Code: "invalid"}, {Code: "invalid"}, {Code: "not found"},
		{Events: []string{"exit a #2"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("results (-want +got):\n%s", diff)
	}
	// Replayed whole, the batch is all stale or rejected: nothing new.
	again, err := tr.Track(context.Background(), batch, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range again {
		if len(r.Events) > 0 {
			t.Errorf("replayed position %d emitted %d events", i, len(r.Events))
		}
	}
	if n := len(outbox(t, store)); n != 2 {
		t.Fatalf("outbox holds %d events, want 2", n)
	}
}
