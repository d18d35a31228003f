package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/geo/geotest"
	"github.com/geosearch/search/internal/httpapi"
	"github.com/geosearch/search/internal/postgis"
)

// pgTileservSQL is the statement pg_tileserv sends for a table layer with
// its defaults (extent 4096, buffer 256, at most 10,000 features a tile),
// on the things of one collection: every geometry meeting the tile,
// projected whole, no simplification, no byte bound. It is the peer's
// floor that BenchmarkTiles measures the server's tiles against.
const pgTileservSQL = `WITH bounds AS (SELECT ST_TileEnvelope($1::int, $2::int, $3::int) AS merc)
SELECT coalesce(ST_AsMVT(mvtgeom, 'layer', 4096, 'geom', 'id'), ''::bytea) FROM (
    SELECT t.id, t.name, ST_AsMVTGeom(ST_Transform(t.geom, 3857), bounds.merc, 4096, 256, true) AS geom
    FROM thing t, bounds
    WHERE t.collection = $4::text AND ST_Intersects(t.geom, ST_Transform(bounds.merc, 4326))
    LIMIT 10000
) mvtgeom`

// BenchmarkTiles reports tiles/s for the 1:50m countries and a grid of
// 100,000 squares over Europe, at zooms 2, 6 and 10 (the tile of Paris),
// four ways in one run: the server's own ST_AsMVT statement sent straight
// on the pool (direct SQL), pg_tileserv's statement (pgTileservSQL), the
// HTTP server drawing every tile (its cache off: cold), and the HTTP
// server answering from its cache. Compare the
// ratios, not the absolute numbers: the machines are shared.
func BenchmarkTiles(b *testing.B) {
	ctx := context.Background()
	pool, err := postgis.Open(ctx, postgis.Config{URL: cluster.NewDatabase(b), MaxWriteConns: 2}, "tiles-bench", postgis.NewStatementTimeout(time.Minute))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	svc := postgis.NewSearchService(pool)
	if _, err := svc.Import(ctx, geo.ImportOptions{Collection: "countries"}, &geotest.Source{Features: geotest.Load(b, "ne_50m_countries.geojson")}); err != nil {
		b.Fatal(err)
	}
	// 316 x 316 squares of 0.1° from 10° W, 35° N: about 100,000.
	var cells []geo.Feature
	for i := range 316 {
		for j := range 316 {
			x, y := -10+float64(i)*0.1, 35+float64(j)*0.1
			cells = append(cells, geotest.Square(fmt.Sprintf("cell %d %d", i, j), fmt.Sprintf("%d-%d", i, j), nil, x, y, x+0.1, y+0.1))
		}
	}
	if _, err := svc.Import(ctx, geo.ImportOptions{Collection: "grid"}, &geotest.Source{Features: cells}); err != nil {
		b.Fatal(err)
	}
	serve := func(cacheBytes int64) string {
		cfg := httpapi.Config{ListenAddr: "127.0.0.1:0", ServiceName: "bench", MaxBodyBytes: 1 << 20, TileMaxBytes: 512 << 10, TileOverviewThings: 5_000, TileCacheBytes: cacheBytes, TileMaxAge: time.Minute}
		srv, err := httpapi.New(svc, cfg, httpapi.Limits{DefaultPageSize: 10, MaxPageSize: 100, LocateBatchSize: 10}, httpapi.Deps{Properties: svc, Tiles: svc})
		if err != nil {
			b.Fatal(err)
		}
		srv.SetReady(true)
		go func() { _ = srv.Serve() }()
		b.Cleanup(srv.Close)
		return "http://" + srv.Addr().String()
	}
	cold, cached := serve(0), serve(256<<20)
	client := &http.Client{Timeout: time.Minute}
	get := func(b *testing.B, url string) int {
		resp, err := client.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("%s: %d", url, resp.StatusCode)
		}
		return int(n)
	}
	// The tile of Paris at each zoom.
	paris := map[int][2]int{2: {2, 1}, 6: {32, 22}, 10: {518, 352}}
	for _, collection := range []string{"countries", "grid"} {
		for _, z := range []int{2, 6, 10} {
			x, y := paris[z][0], paris[z][1]
			q := geo.TileQuery{Collection: collection, Z: z, X: x, Y: y, MaxBytes: 512 << 10}
			path := fmt.Sprintf("/collections/%s/tiles/WebMercatorQuad/%d/%d/%d", collection, z, y, x)
			report := func(b *testing.B, bytes int) {
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tiles/s")
				b.ReportMetric(float64(bytes), "bytes/tile")
			}
			b.Run(fmt.Sprintf("%s/z%d/direct SQL", collection, z), func(b *testing.B) {
				sql, args := postgis.TileStatement(q, 1, 0)
				var mvt []byte
				var n int
				for b.Loop() {
					if err := pool.QueryRow(ctx, sql, args...).Scan(&mvt, &n); err != nil {
						b.Fatal(err)
					}
				}
				report(b, len(mvt))
			})
			b.Run(fmt.Sprintf("%s/z%d/pg_tileserv SQL", collection, z), func(b *testing.B) {
				var mvt []byte
				for b.Loop() {
					if err := pool.QueryRow(ctx, pgTileservSQL, z, x, y, collection).Scan(&mvt); err != nil {
						b.Fatal(err)
					}
				}
				report(b, len(mvt))
			})
			b.Run(fmt.Sprintf("%s/z%d/server cold", collection, z), func(b *testing.B) {
				n := 0
				for b.Loop() {
					n = get(b, cold+path)
				}
				report(b, n)
			})
			b.Run(fmt.Sprintf("%s/z%d/server cached", collection, z), func(b *testing.B) {
				n := get(b, cached+path)
				for b.Loop() {
					n = get(b, cached+path)
				}
				report(b, n)
			})
		}
	}
}
