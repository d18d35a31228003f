package geo_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/geosearch/search/internal/geo"
)

// boxes is a geo.SearchService (Collection and Locate only): collection
// "zones" holds thing 1 (key "a", lng in [0, 10)) and thing 2 (key "b",
// lng in [5, 15)); any other collection does not exist.
type boxes struct{ geo.SearchService }

func (boxes) Collection(_ context.Context, name string) (geo.Collection, error) {
	if name != "zones" {
		return geo.Collection{}, geo.Errorf(geo.NotFound, "no collection %q", name)
	}
	return geo.Collection{Name: name}, nil
}

func (boxes) Locate(_ context.Context, q geo.LocateQuery) ([][]geo.Thing, error) {
	out := make([][]geo.Thing, len(q.Points))
	for i, p := range q.Points {
		out[i] = []geo.Thing{}
		if p.Lng >= 0 && p.Lng < 10 {
			out[i] = append(out[i], geo.Thing{ID: 1, Key: "a"})
		}
		if p.Lng >= 5 && p.Lng < 15 {
			out[i] = append(out[i], geo.Thing{ID: 2, Key: "b"})
		}
	}
	return out, nil
}

// states is a geo.FenceStore in memory.
type states map[geo.DeviceKey]geo.DeviceState

func (s states) Apply(_ context.Context, keys []geo.DeviceKey, _ []geo.Offset, step func(map[geo.DeviceKey]geo.DeviceState) (geo.FenceChange, error)) error {
	in := map[geo.DeviceKey]geo.DeviceState{}
	for _, k := range keys {
		if st, ok := s[k]; ok {
			in[k] = st
		}
	}
	change, err := step(in)
	if err != nil {
		return err
	}
	for k, st := range change.States {
		s[k] = st
	}
	for _, k := range change.Deleted {
		delete(s, k)
	}
	return nil
}

func (s states) Offsets(context.Context, string, string) (map[int32]int64, error) { return nil, nil }

// TestTrackerWithinOneBatch: positions of one device in one batch see each
// other's state (in order); a device whose collection is gone gets its
// exits and loses its state; the stale rule holds within a batch.
func TestTrackerWithinOneBatch(t *testing.T) {
	t.Parallel()
	store := states{{Collection: "gone", Device: "d"}: {Seq: 4, LastTime: time.Unix(0, 0), Inside: []geo.FenceThing{{ID: 9, Key: "z"}}}}
	tr := geo.NewTracker(boxes{}, store, time.Minute, nil)
	t0 := time.Now().Add(-time.Hour)
	fix := func(coll string, lng float64, sec int) geo.Fix {
		return geo.Fix{Device: "d", Collection: coll, Point: geo.Point{Lat: 1, Lng: lng}, Time: t0.Add(time.Duration(sec) * time.Second)}
	}
	res, err := tr.Track(context.Background(), []geo.Fix{
		fix("zones", 1, 1),  // enter a
		fix("zones", 7, 2),  // enter b
		fix("zones", 12, 2), // stale: same time
		fix("zones", 12, 3), // exit a
		fix("gone", 1, 5),   // the collection is gone: exit z, NotFound
		fix("zones", 20, 4), // exit b
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i, r := range res {
		for _, e := range r.Events {
			got = append(got, fmt.Sprintf("%d: %s %s %s #%d", i, e.Collection, e.Type, e.Thing.Key, e.Seq))
		}
		if r.Stale {
			got = append(got, fmt.Sprintf("%d: stale", i))
		}
		if r.Err != nil {
			got = append(got, fmt.Sprintf("%d: %s", i, geo.ErrorCode(r.Err)))
		}
	}
	want := []string{
		"0: zones enter a #1", "1: zones enter b #2", "2: stale", "3: zones exit a #3",
		"4: gone exit z #5", "4: not found", "5: zones exit b #4",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("results (-want +got):\n%s", diff)
	}
	if _, ok := store[geo.DeviceKey{Collection: "gone", Device: "d"}]; ok {
		t.Fatal("the gone collection's state is kept")
	}
	if st := store[geo.DeviceKey{Collection: "zones", Device: "d"}]; st.Seq != 4 || len(st.Inside) != 0 {
		t.Fatalf("zones state %+v, want seq 4 and inside nothing", st)
	}
}
