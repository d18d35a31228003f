package httpapi_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestItemsBadInput sends each kind of bad request to the OGC resources and
// checks the status and the exception body.
func TestItemsBadInput(t *testing.T) {
	t.Parallel()
	a := start(t)
	first := a.get(t, "/collections/default/items?limit=1&bbox=-10,40,10,55").json(t)
	next := mustLink(t, links(t, first["links"]), "next").Href
	u, err := url.Parse(next)
	if err != nil {
		t.Fatal(err)
	}
	cursor := u.Query().Get("cursor")
	items := "/collections/default/items"
	tests := []struct {
		name, path string
		status     int
		want       string
	}{
		{"bbox of 3 numbers", items + "?bbox=1,2,3", 400, "bbox must be 4 numbers"},
		{"bbox of 5 numbers", items + "?bbox=1,2,3,4,5", 400, "bbox must be 4 numbers"},
		{"bbox not numbers", items + "?bbox=a,b,c,d", 400, "is not a finite number"},
		{"bbox NaN", items + "?bbox=NaN,0,1,1", 400, "is not a finite number"},
		{"bbox Inf", items + "?bbox=0,0,Inf,1", 400, "is not a finite number"},
		{"bbox empty", items + "?bbox=", 400, "bbox must be 4 numbers"},
		{"bbox lat above 90", items + "?bbox=0,0,1,91", 400, "within [-90, 90]"},
		{"bbox lng below -180", items + "?bbox=-181,0,1,1", 400, "within [-180, 180]"},
		{"bbox south above north", items + "?bbox=0,10,1,5", 400, "must not be greater than max lat"},
		{"bbox 6 numbers, heights upside down", items + "?bbox=0,0,10,1,1,5", 400, "min height"},
		{"bbox given twice", items + "?bbox=0,0,1,1&bbox=0,0,1,1", 400, "given 2 times"},
		{"limit 0", items + "?limit=0", 400, "limit must be at least 1"},
		{"limit negative", items + "?limit=-5", 400, "limit must be at least 1"},
		{"limit hugely negative", items + "?limit=-99999999999999999999", 400, "limit must be an integer"},
		{"limit not a number", items + "?limit=ten", 400, "limit must be an integer"},
		{"limit a fraction", items + "?limit=2.5", 400, "limit must be an integer"},
		{"datetime malformed", items + "?datetime=yesterday", 400, "datetime must be"},
		{"datetime both ends open", items + "?datetime=../..", 400, "datetime must be"},
		{"cursor malformed", items + "?cursor=not-a-token!", 400, "cursor is malformed"},
		{"cursor of another search", items + "?cursor=" + url.QueryEscape(cursor), 400, "cursor was issued for a different search"},
		{"query too long", items + "?q=" + strings.Repeat("x", 300), 400, "query"},
		{"unknown format", items + "?f=xml", 400, `f="xml" is not offered`},
		{"unknown collection", "/collections/rivers", 404, `there is no collection "rivers"`},
		{"unknown collection's items", "/collections/rivers/items", 404, `there is no collection "rivers"`},
		{"unknown collection's feature", "/collections/rivers/items/1", 404, `there is no collection "rivers"`},
		{"feature id not a number", items + "/france", 404, `there is no feature "france"`},
		{"feature id 0", items + "/0", 404, `there is no feature "0"`},
		{"feature id unknown", items + "/987654321", 404, "there is no thing with id 987654321"},
		{"feature id beyond int64", items + "/99999999999999999999", 404, "there is no feature"},
		{"unknown path", "/nothing/here", 404, "there is no resource at /nothing/here"},
	}
	for _, tt := range tests {
		wantException(t, tt.name, a.get(t, tt.path), tt.status, tt.want)
	}

	// The good neighbours of the cases above.
	for _, path := range []string{
		items + "?bbox=-10,40,-100,10,55,100", // six numbers: heights after each corner
		items + "?datetime=2024-01-01T00:00:00Z",
		items + "?datetime=2024-01-01/..",
		items + "?f=json",
		items + "?q=fra",
		next,
	} {
		if r := a.get(t, path); r.status != http.StatusOK {
			t.Errorf("%s: %d %s", path, r.status, r.body)
		}
	}

	// Another method on a known path: 405 with Allow, and the exception.
	r := a.do(t, http.MethodPost, items, strings.NewReader("{}"), "Content-Type", "application/json")
	wantException(t, "POST items", r, http.StatusMethodNotAllowed, "method POST is not allowed")
	if allow := r.header.Get("Allow"); allow != "GET, HEAD" {
		t.Errorf("Allow %q, want GET, HEAD", allow)
	}
	wantException(t, "DELETE locate", a.do(t, http.MethodDelete, "/locate", nil), http.StatusMethodNotAllowed, "allowed: GET, HEAD, POST")
}

