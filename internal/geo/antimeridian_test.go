package geo_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/twpayne/go-geom"

	"github.com/geosearch/search/internal/geo"
)

func decodeRings(t *testing.T, geometry string) (*geom.MultiPolygon, []string) {
	t.Helper()
	f, err := geo.DecodeFeature(geo.RawFeature{Name: "x", GeometryJSON: []byte(geometry)}, geo.DefaultLimits)
	if err != nil {
		t.Fatalf("decode %s: %v", geometry, err)
	}
	return f.Geometry, f.Repairs
}

func TestDecodeFeatureReadsAntimeridianEdgesTheShortWay(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		geometry string
		want     [][][]geom.Coord
		repair   string // a word the repair must contain; "" for none
	}{
		{
			name:     "a box from 170 to -170 across 180, most of it west",
			geometry: `{"type":"Polygon","coordinates":[[[170,0],[179,0],[-170,0],[-170,10],[170,10],[170,0]]]}`,
			want:     [][][]geom.Coord{{{{170, 0}, {179, 0}, {190, 0}, {190, 10}, {170, 10}, {170, 0}}}},
			repair:   "crosses the antimeridian",
		},
		{
			name:     "most of it east: the frame keeps the most positions as they are",
			geometry: `{"type":"Polygon","coordinates":[[[-170,0],[-160,0],[-160,10],[-170,10],[175,10],[175,0],[-170,0]]]}`,
			want:     [][][]geom.Coord{{{{-170, 0}, {-160, 0}, {-160, 10}, {-170, 10}, {-185, 10}, {-185, 0}, {-170, 0}}}},
			repair:   "crosses the antimeridian",
		},
		{
			name:     "a zero-length edge from -180 to 180 (Natural Earth's Fiji)",
			geometry: `{"type":"Polygon","coordinates":[[[-180,-16],[180,-16],[179,-16.5],[180,-17],[-180,-17],[-179,-16.5],[-180,-16]]]}`,
			want:     [][][]geom.Coord{{{{-180, -16}, {-181, -16.5}, {-180, -17}, {-179, -16.5}, {-180, -16}}}},
			repair:   "crosses the antimeridian",
		},
		{
			name:     "a ring round the south pole is closed along it",
			geometry: `{"type":"Polygon","coordinates":[[[0,-70],[90,-70],[179,-70],[-179,-72],[-90,-70],[0,-70]]]}`,
			want:     [][][]geom.Coord{{{{-180, -71}, {-179, -72}, {-90, -70}, {0, -70}, {90, -70}, {179, -70}, {180, -71}, {180, -90}, {-180, -90}, {-180, -71}}}},
			repair:   "south pole",
		},
		{
			name:     "a ring round the north pole, going west",
			geometry: `{"type":"Polygon","coordinates":[[[0,80],[-179,80],[179,80],[90,80],[0,80]]]}`,
			want:     [][][]geom.Coord{{{{180, 80}, {179, 80}, {90, 80}, {0, 80}, {-179, 80}, {-180, 80}, {-180, 90}, {180, 90}, {180, 80}}}},
			repair:   "north pole",
		},
		{
			name: "two rings round the south pole: the band between them (Natural Earth 1:50m Antarctica)",
			geometry: `{"type":"Polygon","coordinates":[
				[[-180,-89.999],[90,-89.999],[0,-89.999],[-90,-89.999],[-180,-89.999]],
				[[0,-70],[90,-70],[179,-70],[-179,-70],[-90,-70],[0,-70]]]}`,
			want: [][][]geom.Coord{{
				{{-180, -70}, {-179, -70}, {-90, -70}, {0, -70}, {90, -70}, {179, -70}, {180, -70}, {180, -90}, {-180, -90}, {-180, -70}},
				{{180, -89.999}, {90, -89.999}, {0, -89.999}, {-90, -89.999}, {-180, -89.999}, {-180, -90}, {180, -90}, {180, -89.999}},
			}},
			repair: "south pole",
		},
		{
			name:     "a hole across 180 follows its outer ring's frame",
			geometry: `{"type":"Polygon","coordinates":[[[170,-10],[-170,-10],[-170,10],[170,10],[170,-10]],[[-179,-1],[-178,-1],[-178,1],[-179,1],[-179,-1]]]}`,
			want: [][][]geom.Coord{{
				{{170, -10}, {190, -10}, {190, 10}, {170, 10}, {170, -10}},
				{{181, -1}, {182, -1}, {182, 1}, {181, 1}, {181, -1}},
			}},
			repair: "crosses the antimeridian",
		},
		{
			name:     "edges of exactly 180 degrees are straight lines",
			geometry: `{"type":"Polygon","coordinates":[[[-90,0],[90,0],[90,10],[-90,10],[-90,0]]]}`,
			want:     [][][]geom.Coord{{{{-90, 0}, {90, 0}, {90, 10}, {-90, 10}, {-90, 0}}}},
		},
		{
			name:     "a ring along the antimeridian without crossing it",
			geometry: `{"type":"Polygon","coordinates":[[[170,0],[180,0],[180,10],[170,10],[170,0]]]}`,
			want:     [][][]geom.Coord{{{{170, 0}, {180, 0}, {180, 10}, {170, 10}, {170, 0}}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mp, repairs := decodeRings(t, tt.geometry)
			if diff := cmp.Diff(tt.want, mp.Coords()); diff != "" {
				t.Errorf("coordinates (-want +got):\n%s", diff)
			}
			if tt.repair == "" {
				if len(repairs) != 0 || geo.CrossesAntimeridian(mp) {
					t.Errorf("repairs %q, crosses %v; want none", repairs, geo.CrossesAntimeridian(mp))
				}
				return
			}
			if len(repairs) == 0 || !strings.Contains(strings.Join(repairs, "; "), tt.repair) {
				t.Errorf("repairs %q; want one saying %q", repairs, tt.repair)
			}
		})
	}
}

