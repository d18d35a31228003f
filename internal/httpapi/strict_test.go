package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/geosearch/search/internal/geo"
)

// guardedStore is the store behind the API in the strict-input tests: it
// counts what reaches it and records any query that a valid request could
// not have produced, so a decoder that lets a bad value through to the
// database is caught whatever the database would have said.
type guardedStore struct {
	geo.SearchService
	mu      sync.Mutex
	calls   int
	leaked  []string
	located []geo.Point
}

func (g *guardedStore) check(what string, f geo.Filter) {
	if err := f.Validate(); err != nil {
		g.leaked = append(g.leaked, what+": "+err.Error())
	}
}

func (g *guardedStore) Search(ctx context.Context, q geo.Query) (geo.Page, error) {
	g.mu.Lock()
	g.calls++
	g.check("search", q.Filter)
	if q.After != nil && strings.ContainsRune(q.After.Name, 0) {
		g.leaked = append(g.leaked, "search: cursor name with NUL")
	}
	g.mu.Unlock()
	return g.SearchService.Search(ctx, q)
}

func (g *guardedStore) Locate(ctx context.Context, q geo.LocateQuery) ([][]geo.Thing, error) {
	g.mu.Lock()
	g.calls++
	for _, p := range q.Points {
		f := q.Filter
		f.Point = &p
		g.check("locate", f)
		if math.IsNaN(p.Lat) || math.IsInf(p.Lat, 0) || math.IsNaN(p.Lng) || math.IsInf(p.Lng, 0) {
			g.leaked = append(g.leaked, "locate: a point that is not finite")
		}
	}
	g.located = append(g.located, q.Points...)
	g.mu.Unlock()
	return g.SearchService.Locate(ctx, q)
}

func (g *guardedStore) snapshot() (int, []string, []geo.Point) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.calls, append([]string(nil), g.leaked...), append([]geo.Point(nil), g.located...)
}

// startGuarded runs the API over a guardedStore.
func startGuarded(t *testing.T) (*api, *guardedStore) {
	t.Helper()
	var store *guardedStore
	a := start(t, func(s *setup) {
		s.wrap = func(svc geo.SearchService) geo.SearchService {
			store = &guardedStore{SearchService: svc}
			return store
		}
	})
	return a, store
}

// TestStrictQueryStrings: parameters are read as written or refused,
// naming the parameter, and a refused request reaches no store.
func TestStrictQueryStrings(t *testing.T) {
	t.Parallel()
	a, store := startGuarded(t)
	items := "/collections/default/items"
	forged := geo.EncodePageToken(geo.Filter{Collections: []string{"default"}}, geo.Cursor{Name: "Fr\x00ance", ID: 1})
	long := strings.Repeat("x", 10_000)
	tests := []struct {
		name, path string
		status     int
		want       string
	}{
		{"a ';' between parameters", items + "?limit=1;bbox=0,0,1,1", 400, `parameter "limit" contains ';'`},
		{"a ';' in locate's collections", "/locate?lat=1&lng=1&collections=x;y", 400, `parameter "collections" contains ';'`},
		{"a broken escape", items + "?q=%zz", 400, `parameter "q" is not a valid percent-encoded value`},
		{"Go's digit separators", "/locate?lat=1_0&lng=0", 400, "lat must be a number"},
		{"Go's hex floats", "/locate?lat=0x1p-2&lng=0", 400, "lat must be a number"},
		{"Inf", "/locate?lat=0&lng=Inf", 400, "lng must be a number"},
		{"a plus sign", "/locate?lat=%2B1&lng=0", 400, "lat must be a number"},
		{"a number too large", "/locate?lat=1e999&lng=0", 400, "lat is out of range"},
		{"max_distance_m in hex", "/locate?lat=1&lng=1&max_distance_m=0x10", 400, "max_distance_m must be a number"},
		{"bbox with a separator", items + "?bbox=1_0,0,20,1", 400, `bbox value 1 ("1_0") is not a finite number`},
		{"limit with a plus sign", items + "?limit=%2B5", 400, "limit must be an integer"},
		{"a reversed interval", items + "?datetime=2024-02-01T00:00:00Z/2024-01-01T00:00:00Z", 400, "ends before it starts"},
		{"a forged cursor holding NUL", items + "?cursor=" + url.QueryEscape(forged), 400, "cursor"},
		{"a long unknown collection", "/collections/" + long, 404, "(cut; 10000 bytes in all)"},
		{"a long unknown parameter", items + "?" + long + "=1", 400, "(cut; 10000 bytes in all)"},
	}
	for _, tt := range tests {
		r := a.get(t, tt.path)
		wantException(t, tt.name, r, tt.status, tt.want)
		if len(r.body) > 2000 {
			t.Errorf("%s: an error of %d bytes; it should not echo the whole input", tt.name, len(r.body))
		}
	}
	if calls, leaked, _ := store.snapshot(); calls != 0 || len(leaked) != 0 {
		t.Errorf("refused requests reached the store %d times; leaked %q", calls, leaked)
	}
	// Their well-formed neighbours are answered.
	for _, path := range []string{
		"/locate?lat=10&lng=-0.5e1",
		"/locate?lat=1E1&lng=0",
		items + "?limit=5&bbox=0,0,1,1",
		items + "?datetime=2024-01-01T00:00:00Z/2024-01-01T00:00:00Z",
	} {
		if r := a.get(t, path); r.status != http.StatusOK {
			t.Errorf("%s: %d %s", path, r.status, r.body)
		}
	}
	if _, leaked, _ := store.snapshot(); len(leaked) != 0 {
		t.Errorf("leaked %q", leaked)
	}
}

