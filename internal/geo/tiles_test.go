package geo_test

import (
	"math"
	"testing"

	"github.com/geosearch/search/internal/geo"
)

// TestTileBounds: a tile's box in degrees is the tile and its buffer (the
// latitudes are those of PostGIS's ST_TileEnvelope with its margin); at
// the first and last columns it runs past +-180 instead of wrapping round
// the world, and it stops at Web Mercator's edge.
func TestTileBounds(t *testing.T) {
	t.Parallel()
	m := 360.0 / 4 * geo.TileBuffer / geo.TileExtent // the buffer at zoom 2, in degrees
	for _, tt := range []struct {
		q                        geo.TileQuery
		west, south, east, north float64
	}{
		{geo.TileQuery{Z: 0}, -180 - 4*m, -geo.MaxMercatorLat, 180 + 4*m, geo.MaxMercatorLat},
		{geo.TileQuery{Z: 2, X: 0, Y: 0}, -180 - m, 65.946471776, -90 + m, geo.MaxMercatorLat},
		{geo.TileQuery{Z: 2, X: 3, Y: 2}, 90 - m, -67.067433351, 180 + m, 1.406108835},
		{geo.TileQuery{Z: 2, X: 1, Y: 1}, -90 - m, -1.406108835, m, 67.067433351},
	} {
		w, s, e, n := tt.q.Bounds()
		for _, c := range [][2]float64{{w, tt.west}, {s, tt.south}, {e, tt.east}, {n, tt.north}} {
			if math.Abs(c[0]-c[1]) > 1e-6 {
				t.Errorf("%d/%d/%d: bounds %v %v %v %v, want %v %v %v %v", tt.q.Z, tt.q.Y, tt.q.X, w, s, e, n, tt.west, tt.south, tt.east, tt.north)
				break
			}
		}
	}
}
