package memindex_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/geo/geotest"
)

// TestRefreshReadsOnlyWhatChanged writes to an indexed collection through
// the store (imports, a replacement of a thing by key, deletes, a replace
// import), refreshing after each: every refresh after the first reads the
// collection incrementally (Registry.Updates), and the index then answers
// every probe point (inside, on edges and vertices of, and outside every
// square ever written) exactly as the store does, and holds as many things.
func TestRefreshReadsOnlyWhatChanged(t *testing.T) {
	t.Parallel()
	store, pool := newService(t)
	sq := func(i int, key string, d float64) geo.Feature {
		x, y := float64(i%10)*3, float64(i/10)*3
		return geotest.Square(fmt.Sprintf("s%03d", i), key, map[string]any{"i": fmt.Sprint(i)}, x, y, x+2+d, y+2+d)
	}
	var first []geo.Feature
	for i := range 30 {
		first = append(first, sq(i, fmt.Sprint(i), 0))
	}
	importInto(t, store, "u", false, first...)
	importInto(t, store, "other", false, sq(0, "o", 0))
	mem, reg, _ := indexed(t, store, onConfig(1<<30))
	refresh(t, reg)
	ctx := context.Background()
	writes := []func() error{
		func() error { importInto(t, store, "u", false, sq(30, "30", 0), sq(31, "", 0.5)); return nil },
		func() error { importInto(t, store, "u", false, sq(5, "5", 1)); return nil }, // same key: replaced, same id
		func() error {
			_, err := store.Delete(ctx, geo.DeleteRequest{Collection: "u", Keys: []string{"7", "30"}})
			return err
		},
		func() error { importInto(t, store, "u", true, sq(40, "40", 0), sq(5, "5", 0.25)); return nil },
		func() error { importInto(t, store, "u", false, sq(41, "41", 0)); return nil },
	}
	var probes []geo.Point
	for i := range 50 {
		x, y := float64(i%10)*3, float64(i/10)*3
		for _, d := range []float64{0, 1, 2, 2.25, 2.5, 3, 2.6} {
			probes = append(probes, geo.Point{Lng: x + d, Lat: y + d}, geo.Point{Lng: x + d, Lat: y + 1})
		}
	}
	for k, write := range writes {
		if err := write(); err != nil {
			t.Fatal(err)
		}
		before := reg.Updates()
		refresh(t, reg)
		if reg.Updates() != before+1 {
			t.Errorf("write %d: the refresh read the collection whole (updates %d, then %d)", k, before, reg.Updates())
		}
		for _, p := range probes {
			q := geo.Query{Filter: geo.Filter{Point: &p, Collections: []string{"u", "other"}}, Limit: 100}
			got, err := mem.Search(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			want, err := store.Search(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.EqualFunc(got.Things, want.Things, func(a, b geo.Thing) bool {
				return a.ID == b.ID && a.Name == b.Name && a.Key == b.Key && fmt.Sprint(a.Properties) == fmt.Sprint(b.Properties) && a.BBox == b.BBox
			}) {
				t.Fatalf("write %d, point %v: memory %v, store %v", k, p, names(got.Things), names(want.Things))
			}
		}
		var n int
		for _, s := range reg.Status() {
			if s.Collection == "u" {
				n = s.Things
			}
		}
		var total int64
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM thing WHERE collection = 'u'`).Scan(&total); err != nil {
			t.Fatal(err)
		}
		if int64(n) != total {
			t.Errorf("write %d: the index holds %d things, the store %d", k, n, total)
		}
	}
}