func TestDecodeFeatureRefusesRingsRoundThePoleTwice(t *testing.T) {
	t.Parallel()
	_, err := geo.DecodeFeature(geo.RawFeature{Name: "x", GeometryJSON: []byte(`{"type":"Polygon","coordinates":[[
		[0,-70],[120,-70],[-120,-70],[0,-71],[120,-71],[-120,-71],[0,-70]]]}`)}, geo.DefaultLimits)
	if geo.ErrorCode(err) != geo.Invalid || !strings.Contains(err.Error(), "round the pole 2 times") {
		t.Fatalf("err = %v; want Invalid, round the pole 2 times", err)
	}
}

func TestDecodeAreaReadsAntimeridianEdgesTheShortWay(t *testing.T) {
	t.Parallel()
	a, err := geo.DecodeArea([]byte(`{"type":"Polygon","coordinates":[[[170,0],[-170,0],[-170,10],[170,10],[170,0]]]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"type":"MultiPolygon","coordinates":[[[[170,0],[190,0],[190,10],[170,10],[170,0]]]]}`
	if a.GeoJSON() != want {
		t.Errorf("area %s; want %s", a.GeoJSON(), want)
	}
}

// TestPageTokenWithNULIsMalformed: a forged token whose name holds a NUL
// byte (PostgreSQL text cannot) is refused as malformed, not sent to the
// database.
func TestPageTokenWithNULIsMalformed(t *testing.T) {
	t.Parallel()
	f := geo.Filter{Collections: []string{"default"}}
	tok := geo.EncodePageToken(f, geo.Cursor{Name: "Fr\x00ance", ID: 1})
	if _, err := geo.DecodePageToken(tok, f, "page_token"); geo.ErrorCode(err) != geo.Invalid || !strings.Contains(err.Error(), "malformed") {
		t.Errorf("decode: %v; want Invalid, malformed", err)
	}
}
