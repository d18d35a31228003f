package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/geo/geotest"
	"github.com/geosearch/search/internal/server/servertest"
)

// locateLine is one point's answer, in a form both transports map to:
// the point's id, whether it failed, and its things as JSON values.
type locateLine struct {
	ID     string
	Failed bool
	Things []any
}

// grpcLocate answers points over gRPC Locate with opts, the stream sending
// while it receives.
func grpcLocate(t *testing.T, ts *servertest.Server, opts *searchv1.LocateOptions, ids []string, pts [][2]float64) []locateLine {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	stream, err := ts.Client.Locate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sent := make(chan error, 1)
	go func() {
		if err := stream.Send(&searchv1.LocateRequest{Options: opts}); err != nil {
			sent <- err
			return
		}
		for i, p := range pts {
			if err := stream.Send(&searchv1.LocateRequest{Id: ids[i], Point: &searchv1.Point{Lat: p[0], Lng: p[1]}}); err != nil {
				sent <- err
				return
			}
		}
		sent <- stream.CloseSend()
	}()
	var out []locateLine
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("gRPC Locate: %v", err)
		}
		line := locateLine{ID: resp.GetId(), Failed: resp.GetError() != nil, Things: []any{}}
		for _, th := range resp.GetThings() {
			m := map[string]any{
				"id": float64(th.GetId()), "name": th.GetName(), "collection": th.GetCollection(),
				"properties": map[string]any{},
				"bbox":       []any{th.GetBbox().GetMinLng(), th.GetBbox().GetMinLat(), th.GetBbox().GetMaxLng(), th.GetBbox().GetMaxLat()},
			}
			if th.GetKey() != "" {
				m["key"] = th.GetKey()
			}
			if th.DistanceM != nil {
				m["distance_m"] = th.GetDistanceM()
			}
			if th.GetProperties() != nil {
				m["properties"] = th.GetProperties().AsMap()
			}
			if g := th.GetGeometryGeojson(); g != "" {
				var geom any
				if err := json.Unmarshal([]byte(g), &geom); err != nil {
					t.Fatal(err)
				}
				m["geometry"] = geom
			}
			line.Things = append(line.Things, m)
		}
		out = append(out, line)
	}
	if err := <-sent; err != nil {
		t.Fatalf("gRPC Locate send: %v", err)
	}
	return out
}

// httpLocate answers points over POST /locate with query.
func httpLocate(t *testing.T, base, query string, ids []string, pts [][2]float64) []locateLine {
	t.Helper()
	var body strings.Builder
	for i, p := range pts {
		fmt.Fprintf(&body, `{"id":%q,"lat":%v,"lng":%v}`+"\n", ids[i], p[0], p[1])
	}
	resp, err := (&http.Client{Timeout: 5 * time.Minute}).Post(base+"/locate"+query, "application/x-ndjson", strings.NewReader(body.String()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST /locate%s: %d %s", query, resp.StatusCode, b)
	}
	var out []locateLine
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<26)
	for sc.Scan() {
		var a struct {
			ID     string
			Things []any
			Error  any
		}
		if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out = append(out, locateLine{ID: a.ID, Failed: a.Error != nil, Things: a.Things})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestHTTPLocateAnswersAsGRPCLocate: POST /locate and gRPC Locate give the
// same answers, whole things included (ids, keys, names, collections,
// properties, boxes, geometries), for many points and several scopes: one
// domain Locate behind both.
func TestHTTPLocateAnswersAsGRPCLocate(t *testing.T) {
	t.Parallel()
	ts := servertest.Start(t, map[string]string{"HTTP_LISTEN_ADDR": "127.0.0.1:0", "LOCATE_BATCH_SIZE": "64"}, true)
	base := "http://" + ts.Srv.HTTPAddr().String()
	if _, errOut, code := ts.RunClient(t, "import", geotest.Testdata("ne_50m_countries.geojson"), "--collection", "countries", "--key-property", "name"); code != 0 {
		t.Fatalf("import: exit %d\n%s", code, errOut)
	}
	if _, errOut, code := ts.RunClient(t, "import", geotest.Testdata("ne_110m_countries.geojson"), "--collection", "coarse"); code != 0 {
		t.Fatalf("import: exit %d\n%s", code, errOut)
	}
	var ids []string
	var pts [][2]float64
	for lat := -56.0; lat <= 72; lat += 6.1 {
		for lng := -179.5; lng < 180; lng += 11.3 {
			ids = append(ids, fmt.Sprintf("p%d", len(ids)))
			pts = append(pts, [2]float64{lat, lng})
		}
	}
	ids = append(ids, "bad-lat", "paris", "bad-lng")
	pts = append(pts, [2]float64{91, 0}, [2]float64{48.85, 2.35}, [2]float64{0, 200})
	for _, tt := range []struct {
		name  string
		query string
		opts  *searchv1.LocateOptions
	}{
		{"every collection", "", &searchv1.LocateOptions{}},
		{"one collection with geometry", "?collections=coarse&geometry=true", &searchv1.LocateOptions{Collections: []string{"coarse"}, IncludeGeometry: true}},
		{"two collections, a name search, one thing a point", "?collections=countries,coarse&q=a&limit=1", &searchv1.LocateOptions{Collections: []string{"countries", "coarse"}, Query: "a", Limit: 1}},
		{"nearest within 300 km", "?collections=coarse&max_distance_m=300000&limit=3", &searchv1.LocateOptions{Collections: []string{"coarse"}, MaxDistanceM: 300000, Limit: 3}},
	} {
		viaGRPC := grpcLocate(t, ts, tt.opts, ids, pts)
		viaHTTP := httpLocate(t, base, tt.query, ids, pts)
		if len(viaGRPC) != len(pts) || len(viaHTTP) != len(pts) {
			t.Fatalf("%s: %d gRPC answers, %d HTTP answers, for %d points", tt.name, len(viaGRPC), len(viaHTTP), len(pts))
		}
		inside, failed, near := 0, 0, 0
		for i := range pts {
			if !reflect.DeepEqual(viaGRPC[i], viaHTTP[i]) {
				t.Errorf("%s: point %s %v:\ngRPC %v\nHTTP %v", tt.name, ids[i], pts[i], viaGRPC[i], viaHTTP[i])
			}
			if len(viaHTTP[i].Things) > 0 {
				inside++
			}
			for _, th := range viaHTTP[i].Things {
				if d, ok := th.(map[string]any)["distance_m"].(float64); ok && d > 0 {
					near++
				}
			}
			if viaHTTP[i].Failed {
				failed++
			}
		}
		if inside < len(pts)/10 || failed != 2 {
			t.Errorf("%s: %d of %d points in a thing, %d failed (want 2)", tt.name, inside, len(pts), failed)
		}
		if (tt.opts.GetMaxDistanceM() > 0) != (near > 0) {
			t.Errorf("%s: %d things at a distance above 0", tt.name, near)
		}
	}
}