// TestStrictLocateBodies: every line or feature of a POST /locate body gets
// its own answer; a bad one an error naming the line or feature and the
// member, with its id whenever the id could be read, never a Go type and
// never the end of the stream; only valid points reach the store.
func TestStrictLocateBodies(t *testing.T) {
	t.Parallel()
	a, store := startGuarded(t)
	ndjson := []struct {
		line string
		want lineWant
	}{
		{`{"id":"ok1","lat":48.85,"lng":2.35}`, lineWant{"ok1", ""}},
		{`{"id":"dup","lat":1,"lat":48.85,"lng":2.35}`, lineWant{"dup", `line 2 has the member "lat" twice`}},
		{`{"id":"trail","lat":48.85,"lng":2.35} {"x":1}`, lineWant{"trail", "line 3 has more after its JSON object"}},
		{`{"id":"huge","lat":1e400,"lng":0}`, lineWant{"huge", "line 4: lat is out of range"}},
		{`{"lat":"48.85","id":"str","lng":2.35}`, lineWant{"str", "line 5: lat must be a number, got a string"}},
		{`[48.85,2.35]`, lineWant{nil, "line 6 must be a JSON object, got an array"}},
		{`{"id":"half","lat":48.85}`, lineWant{"half", "line 7 needs both lat and lng"}},
		{`{"id":"broken","lat":48.85,`, lineWant{"broken", "line 8 is not valid JSON"}},
		{`{"id":7,"lat":91,"lng":0}`, lineWant{json.Number("7"), "point.lat must be within [-90, 90]"}},
		{`{"id":"ok2","lat":48.85,"lng":2.35,"extra":{"a":[1,2]}}`, lineWant{"ok2", ""}},
	}
	var body strings.Builder
	for _, c := range ndjson {
		body.WriteString(c.line + "\n")
	}
	r := a.do(t, http.MethodPost, "/locate", strings.NewReader(body.String()), "Content-Type", "application/x-ndjson")
	checkLines(t, "NDJSON", r, len(ndjson), func(i int) lineWant { return ndjson[i].want })

	features := []struct {
		feature string
		want    lineWant
	}{
		{`{"type":"Feature","id":"ok1","geometry":{"type":"Point","coordinates":[2.35,48.85]}}`, lineWant{"ok1", ""}},
		{`{"type":"Feature","id":"inf","geometry":{"type":"Point","coordinates":[0,1e999]}}`, lineWant{"inf", "feature 1: latitude is out of range"}},
		{`5`, lineWant{nil, "feature 2 must be a JSON object, got a number"}},
		{`{"type":"Feature","id":"line","geometry":{"type":"LineString","coordinates":[[0,0],[1,1]]}}`, lineWant{"line", "feature 3: the geometry must be a Point"}},
		{`{"type":"Feature","id":"dup","id":"again","geometry":{"type":"Point","coordinates":[2.35,48.85]}}`, lineWant{"dup", `feature 4 has the member "id" twice`}},
		{`{"type":"Feature","id":"nogeom","geometry":null}`, lineWant{"nogeom", "feature 5 must be a JSON object, got null"}},
		{`{"type":"Feature","id":"ok2","geometry":{"type":"Point","coordinates":[2.35,48.85,35]}}`, lineWant{"ok2", ""}},
	}
	parts := make([]string, len(features))
	for i, f := range features {
		parts[i] = f.feature
	}
	fc := `{"type":"FeatureCollection","features":[` + strings.Join(parts, ",") + `]}`
	r = a.do(t, http.MethodPost, "/locate", strings.NewReader(fc), "Content-Type", "application/geo+json")
	checkLines(t, "GeoJSON", r, len(features), func(i int) lineWant { return features[i].want })

	_, leaked, located := store.snapshot()
	if len(leaked) != 0 {
		t.Errorf("invalid values reached the store: %q", leaked)
	}
	if len(located) != 4 { // ok1 and ok2 of each body
		t.Errorf("the store located %d points (%v); want the 4 good ones", len(located), located)
	}

	// A coded body is refused whole, before any point is read.
	r = a.do(t, http.MethodPost, "/locate", strings.NewReader("\x1f\x8b..."), "Content-Type", "application/x-ndjson", "Content-Encoding", "gzip")
	wantException(t, "gzip body", r, http.StatusUnsupportedMediaType, `Content-Encoding "gzip" is not accepted`)
}

