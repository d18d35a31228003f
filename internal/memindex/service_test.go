package memindex_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/geo/geotest"
	"github.com/geosearch/search/internal/memindex"
	"github.com/geosearch/search/internal/postgis"
)

// counts records counters (memory and database hits).
type counts struct {
	mu sync.Mutex
	n  map[string]int64
}

func (c *counts) Count(name string, n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int64{}
	}
	c.n[name] += n
}
func (c *counts) Timing(string, time.Duration) {}
func (c *counts) Gauge(string, int64)          {}

// sum adds the counters of every collection for where (memory or
// database).
func (c *counts) sum(where string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var s int64
	for k, v := range c.n {
		if len(k) > len("memindex."+where+".") && k[:len("memindex."+where+".")] == "memindex."+where+"." {
			s += v
		}
	}
	return s
}

func onConfig(budget int64) memindex.Config {
	return memindex.Config{Mode: "on", BudgetBytes: budget, PollInterval: 10 * time.Millisecond}
}

// indexed wraps store with a registry (not running: tests refresh it).
func indexed(t testing.TB, store *postgis.SearchService, cfg memindex.Config) (*memindex.SearchService, *memindex.Registry, *counts) {
	t.Helper()
	reg := memindex.NewRegistry(store, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	c := &counts{}
	return memindex.NewSearchService(store, reg, c), reg, c
}

func refresh(t testing.TB, reg *memindex.Registry) {
	t.Helper()
	if err := reg.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func importInto(t testing.TB, svc geo.SearchService, collection string, replace bool, fs ...geo.Feature) {
	t.Helper()
	res, err := svc.Import(context.Background(), geo.ImportOptions{Collection: collection, Replace: replace}, &geotest.Source{Features: fs})
	if err != nil || res.Rejected.Count > 0 {
		t.Fatalf("import into %s: %v, rejected %v", collection, err, res.Rejected)
	}
}

// fixture stores geotest.FilterFixture and a collection whose properties
// hold what containment treats apart (arrays, objects, null, numbers).
func fixture(t testing.TB, store geo.SearchService) {
	t.Helper()
	for name, fs := range geotest.FilterFixture() {
		importInto(t, store, name, false, fs...)
	}
	importInto(t, store, "odd", false,
		geotest.Square("Xo1", "1", map[string]any{"kind": []any{"lake"}, "open": nil}, 0, 0, 10, 10),
		geotest.Square("Xo2", "2", map[string]any{"kind": map[string]any{"a": "lake"}, "rank": 1.0}, 0, 0, 10, 10),
		geotest.Square("Xo3", "3", map[string]any{"kind": "lake", "open": "true"}, 2, 2, 8, 8),
		geotest.Square("Xo1", "4", nil, 4, 4, 6, 6),
		geotest.Square("Ünïcode", "5", map[string]any{"kind": "é"}, 0, 0, 10, 10),
	)
}

// probePoints are inside, on the edges and vertices of, and outside the
// fixture's squares.
var probePoints = []geo.Point{
	{Lat: 5, Lng: 5}, {Lat: 0, Lng: 0}, {Lat: 0, Lng: 5}, {Lat: 10, Lng: 10}, {Lat: 4, Lng: 4}, {Lat: 5, Lng: 4},
	{Lat: 25, Lng: 25}, {Lat: 45, Lng: 45}, {Lat: 50, Lng: 100}, {Lat: 3, Lng: 3},
}

// scopes are the collections and property filters point searches are
// tried with.
func scopes() []geo.Filter {
	pf := func(k string, vs ...any) []geo.PropertyFilter { return []geo.PropertyFilter{{Key: k, Values: vs}} }
	return []geo.Filter{
		{},
		{Collections: []string{"a"}},
		{Collections: []string{"b", "a"}},
		{Collections: []string{"a", "a"}},
		{Collections: []string{"nope"}},
		{Collections: []string{"odd", "nope"}},
		{Properties: pf("kind", "lake")},
		{Properties: pf("kind", "lake", "park", "é")},
		{Properties: pf("open", true)},
		{Properties: pf("open", "true")},
		{Properties: pf("rank", 1.0)},
		{Properties: append(pf("kind", "lake"), pf("open", true)...)},
		{Properties: pf("missing", "x"), Collections: []string{"a"}},
	}
}

// outputs are the shapes, page sizes and budgets tried.
func pageShapes() []geo.Query {
	digits := 3
	return []geo.Query{
		{Limit: 10},
		{Limit: 1, WithTotal: true},
		{Limit: 2, MaxBytes: 1},
		{Limit: 10, MaxBytes: 120},
		{Limit: 10, Output: geo.Output{Omit: geo.FieldProperties | geo.FieldKey}},
		{Limit: 10, Output: geo.Output{Omit: geo.FieldBBox | geo.FieldCollection}, MaxBytes: 70},
		{Limit: 10, Output: geo.Output{CoordinateDigits: &digits}},
		{Limit: 10, IncludeGeometry: true},
		{Limit: 0},
		// Sorted searches page by property values: the store's to answer.
		{Limit: 10, SortBy: []geo.SortKey{{Property: "rank", Desc: true}}},
		{Limit: 1, SortBy: []geo.SortKey{{Property: "kind", Desc: true}, {Property: "rank"}}},
	}
}

func TestSearchAnswersAsTheStore(t *testing.T) {
	t.Parallel()
	store, _ := newService(t)
	fixture(t, store)
	mem, reg, c := indexed(t, store, onConfig(1<<30))
	refresh(t, reg)
	ctx := context.Background()
	for _, p := range probePoints {
		for _, f := range scopes() {
			for _, shape := range pageShapes() {
				q := shape
				q.Filter = f
				q.Point = &p
				name := fmt.Sprintf("%v %+v %+v", p, f, shape)
				want, wantErr := store.Search(ctx, q)
				got, gotErr := mem.Search(ctx, q)
				sameAnswer(t, name, want, wantErr, got, gotErr)
				// And the next page, from the cursor.
				for want.Next != nil && wantErr == nil {
					q.After = want.Next
					want, wantErr = store.Search(ctx, q)
					got, gotErr = mem.Search(ctx, q)
					sameAnswer(t, name+" next page", want, wantErr, got, gotErr)
				}
			}
		}
	}
	if c.sum("memory") == 0 {
		t.Error("no search was answered from memory")
	}
	if c.sum("database") == 0 {
		t.Error("no point search went to the database (numbers, odd properties and geometry must)")
	}
}

func sameAnswer[T any](t *testing.T, name string, want T, wantErr error, got T, gotErr error) {
	t.Helper()
	if (wantErr == nil) != (gotErr == nil) || (wantErr != nil && geo.ErrorMessage(wantErr) != geo.ErrorMessage(gotErr)) {
		t.Errorf("%s: error %v, the store's %v", name, gotErr, wantErr)
		return
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s: (-store +memory)\n%s", name, diff)
	}
}

func TestLocateAnswersAsTheStore(t *testing.T) {
	t.Parallel()
	store, _ := newService(t)
	fixture(t, store)
	mem, reg, c := indexed(t, store, onConfig(1<<30))
	refresh(t, reg)
	ctx := context.Background()
	for _, f := range scopes() {
		for _, shape := range pageShapes() {
			q := geo.LocateQuery{Filter: f, Points: probePoints, Limit: shape.Limit, IncludeGeometry: shape.IncludeGeometry,
				Output: shape.Output, MaxBytes: shape.MaxBytes}
			want, wantErr := store.Locate(ctx, q)
			got, gotErr := mem.Locate(ctx, q)
			sameAnswer(t, fmt.Sprintf("%+v %+v", f, shape), want, wantErr, got, gotErr)
		}
	}
	bad := geo.LocateQuery{Points: []geo.Point{{Lat: 91}}, Limit: 1}
	_, wantErr := store.Locate(ctx, bad)
	_, gotErr := mem.Locate(ctx, bad)
	sameAnswer(t, "an invalid point", 0, wantErr, 0, gotErr)
	if c.sum("memory") == 0 {
		t.Error("no point was located from memory")
	}
}

// TestEveryFilterFieldAnswersAsTheStore adds each field's example to a
// point search: whether the index evaluates the field or hands the search
// to the store, the answer is the store's. A new field of geo.Filter gets
// an example in geotest.FilterFields (its own test fails otherwise), and
// so is checked here.
func TestEveryFilterFieldAnswersAsTheStore(t *testing.T) {
	t.Parallel()
	store, _ := newService(t)
	fixture(t, store)
	mem, reg, _ := indexed(t, store, onConfig(1<<30))
	refresh(t, reg)
	ctx := context.Background()
	for field, ex := range geotest.FilterFields() {
		for kind, apply := range map[string]func(*geo.Filter){"narrow": ex.Narrow, "invalid": ex.Invalid} {
			if apply == nil {
				continue
			}
			for _, p := range probePoints {
				f := geo.Filter{Point: &p}
				apply(&f)
				q := geo.Query{Filter: f, Limit: 10}
				want, wantErr := store.Search(ctx, q)
				got, gotErr := mem.Search(ctx, q)
				sameAnswer(t, fmt.Sprintf("Search %s %s at %v", field, kind, p), want, wantErr, got, gotErr)
				lq := geo.LocateQuery{Filter: f, Points: []geo.Point{p}, Limit: 10}
				lwant, lwantErr := store.Locate(ctx, lq)
				lgot, lgotErr := mem.Locate(ctx, lq)
				sameAnswer(t, fmt.Sprintf("Locate %s %s at %v", field, kind, p), lwant, lwantErr, lgot, lgotErr)
			}
		}
	}
}

// TestServesFromTheStoreUntilLoaded: before the first refresh every read
// goes to the store; after it, from memory; with the index turned off,
// to the store again.
func TestServesFromTheStoreUntilLoaded(t *testing.T) {
	t.Parallel()
	store, _ := newService(t)
	fixture(t, store)
	mem, reg, c := indexed(t, store, onConfig(1<<30))
	q := geo.Query{Filter: geo.Filter{Point: &geo.Point{Lat: 5, Lng: 5}}, Limit: 10}
	want, err := store.Search(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	search := func(stage string, where string) {
		t.Helper()
		before := c.sum(where)
		got, err := mem.Search(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: (-store +got)\n%s", stage, diff)
		}
		if c.sum(where) != before+1 {
			t.Errorf("%s: not answered from the %s", stage, where)
		}
	}
	search("before the first refresh", "database")
	refresh(t, reg)
	search("after it", "memory")
	reg.SetReady(false) // the database does not answer
	search("not ready", "database")
	reg.SetReady(true)
	search("ready again", "memory")
	if st := reg.Status(); len(st) != 4 || !st[0].InMemory || st[0].Things == 0 || st[0].Bytes == 0 {
		t.Errorf("status %+v", st)
	}
	off := onConfig(1 << 30)
	off.Mode = "off"
	reg.Apply(off)
	search("turned off", "database")
	refresh(t, reg)
	search("turned off, refreshed", "database")
	if st := reg.Status(); len(st) != 0 {
		t.Errorf("status with the index off: %+v", st)
	}
	reg.Apply(onConfig(1 << 30))
	refresh(t, reg)
	search("on again", "memory")
}

// TestBudget: collections load in name order while they fit; the others
// stay on the database until the budget grows.
func TestBudget(t *testing.T) {
	t.Parallel()
	store, _ := newService(t)
	fixture(t, store)
	_, reg, _ := indexed(t, store, onConfig(1<<30))
	refresh(t, reg)
	size := map[string]int64{}
	for _, s := range reg.Status() {
		size[s.Collection] = s.Bytes
	}
	// a, b, default and odd: a and b fit, odd does not.
	budget := size["a"] + size["b"] + size["odd"] - 1
	mem, reg, c := indexed(t, store, onConfig(budget))
	refresh(t, reg)
	var used int64
	for _, s := range reg.Status() {
		used += s.Bytes
		if want := s.Collection != "odd"; s.InMemory != want {
			t.Errorf("%s in memory: %v, want %v (%s)", s.Collection, s.InMemory, want, s.Reason)
		}
	}
	if used > budget {
		t.Errorf("%d bytes in memory, budget %d", used, budget)
	}
	q := func(cols ...string) geo.Query {
		return geo.Query{Filter: geo.Filter{Point: &geo.Point{Lat: 5, Lng: 5}, Collections: cols}, Limit: 10}
	}
	for _, tc := range []struct {
		q     geo.Query
		where string
	}{{q("a", "b"), "memory"}, {q("odd"), "database"}, {q(), "database"}} {
		before := c.sum(tc.where)
		if _, err := mem.Search(context.Background(), tc.q); err != nil {
			t.Fatal(err)
		}
		if c.sum(tc.where) == before {
			t.Errorf("%v: not answered from the %s", tc.q.Collections, tc.where)
		}
	}
	reg.Apply(onConfig(1 << 30))
	refresh(t, reg)
	for _, s := range reg.Status() {
		if !s.InMemory {
			t.Errorf("%s not in memory with room for all", s.Collection)
		}
	}
}

// TestTokenReadsWaitForARefresh: a read whose token the last refresh's
// position does not pass goes to the database; after a refresh that
// passed it, to memory.
func TestTokenReadsWaitForARefresh(t *testing.T) {
	t.Parallel()
	store, pool := newService(t)
	fixture(t, store)
	mem, reg, c := indexed(t, store, onConfig(1<<30))
	token := flushed(t, pool)
	refresh(t, reg)
	ctx, mark := geo.WithReadMark(context.Background())
	mark.Set(token)
	q := geo.Query{Filter: geo.Filter{Point: &geo.Point{Lat: 5, Lng: 5}}, Limit: 10}
	if _, err := mem.Search(ctx, q); err != nil {
		t.Fatal(err)
	}
	if c.sum("database") != 1 || c.sum("memory") != 0 {
		t.Errorf("a token read the index may not hold: counts %v", c.n)
	}
	// The database moves on: another write, and its flush (the test server
	// commits asynchronously, and its flushed position may stay put for a
	// moment).
	importInto(t, store, "other", false, geotest.Square("other", "o", nil, 50, 50, 60, 60))
	for deadline := time.Now().Add(30 * time.Second); flushed(t, pool) <= token; {
		if time.Now().After(deadline) {
			t.Fatal("the flushed position did not pass the token in 30 s")
		}
		if _, err := cluster.FlushedPosition(context.Background()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	refresh(t, reg)
	if _, err := mem.Search(ctx, q); err != nil {
		t.Fatal(err)
	}
	if c.sum("memory") != 1 {
		t.Errorf("a token read the index holds: counts %v", c.n)
	}
	// A write through this instance: the next read waits for a refresh.
	importInto(t, mem, "a", false, geotest.Square("Za3", "3", nil, 4, 4, 6, 6))
	page, err := mem.Search(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	if !hasName(page.Things, "Za3") || c.sum("memory") != 1 {
		t.Errorf("after a write through this instance: %v, counts %v", page.Things, c.n)
	}
}

func hasName(ts []geo.Thing, name string) bool {
	for _, t := range ts {
		if t.Name == name {
			return true
		}
	}
	return false
}
