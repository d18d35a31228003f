package postgis_test

import (
	"context"
	"testing"

	"github.com/twpayne/go-geom"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/geo/geotest"
)

// BenchmarkImport replaces a collection with a 100 × 100 grid of squares
// (10,000 small polygons: the per-feature cost dominates) and with the
// same squares drawn as bowties (each repaired by the database), and
// reports features/s. Timings belong here and in make bench, never in
// tests.
func BenchmarkImport(b *testing.B) {
	svc, _ := newService(b)
	ctx := context.Background()
	squares := geotest.Grid(100, map[string]any{"kind": "cell"})
	bowties := make([]geo.Feature, len(squares))
	for i, f := range squares {
		bowties[i] = f
		bowties[i].Geometry = bowtie(f.Geometry.Bounds())
	}
	for _, tc := range []struct {
		name     string
		features []geo.Feature
	}{{"squares", squares}, {"bowties", bowties}} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				res, err := svc.Import(ctx, geo.ImportOptions{Collection: tc.name, Replace: true}, &geotest.Source{Features: tc.features})
				if err != nil || res.Imported != len(tc.features) {
					b.Fatalf("import: %d of %d imported, %v", res.Imported, len(tc.features), err)
				}
			}
			b.ReportMetric(float64(b.N*len(tc.features))/b.Elapsed().Seconds(), "features/s")
		})
	}
}

// bowtie is a self-intersecting ring across box's diagonals: the database
// repairs it into two triangles.
func bowtie(box *geom.Bounds) *geom.MultiPolygon {
	x0, y0, x1, y1 := box.Min(0), box.Min(1), box.Max(0), box.Max(1)
	return geom.NewMultiPolygonFlat(geom.XY, []float64{x0, y0, x1, y1, x1, y0, x0, y1, x0, y0}, [][]int{{10}})
}
