package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/geo/geotest"
)

// countingLocate counts the calls of the store's Locate and the points of
// each.
type countingLocate struct {
	geo.SearchService
	mu    sync.Mutex
	sizes []int
	// unbudgeted counts the calls without a byte budget (MaxBytes).
	unbudgeted int
}

func (c *countingLocate) Locate(ctx context.Context, q geo.LocateQuery) ([][]geo.Thing, error) {
	c.mu.Lock()
	c.sizes = append(c.sizes, len(q.Points))
	if q.MaxBytes <= 0 {
		c.unbudgeted++
	}
	c.mu.Unlock()
	return c.SearchService.Locate(ctx, q)
}

func (c *countingLocate) calls() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.sizes)
}

// grid is n points spread over the land and sea, with ids.
func grid(n int) []geo.Point {
	pts := make([]geo.Point, 0, n)
	for i := 0; len(pts) < n; i++ {
		pts = append(pts, geo.Point{Lat: -55 + float64(i*37%125), Lng: -179 + float64(i*53%358) + 0.5})
	}
	return pts
}

// TestLocateManyInBatches: POST /locate answers its points through the
// domain's Locate, one call per batch of LOCATE_BATCH_SIZE points (the
// batch wait is long here, so batches are full but the last), and each
// point's answer is the first page of a Search for that point, scoped by
// collections, q and limit as gRPC Locate scopes it.
func TestLocateManyInBatches(t *testing.T) {
	t.Parallel()
	var counter *countingLocate
	a := start(t, func(s *setup) {
		s.limits.LocateBatchSize = 50
		s.limits.LocateBatchWait = time.Hour
		s.wrap = func(svc geo.SearchService) geo.SearchService {
			counter = &countingLocate{SearchService: svc}
			return counter
		}
	})
	importInto(t, a, "fine", geotest.Load(t, "ne_50m_countries.geojson"))
	pts := grid(237)
	var body strings.Builder
	body.WriteString(`{"id":"bad","lat":91,"lng":0}` + "\n")
	for i, p := range pts {
		fmt.Fprintf(&body, `{"id":"p%d","lat":%g,"lng":%g}`+"\n", i, p.Lat, p.Lng)
	}
	for _, tt := range []struct {
		name, query string
		filter      geo.Filter
		limit       int
	}{
		{"every collection", "", geo.Filter{}, 10},
		{"one collection", "?collections=fine", geo.Filter{Collections: []string{"fine"}}, 10},
		{"two collections, one thing each, names with an", "?collections=fine,default&limit=1&q=an", geo.Filter{Collections: []string{"fine", "default"}, Query: "an"}, 1},
	} {
		before := len(counter.calls())
		r := a.do(t, http.MethodPost, "/locate"+tt.query, strings.NewReader(body.String()), "Content-Type", "application/x-ndjson")
		if r.status != http.StatusOK {
			t.Fatalf("%s: %d %s", tt.name, r.status, r.body)
		}
		lines := ndjsonLines(t, r.body)
		if len(lines) != len(pts)+1 {
			t.Fatalf("%s: %d lines for %d points", tt.name, len(lines), len(pts)+1)
		}
		if lines[0]["id"] != "bad" || lines[0]["error"] == nil {
			t.Errorf("%s: the bad point's line %v", tt.name, lines[0])
		}
		calls := counter.calls()[before:]
		// 238 lines in batches of 50: 5 calls, the first with the bad
		// point left out.
		if want := []int{49, 50, 50, 50, 38}; !slices.Equal(calls, want) {
			t.Errorf("%s: Locate calls with %v points, want %v", tt.name, calls, want)
		}
		inside := 0
		for i, p := range pts {
			line := lines[i+1]
			if line["id"] != fmt.Sprintf("p%d", i) || line["error"] != nil {
				t.Fatalf("%s: line %d: %v", tt.name, i+1, line)
			}
			f := tt.filter
			f.Point = &p
			page, err := a.svc.Search(context.Background(), geo.Query{Filter: f, Limit: tt.limit})
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, th := range page.Things {
				want = append(want, fmt.Sprintf("%d %s %s", th.ID, th.Collection, th.Name))
			}
			var got []string
			for _, th := range line["things"].([]any) {
				m := th.(map[string]any)
				got = append(got, fmt.Sprintf("%v %v %v", m["id"], m["collection"], m["name"]))
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s: point %v: %v, Search says %v", tt.name, p, got, want)
			}
			if len(got) > 0 {
				inside++
			}
		}
		if inside < 3 {
			t.Errorf("%s: only %d of %d points in a thing", tt.name, inside, len(pts))
		}
	}
	counter.mu.Lock()
	if counter.unbudgeted > 0 {
		t.Errorf("%d Locate calls without a byte budget (MaxBytes): a batch of large answers would be held whole", counter.unbudgeted)
	}
	counter.mu.Unlock()
	// The scope's errors come before any point.
	for _, tt := range []struct{ name, query, want string }{
		{"a bad collection name", "?collections=Fine", `collection name "Fine" is invalid`},
		{"limit 0", "?limit=0", "limit must be at least 1"},
		{"an unknown parameter", "?lat=1", `unknown parameter "lat"`},
	} {
		wantException(t, tt.name, a.do(t, http.MethodPost, "/locate"+tt.query, strings.NewReader(body.String()), "Content-Type", "application/x-ndjson"), http.StatusBadRequest, tt.want)
	}
}

