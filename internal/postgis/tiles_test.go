package postgis_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/geo/geotest"
)

// paris5 is the zoom 5 tile that holds Paris (x 16, y 11).
var paris5 = geo.TileQuery{Collection: "countries", Z: 5, X: 16, Y: 11, MaxBytes: 1 << 20}

func tileNames(t *testing.T, mvt []byte, layer string) map[string]geotest.MVTFeature {
	t.Helper()
	layers, err := geotest.DecodeMVT(mvt)
	if err != nil {
		t.Fatalf("decode tile: %v", err)
	}
	out := map[string]geotest.MVTFeature{}
	for _, l := range layers {
		if l.Name != layer || l.Extent != geo.TileExtent {
			t.Fatalf("layer %q extent %d, want %q extent %d", l.Name, l.Extent, layer, geo.TileExtent)
		}
		for _, f := range l.Features {
			name, _ := f.Attrs["name"].(string)
			out[name] = f
		}
	}
	return out
}

func TestTiles(t *testing.T) {
	t.Parallel()
	svc, _ := newService(t)
	importInto(t, svc, geo.ImportOptions{Collection: "countries"}, geotest.Load(t, "ne_110m_countries.geojson"))
	importInto(t, svc, geo.ImportOptions{Collection: "grid"}, grid(10, map[string]any{"kind": "cell"}))
	ctx := context.Background()
	draw := func(t *testing.T, q geo.TileQuery) geo.Tile {
		t.Helper()
		tile, err := svc.Tile(ctx, q)
		if err != nil {
			t.Fatalf("tile %+v: %v", q, err)
		}
		return tile
	}

	t.Run("the world at zoom 0 holds every country", func(t *testing.T) {
		tile := draw(t, geo.TileQuery{Collection: "countries", MaxBytes: 1 << 20})
		names := tileNames(t, tile.MVT, "countries")
		// Antarctica too: clipped at Web Mercator's edge, not dropped.
		for _, want := range []string{"France", "Brazil", "Antarctica", "Fiji"} {
			if _, ok := names[want]; !ok {
				t.Errorf("zoom 0 lacks %s (%d features)", want, len(names))
			}
		}
		if len(names) < 170 || tile.Reduced {
			t.Errorf("zoom 0: %d features, reduced %v; want the 177 countries less the tiny, whole", len(names), tile.Reduced)
		}
	})

	t.Run("a tile holds what meets it, with ids and outlines in tile units", func(t *testing.T) {
		names := tileNames(t, draw(t, paris5).MVT, "countries")
		f, ok := names["France"]
		if !ok || f.Type != 3 || f.ID == 0 || len(f.Rings) == 0 {
			t.Fatalf("France in tile 5/11/16: %v %+v", ok, f)
		}
		if _, ok := names["Brazil"]; ok {
			t.Errorf("Brazil drawn in a tile of France")
		}
		for _, ring := range f.Rings {
			for _, p := range ring {
				if p[0] < -geo.TileBuffer || p[0] > geo.TileExtent+geo.TileBuffer || p[1] < -geo.TileBuffer || p[1] > geo.TileExtent+geo.TileBuffer {
					t.Fatalf("France's outline runs to %v, beyond the tile's buffer", p)
				}
			}
		}
		if len(f.Attrs) != 1 {
			t.Errorf("attributes %v, want the name only", f.Attrs)
		}
	})

	t.Run("attributes and property filters", func(t *testing.T) {
		q := paris5
		q.Attributes = []string{"iso_n3", "missing"}
		q.Properties = []geo.PropertyFilter{{Key: "iso_n3", Values: []any{"250", "724", "076"}}}
		names := tileNames(t, draw(t, q).MVT, "countries")
		got := slices.Sorted(func(yield func(string) bool) {
			for n := range names {
				if !yield(n) {
					return
				}
			}
		})
		if !slices.Equal(got, []string{"France", "Spain"}) || names["France"].Attrs["iso_n3"] != "250" {
			t.Errorf("filtered on iso_n3 250, 724, 076 (Brazil, not in the tile): %v, France's attributes %v", got, names["France"].Attrs)
		}
	})

	t.Run("a tile of the open sea is empty", func(t *testing.T) {
		if tile := draw(t, geo.TileQuery{Collection: "countries", Z: 6, X: 2, Y: 30, MaxBytes: 1 << 20}); len(tile.MVT) != 0 {
			t.Errorf("mid-Pacific tile: %d bytes", len(tile.MVT))
		}
		if tile := draw(t, geo.TileQuery{Collection: "nothing", MaxBytes: 1 << 20}); len(tile.MVT) != 0 {
			t.Errorf("a collection that does not exist: %d bytes", len(tile.MVT))
		}
	})

	t.Run("collections do not mix", func(t *testing.T) {
		names := tileNames(t, draw(t, geo.TileQuery{Collection: "grid", MaxBytes: 1 << 20}).MVT, "grid")
		// The rows of cells above 85° N and below 85° S are cut away
		// with the rest of the poles (Web Mercator's limits).
		if len(names) != 100 || names["cell 5 7"].Attrs["name"] != "cell 5 7" {
			t.Errorf("grid at zoom 0: %d cells", len(names))
		}
	})

	t.Run("a byte bound draws coarser, then fewer things", func(t *testing.T) {
		whole := draw(t, geo.TileQuery{Collection: "countries", MaxBytes: 1 << 20})
		bound := len(whole.MVT) / 3
		small := draw(t, geo.TileQuery{Collection: "countries", MaxBytes: bound})
		if len(small.MVT) > bound || !small.Reduced || len(small.MVT) == 0 {
			t.Fatalf("bound %d: %d bytes, reduced %v", bound, len(small.MVT), small.Reduced)
		}
		tiny := draw(t, geo.TileQuery{Collection: "countries", MaxBytes: 2000})
		names := tileNames(t, tiny.MVT, "countries")
		if len(tiny.MVT) > 2000 || len(names) == 0 || len(names) >= 170 {
			t.Fatalf("bound 2000: %d bytes, %d things", len(tiny.MVT), len(names))
		}
		if _, ok := names["Russia"]; !ok {
			t.Errorf("the largest things are kept first; Russia is missing from %d", len(names))
		}
	})

	// At the first and last columns the tile's buffer runs past -180 or
	// +180: projected back from Web Mercator, PROJ folded it round to the
	// other side of the world, and those tiles came back empty.
	t.Run("the first and last columns hold the far west and east", func(t *testing.T) {
		for _, tt := range []struct {
			z        int
			name     string
			lat, lng float64
		}{
			{1, "Russia", 62, 100},
			{1, "United States of America", 40, -100},
			{2, "Australia", -25, 134},
			{2, "New Zealand", -44, 171},
			{2, "United States of America", 65, -150}, // Alaska
			{2, "Russia", 65, 120},                    // Siberia
			{3, "Russia", 66, 170},                    // Chukotka, west of 180
			{3, "Russia", 66, -172},                   // Chukotka, east of 180
			{3, "Fiji", -17.8, 178},
		} {
			covered(t, draw, tt.z, tt.lat, tt.lng, tt.name)
		}
	})

	t.Run("no polygon covers the sea", func(t *testing.T) {
		seas := []struct {
			name     string
			lat, lng float64
		}{
			{"Arctic Ocean", 80, 0},
			{"Arctic Ocean", 84, 100},
			{"Hudson Bay", 60, -85},
			{"Baffin Bay", 73, -65},
			{"Beaufort Sea", 72, -140},
			{"Kara Sea", 75, 65},
			{"East Siberian Sea", 74, 160},
			{"Bering Sea", 58, -178},
			{"Bering Sea", 58, 178},
			{"South Atlantic", -16.5, 0},
			{"Southern Ocean", -60, 179.9},
		}
		for z := range 6 {
			for _, sea := range seas {
				if got := covering(t, draw, z, sea.lat, sea.lng); len(got) > 0 {
					t.Errorf("%s (%v, %v) at zoom %d: covered by %v", sea.name, sea.lat, sea.lng, z, got)
				}
			}
		}
	})

	t.Run("bad tiles are invalid", func(t *testing.T) {
		for _, q := range []geo.TileQuery{
			{Collection: "countries", Z: 25, MaxBytes: 1},
			{Collection: "countries", Z: 2, X: 4, MaxBytes: 1},
			{Collection: "countries", Z: 2, Y: -1, MaxBytes: 1},
			{Collection: "Countries", MaxBytes: 1},
			{Collection: "countries"},
			{Collection: "countries", MaxBytes: 1, Properties: []geo.PropertyFilter{{Key: "a"}}},
		} {
			if _, err := svc.Tile(ctx, q); geo.ErrorCode(err) != geo.Invalid {
				t.Errorf("%+v: %v, want Invalid", q, err)
			}
		}
	})

	t.Run("the version moves with imports", func(t *testing.T) {
		before, err := svc.CollectionVersion(ctx, "grid")
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
		importInto(t, svc, geo.ImportOptions{Collection: "grid"}, grid(2, nil))
		after, err := svc.CollectionVersion(ctx, "grid")
		if err != nil || !after.After(before) {
			t.Errorf("version %v then %v (%v)", before, after, err)
		}
		if _, err := svc.CollectionVersion(ctx, "nothing"); geo.ErrorCode(err) != geo.NotFound {
			t.Errorf("version of a collection that does not exist: %v", err)
		}
		var dom *geo.Error
		if _, err := svc.CollectionVersion(ctx, "Bad Name"); !errors.As(err, &dom) || dom.Code != geo.Invalid {
			t.Errorf("bad name: %v", err)
		}
	})
}

