package geotest

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/geosearch/search/internal/geo"
)

// Oracle answers "which features contain this point" from the raw GeoJSON,
// reading it as RFC 7946 means it, by a method unrelated to the store's:
// no geometry engine, no cutting, no unwrapping.
//
// An edge is the straight line between its positions in longitude and
// latitude, except that an edge spanning more than 180 degrees of longitude
// goes the short way across the antimeridian (RFC 7946 section 3.1.9 asks
// writers to cut such rings; many datasets do not). A point is inside a
// polygon when a ray from it due north, up its meridian to the north pole,
// crosses the polygon's rings (outer ring and holes together) an odd number
// of times. So no polygon contains the north pole (true of every country,
// of Antarctica, and of the sample grids), and a ring that goes round the
// south pole encloses it.
//
// Tests compare the service's answers with it so that reading the data
// wrongly cannot hide behind "equal to PostGIS" on the same wrong reading.
type Oracle struct {
	features []oracleFeature
	// buckets[i] lists the edges that cover longitudes [i-180, i-179]:
	// the only edges a point's meridian there can cross.
	buckets [360][]oracleEdge
}

type oracleFeature struct {
	name  string
	rings [][][2]float64 // every ring of every polygon
}

type oracleEdge struct {
	feature, polygon int
	a, b             [2]float64 // b's longitude is a's plus the edge's short-way span
}

// NewOracle builds an oracle over raw features (as LoadRaw returns them).
func NewOracle(t testing.TB, raws []geo.RawFeature) *Oracle {
	t.Helper()
	o := &Oracle{}
	for fi, rf := range raws {
		var g struct {
			Type        string          `json:"type"`
			Coordinates json.RawMessage `json:"coordinates"`
		}
		if err := json.Unmarshal(rf.GeometryJSON, &g); err != nil {
			t.Fatalf("oracle: feature %d: %v", rf.Index, err)
		}
		var polygons [][][][]float64
		switch g.Type {
		case "Polygon":
			var p [][][]float64
			if err := json.Unmarshal(g.Coordinates, &p); err != nil {
				t.Fatalf("oracle: feature %d: %v", rf.Index, err)
			}
			polygons = [][][][]float64{p}
		case "MultiPolygon":
			if err := json.Unmarshal(g.Coordinates, &polygons); err != nil {
				t.Fatalf("oracle: feature %d: %v", rf.Index, err)
			}
		default:
			t.Fatalf("oracle: feature %d: type %s", rf.Index, g.Type)
		}
		f := oracleFeature{name: rf.Name}
		for pi, rings := range polygons {
			for _, ring := range rings {
				r := make([][2]float64, len(ring))
				for i, c := range ring {
					r[i] = [2]float64{c[0], c[1]}
				}
				f.rings = append(f.rings, r)
				for i := 1; i < len(r); i++ {
					o.addEdge(oracleEdge{feature: fi, polygon: pi, a: r[i-1], b: [2]float64{r[i-1][0] + span(r[i][0]-r[i-1][0]), r[i][1]}})
				}
			}
		}
		o.features = append(o.features, f)
	}
	return o
}

// span is an edge's longitude difference read the short way.
func span(d float64) float64 {
	switch {
	case d > 180:
		return d - 360
	case d < -180:
		return d + 360
	}
	return d
}

func (o *Oracle) addEdge(e oracleEdge) {
	lo, hi := math.Min(e.a[0], e.b[0]), math.Max(e.a[0], e.b[0])
	for b := math.Floor(lo); b <= hi; b++ {
		i := int(b) + 180
		i = ((i % 360) + 360) % 360
		o.buckets[i] = append(o.buckets[i], e)
	}
}

// Contains returns the names of the features containing (lng, lat), in
// feature order.
func (o *Oracle) Contains(lng, lat float64) []string {
	i := int(math.Floor(lng)) + 180
	i = ((i % 360) + 360) % 360
	type key struct{ feature, polygon int }
	crossings := map[key]int{}
	for _, e := range o.buckets[i] {
		// Longitudes relative to the point's meridian, a's in (-180, 180].
		ax := span(math.Mod(e.a[0]-lng, 360))
		bx := ax + (e.b[0] - e.a[0])
		if (ax > 0) == (bx > 0) {
			continue // the edge does not cross the meridian
		}
		y := e.a[1] + (0-ax)/(bx-ax)*(e.b[1]-e.a[1])
		if y > lat {
			crossings[key{e.feature, e.polygon}]++
		}
	}
	inside := map[int]bool{}
	for k, n := range crossings {
		if n%2 == 1 {
			inside[k.feature] = true
		}
	}
	var out []string
	for fi, f := range o.features {
		if inside[fi] {
			out = append(out, f.name)
		}
	}
	return out
}

// Distance returns how far (lng, lat) is from the nearest edge of the
// feature called name, in degrees measured flat (edges read the short way):
// tests use it to tell a disagreement on a feature's repaired or quantized
// boundary from a wrong reading.
func (o *Oracle) Distance(name string, lng, lat float64) float64 {
	best := math.Inf(1)
	for _, f := range o.features {
		if f.name != name {
			continue
		}
		for _, r := range f.rings {
			for i := 1; i < len(r); i++ {
				ax := span(math.Mod(r[i-1][0]-lng, 360))
				bx := ax + span(r[i][0]-r[i-1][0])
				best = math.Min(best, segmentDistance(0, lat, ax, r[i-1][1], bx, r[i][1]))
			}
		}
	}
	return best
}

func segmentDistance(px, py, ax, ay, bx, by float64) float64 {
	dx, dy := bx-ax, by-ay
	t := 0.0
	if l := dx*dx + dy*dy; l > 0 {
		t = math.Max(0, math.Min(1, ((px-ax)*dx+(py-ay)*dy)/l))
	}
	return math.Hypot(px-(ax+t*dx), py-(ay+t*dy))
}

// WrapLng folds a longitude into [-180, 180]: a decoded feature's
// positions may lie past +-180 where its rings cross the antimeridian (the
// store folds them back), and tests that pick points from them need the
// point as stored.
func WrapLng(lng float64) float64 {
	for lng > 180 {
		lng -= 360
	}
	for lng < -180 {
		lng += 360
	}
	return lng
}