// lineWant is what one answer line of POST /locate must say.
type lineWant struct {
	id    any    // the id echoed; nil for none
	error string // part of the error's description; "" for a located point
}

// checkLines checks a POST /locate answer line by line.
func checkLines(t *testing.T, name string, r response, n int, want func(int) lineWant) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("%s: %d %s", name, r.status, r.body)
	}
	dec := json.NewDecoder(strings.NewReader(string(r.body)))
	dec.UseNumber()
	var lines []map[string]any
	for dec.More() {
		var l map[string]any
		if err := dec.Decode(&l); err != nil {
			t.Fatalf("%s: %v in %s", name, err, r.body)
		}
		lines = append(lines, l)
	}
	if len(lines) != n {
		t.Fatalf("%s: %d lines for %d inputs:\n%s", name, len(lines), n, r.body)
	}
	for i, l := range lines {
		w := want(i)
		if l["id"] != w.id {
			t.Errorf("%s line %d: id %#v, want %#v", name, i+1, l["id"], w.id)
		}
		e, _ := l["error"].(map[string]any)
		desc, _ := e["description"].(string)
		switch {
		case w.error == "" && e != nil:
			t.Errorf("%s line %d: error %v, want a located point", name, i+1, e)
		case w.error == "":
			if things, _ := l["things"].([]any); len(things) != 1 {
				t.Errorf("%s line %d: things %v, want France", name, i+1, l["things"])
			}
		case !strings.Contains(desc, w.error):
			t.Errorf("%s line %d: error %q, want one saying %q", name, i+1, desc, w.error)
		}
		if strings.Contains(desc, "Go ") || strings.Contains(desc, "struct") || strings.Contains(desc, "unmarshal") {
			t.Errorf("%s line %d: the error shows Go's inner workings: %q", name, i+1, desc)
		}
	}
}

// TestLocateBodyThatStalls: a POST /locate body that stops sending ends
// with an error line after HTTP_BODY_IDLE_TIMEOUT instead of holding its
// connection; the points sent before are answered.
func TestLocateBodyThatStalls(t *testing.T) {
	t.Parallel()
	a := start(t, func(s *setup) { s.cfg.BodyIdleTimeout = 200 * time.Millisecond })
	// The first line goes with the request (a goroutine writing it into a
	// pipe could start after the idle timeout on a loaded machine), then
	// nothing until the test ends.
	stall := make(stalledReader)
	defer close(stall)
	body := io.MultiReader(strings.NewReader(`{"id":"first","lat":48.85,"lng":2.35}`+"\n"), stall)
	r := a.do(t, http.MethodPost, "/locate", body, "Content-Type", "application/x-ndjson")
	checkLines(t, "stalled body", r, 2, func(i int) lineWant {
		return []lineWant{{"first", ""}, {nil, "the body sent nothing for 200ms (HTTP_BODY_IDLE_TIMEOUT)"}}[i]
	})
}

// TestLocateBodyThatStallsWhileALookupRuns: the body stalls while the
// store still looks its first point up (longer than the idle timeout, as
// on a loaded machine). net/http cancels the request's context when the
// body's read fails, and the answer used to be empty (200, no line); the
// point read is answered, then the timeout.
func TestLocateBodyThatStallsWhileALookupRuns(t *testing.T) {
	t.Parallel()
	a := start(t, func(s *setup) {
		s.cfg.BodyIdleTimeout = 100 * time.Millisecond
		s.wrap = func(svc geo.SearchService) geo.SearchService { return slowLocate{svc, 500 * time.Millisecond} }
	})
	stall := make(stalledReader)
	defer close(stall)
	body := io.MultiReader(strings.NewReader(`{"id":"first","lat":48.85,"lng":2.35}`+"\n"), stall)
	r := a.do(t, http.MethodPost, "/locate", body, "Content-Type", "application/x-ndjson")
	checkLines(t, "stalled body", r, 2, func(i int) lineWant {
		return []lineWant{{"first", ""}, {nil, "the body sent nothing for 100ms (HTTP_BODY_IDLE_TIMEOUT)"}}[i]
	})
}

// slowLocate is a store whose Locate takes at least delay.
type slowLocate struct {
	geo.SearchService
	delay time.Duration
}

func (s slowLocate) Locate(ctx context.Context, q geo.LocateQuery) ([][]geo.Thing, error) {
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s.SearchService.Locate(ctx, q)
}

// stalledReader sends nothing until it is closed.
type stalledReader chan struct{}

func (s stalledReader) Read([]byte) (int, error) {
	<-s
	return 0, io.EOF
}
