package postgis_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/geo/geotest"
)

// TestTileOverview: a tile meeting more things than OverviewThings draws
// the small ones as counted cells (no id, "N things", every thing counted
// once, property filters applied) and the large ones as themselves; at or
// under the threshold, or with none, every thing is drawn as itself.
func TestTileOverview(t *testing.T) {
	t.Parallel()
	svc, _ := newService(t)
	// 40 x 40 squares of 1 degree (small at zoom 0, where a cell is 5.6
	// degrees), every third one of kind "a", and one large square.
	var fs []geo.Feature
	for i := range 40 {
		for j := range 40 {
			props := map[string]any{"kind": "b"}
			if (i*40+j)%3 == 0 {
				props["kind"] = "a"
			}
			x, y := float64(i), float64(j)
			fs = append(fs, geotest.Square(fmt.Sprintf("sq %d %d", i, j), fmt.Sprintf("%d-%d", i, j), props, x, y, x+1, y+1))
		}
	}
	fs = append(fs, geotest.Square("big", "big", map[string]any{"kind": "a"}, -120, -40, -20, 10))
	importInto(t, svc, geo.ImportOptions{Collection: "dense"}, fs)
	ctx := context.Background()
	kindA := []geo.PropertyFilter{{Key: "kind", Values: []any{"a"}}}
	for _, tc := range []struct {
		name       string
		q          geo.TileQuery
		overview   bool
		things     int // things drawn or counted, the big one included
		attributes bool
	}{
		{"over the threshold", geo.TileQuery{OverviewThings: 1000}, true, 1601, false},
		{"with attributes", geo.TileQuery{OverviewThings: 1000, Attributes: []string{"kind"}}, true, 1601, true},
		{"with a property filter", geo.TileQuery{OverviewThings: 100, Properties: kindA}, true, 534 + 1, false},
		{"at the threshold", geo.TileQuery{OverviewThings: 1601}, false, 1601, false},
		{"without one", geo.TileQuery{}, false, 1601, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := tc.q
			q.Collection, q.MaxBytes = "dense", 1<<20
			tile, err := svc.Tile(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			layers, err := geotest.DecodeMVT(tile.MVT)
			if err != nil || len(layers) != 1 {
				t.Fatalf("decode: %d layers, %v", len(layers), err)
			}
			counted, cells, big := 0, 0, false
			for _, f := range layers[0].Features {
				name, _ := f.Attrs["name"].(string)
				switch {
				case name == "big":
					big = f.ID != 0
					if tc.attributes && f.Attrs["kind"] != "a" {
						t.Errorf("the big square's attributes: %v", f.Attrs)
					}
					counted++
				case strings.HasSuffix(name, " things"):
					v, _ := f.Attrs["things"].(float64) // geotest decodes numbers as float64
					n := int(v)
					if f.ID != 0 || n == 0 || name != fmt.Sprintf("%d things", n) || f.Type != 3 {
						t.Errorf("cell %+v", f)
					}
					counted += n
					cells++
				default:
					if f.ID == 0 {
						t.Errorf("thing %q without an id", name)
					}
					counted++
				}
			}
			if !big || counted != tc.things || (cells > 0) != tc.overview || tile.Reduced != tc.overview {
				t.Errorf("big square drawn with its id: %v; %d things counted in %d cells, reduced %v; want %d, overview %v",
					big, counted, cells, tile.Reduced, tc.things, tc.overview)
			}
			if tc.overview && cells > 100 {
				t.Errorf("%d cells for 40 x 40 degrees at zoom 0 (cells of 5.6 degrees)", cells)
			}
		})
	}
	if _, err := svc.Tile(ctx, geo.TileQuery{Collection: "dense", MaxBytes: 1 << 20, OverviewThings: -1}); geo.ErrorCode(err) != geo.Invalid {
		t.Errorf("a negative threshold: %v", err)
	}
}
