package postgis_test

import (
	"context"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/geo/geotest"
	"github.com/geosearch/search/internal/postgis"
	"github.com/geosearch/search/internal/postgis/postgistest"
)

// importRaw decodes and imports a fixture the way the service does, and
// returns the import's result.
func importRaw(t *testing.T, svc *postgis.SearchService, raws []geo.RawFeature) geo.ImportResult {
	t.Helper()
	features, err := geotest.Decode(raws)
	if err != nil {
		t.Fatal(err)
	}
	return mustImport(t, svc, features)
}

// detailed is the 1:10m countries (the set make up loads), imported once
// for the package by detailedCountries: that import is the package's
// costliest step, and the tests that use it only read.
var detailed struct {
	res geo.ImportResult // written once, by the shared database's fill
}

// detailedCountries returns a service on the shared database of the 1:10m
// countries, the fixture's raw features, and the import's result. Its
// tests must not write.
func detailedCountries(t *testing.T) (*postgis.SearchService, *pgxpool.Pool, []geo.RawFeature, geo.ImportResult) {
	t.Helper()
	raws := geotest.LoadRaw(t, "ne_10m_countries.geojson.gz")
	url := cluster.Shared(t, "ne_10m_countries", postgistest.ImportFill(geo.ImportOptions{}, raws, func(res geo.ImportResult) error {
		detailed.res = res
		return nil
	}))
	svc, pool := newServiceAt(t, url)
	return svc, pool, raws, detailed.res
}

