package postgis_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/geo/geotest"
	"github.com/geosearch/search/internal/postgis"
)

func TestTmpExplain(t *testing.T) {
	svc, pool := newService(t)
	importInto(t, svc, geo.ImportOptions{Collection: "countries"}, geotest.Load(t, "ne_50m_countries.geojson"))
	ctx := context.Background()
	pool.Exec(ctx, "ANALYZE")
	p := geo.Point{Lat: 43.2, Lng: 5.3}
	qs := map[string]geo.Query{
		"near": {Filter: geo.Filter{Point: &p, MaxDistanceM: 50000}, Limit: 50},
		"box":  {Filter: geo.Filter{BBox: &geo.BBox{MinLng: 0, MinLat: 40, MaxLng: 10, MaxLat: 50}, Relation: geo.Within}, Limit: 50},
		"amb":  {Filter: geo.Filter{BBox: &geo.BBox{MinLng: 170, MinLat: -30, MaxLng: -170, MaxLat: -10}}, Limit: 50},
	}
	var out strings.Builder
	for _, name := range strings.Split(os.Getenv("EXPLAIN"), ",") {
		sql, args := postgis.SearchStatement(qs[name])
		rows, err := pool.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS OFF, COSTS OFF) "+sql, args...)
		if err != nil {
			t.Fatal(err)
		}
		out.WriteString("== " + name + "\n" + sql + "\n")
		for rows.Next() {
			var l string
			rows.Scan(&l)
			out.WriteString(l + "\n")
		}
	}
	os.WriteFile("/tmp/nr/explain.txt", []byte(out.String()), 0o644)
}