// covering draws the zoom z tile that holds (lat, lng) and returns the
// names of its features whose polygons cover the point.
func covering(t *testing.T, draw func(*testing.T, geo.TileQuery) geo.Tile, z int, lat, lng float64) []string {
	t.Helper()
	n := 1 << z
	x, y := int((lng+180)/360*float64(n)), 0
	for y < n-1 {
		if _, py := geotest.TileUnits(z, x, y+1, geo.TileExtent, lng, lat); py < 0 {
			break
		}
		y++
	}
	x = min(x, n-1)
	px, py := geotest.TileUnits(z, x, y, geo.TileExtent, lng, lat)
	var out []string
	for name, f := range tileNames(t, draw(t, geo.TileQuery{Collection: "countries", Z: z, X: x, Y: y, MaxBytes: 1 << 20}).MVT, "countries") {
		if f.Covers(px, py) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// covered checks that the zoom z tile holding (lat, lng) draws name over it.
func covered(t *testing.T, draw func(*testing.T, geo.TileQuery) geo.Tile, z int, lat, lng float64, name string) {
	t.Helper()
	if got := covering(t, draw, z, lat, lng); !slices.Contains(got, name) {
		t.Errorf("(%v, %v) at zoom %d: covered by %v, want %s", lat, lng, z, got, name)
	}
}