// TestAntimeridianKnownAnswers checks the sample countries (the 1:10m set
// that make up loads) where rings cross the antimeridian: read flat, Russia
// spanned the Arctic Ocean, Greenland and Alaska, and Fiji the South
// Atlantic.
func TestAntimeridianKnownAnswers(t *testing.T) {
	t.Parallel()
	svc, _, raws, res := detailedCountries(t)
	checkAgainstOracle(t, svc, raws)
	cut := map[string]bool{}
	for _, p := range res.Repairs.Listed {
		if strings.Contains(p.Reason, "antimeridian") {
			cut[p.Name] = true
		}
	}
	if diff := cmp.Diff([]string{"Antarctica", "Fiji", "Russia"}, slices.Sorted(maps.Keys(cut))); diff != "" {
		t.Errorf("features reported cut at the antimeridian (-want +got):\n%s", diff)
	}
	tests := []struct {
		name     string
		lat, lng float64
		want     []string
	}{
		{"Norwegian Sea", 71, 0, nil},
		{"South Atlantic", -16.5, 0, nil},
		{"Greenland", 67, -40, []string{"Greenland"}},
		{"Alaska", 66, -150, []string{"United States of America"}},
		{"Fiji, Viti Levu", -17.8, 178.0, []string{"Fiji"}},
		{"Chukotka west of 180", 65, 175, []string{"Russia"}},
		{"Chukotka east of 180", 66, -172, []string{"Russia"}},
		{"Wrangel Island east of 180", 71.2, -179.5, []string{"Russia"}},
		{"Wrangel Island west of 180", 71.3, 179.5, []string{"Russia"}},
		{"Antarctica by the pole", -89.5, 10, []string{"Antarctica"}},
		{"Antarctica across 180", -85, 179.9, []string{"Antarctica"}},
		{"Southern Ocean", -60, 179.9, nil},
	}
	for _, tt := range tests {
		page, err := svc.Search(context.Background(), geo.Query{Filter: geo.Filter{Point: &geo.Point{Lat: tt.lat, Lng: tt.lng}}, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tt.want, names(page.Things), emptyIsNil); diff != "" {
			t.Errorf("%s (%v, %v) (-want +got):\n%s", tt.name, tt.lat, tt.lng, diff)
		}
	}
	boxes := []struct {
		name string
		box  geo.BBox
		not  string
	}{
		{"the Greenwich meridian, pole to pole", geo.BBox{MinLng: 0, MinLat: -90, MaxLng: 0, MaxLat: 90}, "Russia"},
		{"the North Atlantic", geo.BBox{MinLng: -40, MinLat: 60, MaxLng: -10, MaxLat: 80}, "Russia"},
		{"the South Atlantic", geo.BBox{MinLng: -20, MinLat: -30, MaxLng: 0, MaxLat: -10}, "Fiji"},
	}
	for _, b := range boxes {
		page, err := svc.Search(context.Background(), geo.Query{Filter: geo.Filter{BBox: &b.box}, Limit: 500})
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(names(page.Things), b.not) {
			t.Errorf("bbox %s %+v answers %s: %v", b.name, b.box, b.not, names(page.Things))
		}
	}
}

var emptyIsNil = cmp.Transformer("emptyIsNil", func(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
})

// TestPointSearchAgreesWithRFC7946 compares point searches over the
// sample countries at 1:110m and 1:50m (1:10m: TestAntimeridianKnownAnswers)
// with geotest.Oracle, which reads the
// raw GeoJSON as RFC 7946 means it without any geometry engine: random
// points over the globe, and more near the antimeridian and the poles,
// where a flat reading goes wrong. A disagreement is allowed only within
// boundaryTolerance of an edge of the feature in question: where the store
// repaired a self-intersecting ring (ST_MakeValid) the oracle's even-odd
// reading differs from the repair by a sliver along that edge.
func TestPointSearchAgreesWithRFC7946(t *testing.T) {
	t.Parallel()
	for _, fixture := range []string{"ne_110m_countries.geojson", "ne_50m_countries.geojson"} {
		t.Run(fixture, func(t *testing.T) {
			t.Parallel()
			svc, _ := newService(t)
			raws := geotest.LoadRaw(t, fixture)
			importRaw(t, svc, raws)
			checkAgainstOracle(t, svc, raws)
		})
	}
}

// checkAgainstOracle locates random points over the globe, and more near
// the antimeridian and the poles, and compares the answers with
// geotest.Oracle's reading of raws.
func checkAgainstOracle(t *testing.T, svc *postgis.SearchService, raws []geo.RawFeature) {
	t.Helper()
	const boundaryTolerance = 0.01 // degrees
	oracle := geotest.NewOracle(t, raws)
	rng := rand.New(rand.NewPCG(7946, uint64(len(raws))))
	var points []geo.Point
	add := func(n int, lng0, lng1, lat0, lat1 float64) {
		for range n {
			points = append(points, geo.Point{Lng: lng0 + rng.Float64()*(lng1-lng0), Lat: lat0 + rng.Float64()*(lat1-lat0)})
		}
	}
	add(1500, -180, 180, -90, 90)
	add(300, 170, 180, 50, 75)     // Chukotka and Wrangel, west of the cut
	add(300, -180, -165, 50, 75)   // and east of it
	add(200, 176, 180, -20, -15)   // Fiji
	add(200, -180, -178, -20, -15) // Fiji east of the cut
	add(300, -180, 180, -90, -60)  // Antarctica and the Southern Ocean
	add(200, -180, 180, 60, 90)    // the Arctic
	found, err := svc.Locate(context.Background(), geo.LocateQuery{Points: points, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	tolerated, wrong := 0, 0
	for i, p := range points {
		got := names(found[i])
		want := oracle.Contains(p.Lng, p.Lat)
		for _, name := range symmetricDifference(want, got) {
			if d := oracle.Distance(name, p.Lng, p.Lat); d <= boundaryTolerance {
				tolerated++
				continue
			}
			wrong++
			if wrong <= 10 {
				t.Errorf("point (lat %v, lng %v): store answers %v, RFC 7946 reading %v (differs on %s)", p.Lat, p.Lng, got, want, name)
			}
		}
	}
	t.Logf("%d points, %d answers differ from the RFC 7946 reading, %d of them within %v degrees of the feature's edge",
		len(points), tolerated+wrong, tolerated, boundaryTolerance)
	if wrong > 0 {
		t.Errorf("%d answers differ from the RFC 7946 reading away from any edge", wrong)
	}
}

func symmetricDifference(a, b []string) []string {
	var out []string
	for _, s := range a {
		if !slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	for _, s := range b {
		if !slices.Contains(a, s) {
			out = append(out, s)
		}
	}
	return out
}
