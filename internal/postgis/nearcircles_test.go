package postgis_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/geo/geotest"
)

// rankOf is a nearest answer as "name@distance" lines, to compare.
func rankOf(things []geo.Thing) []string {
	out := make([]string, len(things))
	for i, th := range things {
		out[i] = fmt.Sprintf("%s@%.3f", th.Name, *th.DistanceM)
	}
	return out
}

func sameRank(t *testing.T, what string, got, want []geo.Thing) {
	t.Helper()
	g, w := rankOf(got), rankOf(want)
	if len(g) != len(w) {
		t.Errorf("%s: %d things, want %d\ngot  %v\nwant %v", what, len(g), len(w), g, w)
		return
	}
	for i := range g {
		if g[i] != w[i] {
			t.Errorf("%s: thing %d is %s, want %s", what, i, g[i], w[i])
			return
		}
	}
}

// TestNearestCirclesAnswerAsTheWholeDistance: nearest searches and Locate
// read in widening circles (search.go, nearRadii) answer exactly what one
// statement within the whole distance ranks: pages walked with their
// cursors, a collection whose things are all far (so that every circle is
// read), and Locate's points, each within its limit.
func TestNearestCirclesAnswerAsTheWholeDistance(t *testing.T) {
	t.Parallel()
	svc, _ := newService(t)
	var grid, far []geo.Feature
	for i := range 2400 {
		x, y := 7+float64(i%60)*0.05, 46+float64(i/60)*0.05
		grid = append(grid, geotest.Square(fmt.Sprintf("grid %04d", i), "", nil, x, y, x+0.02, y+0.02))
	}
	for i := range 12 {
		x, y := 8+float64(i)*0.3, 52+float64(i%3)
		far = append(far, geotest.Square(fmt.Sprintf("far %02d", i), "", nil, x, y, x+0.1, y+0.1))
	}
	importInto(t, svc, geo.ImportOptions{Collection: "grid"}, grid)
	importInto(t, svc, geo.ImportOptions{Collection: "far"}, far)
	ctx := context.Background()
	const whole = 1_000_000
	points := []geo.Point{{Lat: 47, Lng: 8.5}, {Lat: 46.01, Lng: 7.01}, {Lat: 49, Lng: 6}, {Lat: 47.5, Lng: 9.99}}
	// The whole ranking: a page larger than every thing within the
	// distance is read by the last circle, one statement.
	ranking := func(p geo.Point, collections []string) []geo.Thing {
		page, err := svc.Search(ctx, geo.Query{Filter: geo.Filter{Point: &p, MaxDistanceM: whole, Collections: collections}, Limit: 10_000})
		if err != nil || page.Next != nil {
			t.Fatalf("the whole ranking from %v: %v (next %v)", p, err, page.Next)
		}
		return page.Things
	}
	for _, p := range points {
		for _, collections := range [][]string{nil, {"far"}} {
			want := ranking(p, collections)
			if len(want) < 12 {
				t.Fatalf("from %v in %v: %d things within 1000 km: the test proves little", p, collections, len(want))
			}
			var walked []geo.Thing
			q := geo.Query{Filter: geo.Filter{Point: &p, MaxDistanceM: whole, Collections: collections}, Limit: 7}
			for pages := 0; pages < 12; pages++ {
				page, err := svc.Search(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				walked = append(walked, page.Things...)
				if page.Next == nil {
					break
				}
				q.After = page.Next
			}
			sameRank(t, fmt.Sprintf("pages of 7 from %v in %v", p, collections), walked, want[:min(len(want), len(walked))])
			if len(walked) < min(len(want), 7*12) {
				t.Errorf("pages of 7 from %v in %v: walked %d things of %d", p, collections, len(walked), len(want))
			}
		}
	}
	for _, collections := range [][]string{nil, {"far"}} {
		got, err := svc.Locate(ctx, geo.LocateQuery{Filter: geo.Filter{MaxDistanceM: whole, Collections: collections}, Points: points, Limit: 9})
		if err != nil || len(got) != len(points) {
			t.Fatalf("locate: %d answers, %v", len(got), err)
		}
		for i, p := range points {
			want := ranking(p, collections)
			sameRank(t, fmt.Sprintf("locate %v in %v", p, collections), got[i], want[:min(9, len(want))])
		}
	}
}