// TestBBoxAcrossTheAntimeridian: a box whose min lng exceeds its max lng
// spans the antimeridian; Fiji lies on both sides.
func TestBBoxAcrossTheAntimeridian(t *testing.T) {
	t.Parallel()
	a := start(t)
	r := a.get(t, "/collections/default/items?bbox=175,-20,-178,-15")
	var names []string
	for _, f := range r.json(t)["features"].([]any) {
		names = append(names, f.(map[string]any)["properties"].(map[string]any)["name"].(string))
	}
	if strings.Join(names, ",") != "Fiji" {
		t.Errorf("bbox=175,-20,-178,-15: %v, want Fiji", names)
	}
	// Across the line south of Fiji: nothing.
	if r := a.get(t, "/collections/default/items?bbox=175,-25,-178,-21"); r.json(t)["numberReturned"].(float64) != 0 {
		t.Errorf("across the line south of Fiji: %s", r.body)
	}
}

// TestLocate checks GET /locate and its bad input.
func TestLocate(t *testing.T) {
	t.Parallel()
	a := start(t)
	r := a.get(t, "/locate?lat=48.85&lng=2.35")
	if r.status != http.StatusOK {
		t.Fatalf("Paris: %d %s", r.status, r.body)
	}
	var ans struct {
		Lat, Lng float64
		Things   []struct {
			ID         int64
			Name       string
			Collection string
			Properties map[string]any
			BBox       []float64
			Geometry   json.RawMessage
		}
	}
	if err := json.Unmarshal(r.body, &ans); err != nil {
		t.Fatal(err)
	}
	if len(ans.Things) != 1 || ans.Things[0].Name != "France" || ans.Things[0].Collection != "default" || ans.Things[0].Properties["iso_n3"] != "250" || ans.Things[0].Geometry != nil {
		t.Errorf("Paris: %s", r.body)
	}
	if r := a.get(t, "/locate?lat=48.85&lng=2.35&geometry=true"); !bytes.Contains(r.body, []byte(`"geometry":{"type":"MultiPolygon"`)) {
		t.Errorf("geometry=true: no geometry in %.200s", r.body)
	}
	if r := a.get(t, "/locate?lat=30&lng=-30"); !bytes.Contains(r.body, []byte(`"things":[]`)) {
		t.Errorf("mid-Atlantic: %s", r.body)
	}
	for _, tt := range []struct{ name, query, want string }{
		{"no lat", "lng=2", "lat is required"},
		{"no lng", "lat=2", "lng is required"},
		{"lat not a number", "lat=north&lng=2", "lat must be a number"},
		{"lat out of range", "lat=91&lng=2", "within [-90, 90]"},
		{"lng NaN", "lat=1&lng=NaN", "finite"},
		{"geometry not a bool", "lat=1&lng=2&geometry=maybe", "geometry must be true or false"},
		{"collections empty", "lat=1&lng=2&collections=", "collections must name at least one collection"},
		{"collections with a bad name", "lat=1&lng=2&collections=Countries", `collection name "Countries" is invalid`},
		{"collections with an empty name", "lat=1&lng=2&collections=default,", "a collection name must not be empty"},
		{"limit 0", "lat=1&lng=2&limit=0", "limit must be at least 1"},
		{"limit not a number", "lat=1&lng=2&limit=all", "limit must be an integer"},
		{"q too long", "lat=1&lng=2&q=" + strings.Repeat("x", 300), "query"},
		{"max_distance_m not a number", "lat=1&lng=2&max_distance_m=far", "max_distance_m must be a number"},
		{"max_distance_m negative", "lat=1&lng=2&max_distance_m=-5", "max_distance_m"},
		{"max_distance_m NaN", "lat=1&lng=2&max_distance_m=NaN", "max_distance_m"},
		{"max_distance_m over the cap", "lat=1&lng=2&max_distance_m=1e9", "max_distance_m"},
		{"unknown parameter", "lat=1&lng=2&zoom=3", `unknown parameter "zoom"`},
	} {
		wantException(t, tt.name, a.get(t, "/locate?"+tt.query), http.StatusBadRequest, tt.want)
	}
}