// TestLocateScope: GET /locate with collections, limit and q.
func TestLocateScope(t *testing.T) {
	t.Parallel()
	a := start(t)
	importInto(t, a, "fine", geotest.Load(t, "ne_50m_countries.geojson"))
	collections := func(query string) string {
		t.Helper()
		r := a.get(t, "/locate?lat=48.85&lng=2.35"+query)
		if r.status != http.StatusOK {
			t.Fatalf("%s: %d %s", query, r.status, r.body)
		}
		var ans struct {
			Things []struct{ Name, Collection string }
		}
		if err := json.Unmarshal(r.body, &ans); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, th := range ans.Things {
			out = append(out, th.Collection+"/"+th.Name)
		}
		return strings.Join(out, ",")
	}
	for query, want := range map[string]string{
		"":                           "default/France,fine/France",
		"&collections=fine":          "fine/France",
		"&collections=default,fine":  "default/France,fine/France",
		"&collections=rivers":        "",
		"&limit=1":                   "default/France",
		"&q=fra&collections=default": "default/France",
		"&q=spain":                   "",
	} {
		if got := collections(query); got != want {
			t.Errorf("Paris%s: %q, want %q", query, got, want)
		}
	}
}

// TestLocateManyConversation: a client that sends one point and waits for
// its answer before sending the next gets each answer (a batch does not
// wait for points the client will not send until answered).
func TestLocateManyConversation(t *testing.T) {
	t.Parallel()
	a := start(t, func(s *setup) { s.limits.LocateBatchWait = 10 * time.Millisecond })
	pr, pw := io.Pipe()
	req, err := http.NewRequest(http.MethodPost, a.base+"/locate", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	type result struct {
		resp *http.Response
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := a.client.Do(req)
		got <- result{resp, err}
	}()
	var answers *bufio.Scanner
	for i, city := range []struct {
		id       string
		lat, lng float64
		want     string
	}{
		{"paris", 48.85, 2.35, "France"},
		{"tokyo", 35.69, 139.69, "Japan"},
		{"mexico", 19.43, -99.13, "Mexico"},
	} {
		if _, err := fmt.Fprintf(pw, `{"id":%q,"lat":%g,"lng":%g}`+"\n", city.id, city.lat, city.lng); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			// The answer begins with the first point's line.
			res := <-got
			if res.err != nil {
				t.Fatal(res.err)
			}
			defer res.resp.Body.Close()
			answers = bufio.NewScanner(res.resp.Body)
		}
		if !answers.Scan() {
			t.Fatalf("no answer for %s: %v", city.id, answers.Err())
		}
		var line map[string]any
		if err := json.Unmarshal(answers.Bytes(), &line); err != nil {
			t.Fatal(err)
		}
		if line["id"] != city.id || thingNames(line) != city.want {
			t.Errorf("answer for %s: %v, want %s", city.id, line, city.want)
		}
	}
	_ = pw.Close()
	if answers.Scan() || answers.Err() != nil {
		t.Errorf("after the body ended: line %q, error %v; want the end", answers.Text(), answers.Err())
	}
}
