package httpapi_test

import (
	"strings"
	"testing"

	"github.com/geosearch/search/internal/httpapi"
)

// TestTileOverviewSetting: TILE_OVERVIEW_THINGS reaches the tiles. Over it,
// the world tile of the countries draws the small ones (Luxembourg) as
// counted cells and the large ones (Russia) as themselves, marked reduced;
// with 0 every country is itself. A negative value is refused by name.
func TestTileOverviewSetting(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		things   int
		overview bool
	}{{20, true}, {0, false}, {1000, false}} {
		a := start(t, func(s *setup) { s.cfg.TileOverviewThings = tc.things })
		r := a.get(t, "/collections/default/tiles/WebMercatorQuad/0/0/0")
		fs := tileFeatures(t, r, "default")
		cells := 0
		for name, f := range fs {
			if strings.HasSuffix(name, " things") {
				cells++
				if f.ID != 0 {
					t.Errorf("cell %q has id %d", name, f.ID)
				}
			}
		}
		_, lux := fs["Luxembourg"]
		russia, ok := fs["Russia"]
		if !ok || russia.ID == 0 || (cells > 0) != tc.overview || lux == tc.overview || (r.header.Get("X-Tile-Reduced") == "true") != tc.overview {
			t.Errorf("TILE_OVERVIEW_THINGS=%d: Russia %v, %d cells, Luxembourg itself %v, X-Tile-Reduced %q; want an overview: %v",
				tc.things, ok, cells, lux, r.header.Get("X-Tile-Reduced"), tc.overview)
		}
	}
	cfg := httpapi.Config{ListenAddr: "127.0.0.1:0", MaxBodyBytes: 1 << 20, MaxInFlight: 1, TileMaxBytes: 1 << 20, TileOverviewThings: -1}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "TILE_OVERVIEW_THINGS") {
		t.Errorf("a negative TILE_OVERVIEW_THINGS: %v", err)
	}
}
