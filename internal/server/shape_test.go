package server_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/geo/geotest"
	"github.com/geosearch/search/internal/server/servertest"
)

// TestShapingEndToEnd runs output shaping through the real server on
// PostGIS and through search-client: a mask of id and name returns just
// those, on a search, a stream, a get and a locate; geometry comes
// simplified and rounded when asked; total_size counts every match across
// pages; an unknown field is INVALID_ARGUMENT naming it.
func TestShapingEndToEnd(t *testing.T) {
	t.Parallel()
	ts := servertest.Start(t, nil, true)
	if _, errOut, code := ts.RunClient(t, "import", geotest.Testdata("ne_110m_countries.geojson"), "--collection", "countries", "--key-property", "name"); code != 0 {
		t.Fatalf("import: exit %d\n%s", code, errOut)
	}
	ctx := context.Background()
	paris := &searchv1.Point{Lat: 48.85, Lng: 2.35}
	idName := &fieldmaskpb.FieldMask{Paths: []string{"id", "name"}}

	resp, err := ts.Client.Search(ctx, &searchv1.SearchRequest{Point: paris, ReadMask: idName})
	if err != nil || len(resp.GetThings()) != 1 {
		t.Fatalf("search: %v, %v", resp, err)
	}
	fr := resp.GetThings()[0]
	if fr.GetName() != "France" || fr.GetId() == 0 || fr.GetKey() != "" || fr.GetCollection() != "" || fr.GetProperties() != nil || fr.GetBbox() != nil {
		t.Errorf("id and name only: %v", fr)
	}
	got, err := ts.Client.GetThing(ctx, &searchv1.GetThingRequest{Id: fr.GetId(), ReadMask: &fieldmaskpb.FieldMask{Paths: []string{"key", "properties"}}})
	if err != nil || got.GetKey() != "France" || got.GetProperties().GetFields()["name"].GetStringValue() != "France" || got.GetId() != 0 || got.GetName() != "" {
		t.Errorf("get key and properties: %v, %v", got, err)
	}

	// The geometry, simplified and rounded, has fewer positions than stored.
	full, err := ts.Client.Search(ctx, &searchv1.SearchRequest{Point: paris, ReadMask: &fieldmaskpb.FieldMask{Paths: []string{"geometry_geojson"}}})
	if err != nil || len(full.GetThings()) != 1 {
		t.Fatalf("geometry: %v, %v", full, err)
	}
	one := int32(1)
	shaped, err := ts.Client.Search(ctx, &searchv1.SearchRequest{Point: paris, IncludeGeometry: true, ReadMask: idName, SimplifyTolerance: 0.5, CoordinatePrecision: &one})
	if err != nil || len(shaped.GetThings()) != 1 {
		t.Fatalf("shaped geometry: %v, %v", shaped, err)
	}
	stored, simplified := full.GetThings()[0].GetGeometryGeojson(), shaped.GetThings()[0].GetGeometryGeojson()
	if positions(stored) <= positions(simplified) || !strings.HasPrefix(simplified, `{"type":"MultiPolygon"`) {
		t.Errorf("simplified geometry %s has %d positions, the stored %d", simplified, positions(simplified), positions(stored))
	}
	if hasLongDecimals(simplified, 1) {
		t.Errorf("coordinates with more than 1 decimal digit: %s", simplified)
	}

	// total_size: every match across the pages, whatever the page.
	var all int32
	stream, err := ts.Client.SearchStream(ctx, &searchv1.SearchRequest{Query: "an", ReadMask: idName})
	if err != nil {
		t.Fatal(err)
	}
	for {
		th, err := stream.Recv()
		if err != nil {
			break
		}
		if th.GetKey() != "" || th.GetName() == "" {
			t.Fatalf("streamed %v, want id and name only", th)
		}
		all++
	}
	req := &searchv1.SearchRequest{Query: "an", PageSize: 7, ShowTotalSize: true, ReadMask: idName}
	pages, seen := 0, int32(0)
	for {
		page, err := ts.Client.Search(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if page.GetTotalSize() != all {
			t.Errorf("page %d: total_size %d, want %d", pages, page.GetTotalSize(), all)
		}
		seen += int32(len(page.GetThings()))
		pages++
		if page.GetNextPageToken() == "" {
			break
		}
		req.PageToken = page.GetNextPageToken()
		req.ReadMask = nil // the mask may change between pages
	}
	if seen != all || pages < 2 {
		t.Errorf("paged %d things in %d pages, streamed %d", seen, pages, all)
	}

	// An unknown field, on each RPC.
	bad := &fieldmaskpb.FieldMask{Paths: []string{"name", "area_km2"}}
	wantBad := func(rpc string, err error) {
		t.Helper()
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), `unknown fields of Thing: "area_km2"`) {
			t.Errorf("%s with an unknown field: %s %q", rpc, st.Code(), st.Message())
		}
	}
	_, err = ts.Client.Search(ctx, &searchv1.SearchRequest{Point: paris, ReadMask: bad})
	wantBad("Search", err)
	if s, err := ts.Client.SearchStream(ctx, &searchv1.SearchRequest{Point: paris, ReadMask: bad}); err == nil {
		_, err = s.Recv()
		wantBad("SearchStream", err)
	}
	_, err = ts.Client.GetThing(ctx, &searchv1.GetThingRequest{Id: fr.GetId(), ReadMask: bad})
	wantBad("GetThing", err)
	ls, err := ts.Client.Locate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = ls.Send(&searchv1.LocateRequest{Options: &searchv1.LocateOptions{ReadMask: bad}, Id: "p", Point: paris})
	_ = ls.CloseSend()
	_, err = ls.Recv()
	wantBad("Locate", err)

	// The CLI: --fields on search (a table of those columns) and locate.
	out, errOut, code := ts.RunClient(t, "search", "--lat", "48.85", "--lng", "2.35", "--fields", "name,key", "--total")
	if code != 0 || !strings.Contains(out, "NAME") || !strings.Contains(out, "France  France") || strings.Contains(out, "BBOX") || !strings.Contains(out, "total: 1") {
		t.Errorf("search --fields name,key --total: exit %d\n%s%s", code, out, errOut)
	}
	points := filepath.Join(t.TempDir(), "p.csv")
	if err := os.WriteFile(points, []byte("paris,48.85,2.35\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = ts.RunClient(t, "locate", "--fields", "name", points)
	var answer struct {
		ID     string
		Things []map[string]any
	}
	if code != 0 || json.Unmarshal([]byte(out), &answer) != nil || len(answer.Things) != 1 || len(answer.Things[0]) != 1 || answer.Things[0]["name"] != "France" {
		t.Errorf("locate --fields name: exit %d\n%s%s", code, out, errOut)
	}
	if _, errOut, code = ts.RunClient(t, "search", "--query", "a", "--fields", "id,colour"); code == 0 || !strings.Contains(errOut, `"colour"`) {
		t.Errorf("search --fields id,colour: exit %d\n%s", code, errOut)
	}
}

// positions counts the positions of a GeoJSON geometry.
func positions(geojson string) int { return strings.Count(geojson, "],[") + 1 }

// hasLongDecimals reports whether a number in s has more than digits
// decimal digits.
func hasLongDecimals(s string, digits int) bool {
	run, inFraction := 0, false
	for _, r := range s {
		switch {
		case r == '.':
			inFraction, run = true, 0
		case r >= '0' && r <= '9':
			if inFraction {
				run++
				if run > digits {
					return true
				}
			}
		default:
			inFraction = false
		}
	}
	return false
}