// ndjsonLines reads an NDJSON answer.
func ndjsonLines(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

func thingNames(line map[string]any) string {
	var names []string
	for _, th := range line["things"].([]any) {
		names = append(names, th.(map[string]any)["name"].(string))
	}
	return strings.Join(names, ",")
}

// TestLocateMany checks POST /locate: NDJSON and GeoJSON in, one NDJSON
// line per point out, in order, a bad point answered in its own line; and
// the body's media type and size limits.
func TestLocateMany(t *testing.T) {
	t.Parallel()
	a := start(t, func(s *setup) { s.cfg.MaxBodyBytes = 128 << 10 })
	body := `{"id":"paris","lat":48.85,"lng":2.35}
{"id":7,"lat":95,"lng":0}

not json
{"id":"no lng","lat":1}
{"id":"tokyo","lat":35.69,"lng":139.69}
`
	r := a.do(t, http.MethodPost, "/locate", strings.NewReader(body), "Content-Type", "application/x-ndjson")
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("NDJSON: %d %s %s", r.status, r.header.Get("Content-Type"), r.body)
	}
	lines := ndjsonLines(t, r.body)
	if len(lines) != 5 {
		t.Fatalf("%d lines for 5 points: %s", len(lines), r.body)
	}
	want := []struct {
		id     any
		things string
		err    string
	}{
		{"paris", "France", ""},
		{float64(7), "", "within [-90, 90]"},
		{nil, "", "line 4 is not valid JSON"},
		{"no lng", "", "needs both lat and lng"},
		{"tokyo", "Japan", ""},
	}
	for i, w := range want {
		got := lines[i]
		if got["id"] != w.id || thingNames(got) != w.things {
			t.Errorf("line %d: %v, want id %v things %q", i, got, w.id, w.things)
		}
		e, _ := got["error"].(map[string]any)
		if (w.err == "") != (e == nil) || e != nil && !strings.Contains(e["description"].(string), w.err) {
			t.Errorf("line %d: error %v, want %q", i, e, w.err)
		}
	}

	geojson := `{"type":"FeatureCollection","features":[
		{"type":"Feature","id":"a","geometry":{"type":"Point","coordinates":[2.35,48.85]},"properties":{}},
		{"type":"Feature","id":"b","geometry":{"type":"LineString","coordinates":[[0,0],[1,1]]},"properties":{}},
		{"type":"Feature","id":3,"geometry":{"type":"Point","coordinates":[-99.13,19.43]}}]}`
	r = a.do(t, http.MethodPost, "/locate", strings.NewReader(geojson), "Content-Type", "application/geo+json")
	lines = ndjsonLines(t, r.body)
	if r.status != http.StatusOK || len(lines) != 3 || thingNames(lines[0]) != "France" || lines[1]["error"] == nil || thingNames(lines[2]) != "Mexico" || lines[2]["id"] != float64(3) {
		t.Errorf("GeoJSON: %d %s", r.status, r.body)
	}

	// Media types.
	wantException(t, "no Content-Type", a.do(t, http.MethodPost, "/locate", strings.NewReader(body)), http.StatusUnsupportedMediaType, "is not accepted here")
	wantException(t, "text/csv", a.do(t, http.MethodPost, "/locate", strings.NewReader("1,2"), "Content-Type", "text/csv"), http.StatusUnsupportedMediaType, `"text/csv" is not accepted`)
	wantException(t, "GeoJSON that is not", a.do(t, http.MethodPost, "/locate", strings.NewReader(`[1,2]`), "Content-Type", "application/geo+json"), http.StatusBadRequest, "not a GeoJSON FeatureCollection")
	wantException(t, "GeoJSON without features", a.do(t, http.MethodPost, "/locate", strings.NewReader(`{"type":"Feature"}`), "Content-Type", "application/geo+json"), http.StatusBadRequest, "no features member")

	// Sizes: a declared length above the limit (128 KiB here) is refused
	// before reading; a chunked body that grows past it ends its answer
	// with an error line; so does an NDJSON line above 64 KiB.
	big := strings.Repeat(`{"id":"x","lat":0,"lng":0}`+"\n", (128<<10)/27+10)
	wantException(t, "Content-Length above the limit", a.do(t, http.MethodPost, "/locate", strings.NewReader(big), "Content-Type", "application/x-ndjson"), http.StatusRequestEntityTooLarge, "the limit is 131072")
	chunked := a.do(t, http.MethodPost, "/locate", io.MultiReader(strings.NewReader(big)), "Content-Type", "application/x-ndjson")
	lines = ndjsonLines(t, chunked.body)
	last := lines[len(lines)-1]
	if e, _ := last["error"].(map[string]any); chunked.status != http.StatusOK || e == nil || !strings.Contains(e["description"].(string), "exceeds 131072 bytes") {
		t.Errorf("chunked body above the limit: %d, last line %v", chunked.status, last)
	}
	if len(lines) < 1000 {
		t.Errorf("chunked body above the limit: only %d lines answered before the limit", len(lines))
	}
	long := fmt.Sprintf(`{"id":"%s","lat":0,"lng":0}`, strings.Repeat("x", 70<<10))
	r = a.do(t, http.MethodPost, "/locate", strings.NewReader(`{"id":"first","lat":48.85,"lng":2.35}`+"\n"+long+"\n"), "Content-Type", "application/x-ndjson")
	lines = ndjsonLines(t, r.body)
	if len(lines) != 2 || thingNames(lines[0]) != "France" || !strings.Contains(fmt.Sprint(lines[1]["error"]), "longer than 65536 bytes") {
		t.Errorf("an NDJSON line above 64 KiB: %s", r.body)
	}
	// No points: an empty answer.
	if r := a.do(t, http.MethodPost, "/locate", strings.NewReader(""), "Content-Type", "application/x-ndjson"); r.status != http.StatusOK || len(r.body) != 0 {
		t.Errorf("no points: %d %q", r.status, r.body)
	}
}
