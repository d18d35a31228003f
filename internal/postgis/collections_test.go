package postgis_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/geo/geotest"
	"github.com/geosearch/search/internal/postgis"
)

func importInto(t *testing.T, svc *postgis.SearchService, opts geo.ImportOptions, features []geo.Feature) geo.ImportResult {
	t.Helper()
	res, err := svc.Import(context.Background(), opts, &geotest.Source{Features: features})
	if err != nil {
		t.Fatalf("import into %q: %v", opts.Collection, err)
	}
	return res
}

func search(t *testing.T, svc *postgis.SearchService, f geo.Filter) []geo.Thing {
	t.Helper()
	page, err := svc.Search(context.Background(), geo.Query{Filter: f, Limit: 1000})
	if err != nil {
		t.Fatalf("search %+v: %v", f, err)
	}
	return page.Things
}

func collectionNames(things []geo.Thing) []string {
	out := make([]string, len(things))
	for i, th := range things {
		out[i] = th.Collection + "/" + th.Name
	}
	return out
}

// counts returns the numbers of things and parts in the store.
func counts(t *testing.T, pool *pgxpool.Pool) (things, parts int64) {
	t.Helper()
	if err := pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM thing), (SELECT count(*) FROM thing_part)`).Scan(&things, &parts); err != nil {
		t.Fatal(err)
	}
	return things, parts
}

// grid is geotest.Grid.
func grid(n int, props map[string]any) []geo.Feature { return geotest.Grid(n, props) }

func TestCollectionsScopeSearches(t *testing.T) {
	t.Parallel()
	svc, _ := newService(t)
	importInto(t, svc, geo.ImportOptions{Collection: "countries"}, geotest.Load(t, "ne_110m_countries.geojson"))
	importInto(t, svc, geo.ImportOptions{Collection: "grid"}, grid(10, nil))
	importInto(t, svc, geo.ImportOptions{}, []geo.Feature{geotest.Square("France default", "", nil, 2, 48, 3, 49)})
	paris := &geo.Point{Lat: 48.85, Lng: 2.35}
	tests := []struct {
		name   string
		filter geo.Filter
		want   []string
	}{
		{"unscoped point: every collection", geo.Filter{Point: paris}, []string{"countries/France", "default/France default", "grid/cell 5 7"}},
		{"one collection", geo.Filter{Point: paris, Collections: []string{"countries"}}, []string{"countries/France"}},
		{"two collections", geo.Filter{Point: paris, Collections: []string{"grid", "default"}}, []string{"default/France default", "grid/cell 5 7"}},
		{"unknown collection: nothing", geo.Filter{Point: paris, Collections: []string{"nope"}}, []string{}},
		{"name, scoped", geo.Filter{Query: "fran", Collections: []string{"default"}}, []string{"default/France default"}},
		{"name, unscoped", geo.Filter{Query: "france"}, []string{"countries/France", "default/France default"}},
		{"collection alone", geo.Filter{Collections: []string{"default"}}, []string{"default/France default"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, collectionNames(search(t, svc, tt.filter))); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	// Paging a scoped search walks every match of that collection once.
	all := walk(t, svc, geo.Filter{Collections: []string{"grid"}}, 1000)
	if paged := walk(t, svc, geo.Filter{Collections: []string{"grid"}}, 7); len(all) != 100 || !slices.Equal(all, paged) {
		t.Errorf("grid walk: %d things in one page, paged differs: %v", len(all), !slices.Equal(all, paged))
	}
}

func TestKeysAreUniqueWithinACollection(t *testing.T) {
	t.Parallel()
	svc, _ := newService(t)
	importInto(t, svc, geo.ImportOptions{Collection: "a"}, []geo.Feature{geotest.Square("A one", "k", nil, 0, 0, 1, 1)})
	importInto(t, svc, geo.ImportOptions{Collection: "b"}, []geo.Feature{geotest.Square("B one", "k", nil, 0, 0, 1, 1)})
	// Re-importing key k into a replaces a's thing only.
	importInto(t, svc, geo.ImportOptions{Collection: "a"}, []geo.Feature{geotest.Square("A two", "k", nil, 0, 0, 1, 1)})
	got := collectionNames(search(t, svc, geo.Filter{Point: &geo.Point{Lat: 0.5, Lng: 0.5}}))
	if diff := cmp.Diff([]string{"a/A two", "b/B one"}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestGetByIDOrKey(t *testing.T) {
	t.Parallel()
	svc, _ := newService(t)
	importInto(t, svc, geo.ImportOptions{Collection: "a"}, []geo.Feature{geotest.Square("Box", "k1", map[string]any{"n": 1.0}, 1, 2, 3, 4)})
	importInto(t, svc, geo.ImportOptions{}, []geo.Feature{geotest.Square("Default box", "k1", nil, 1, 2, 3, 4)})
	byKey, err := svc.Get(context.Background(), geo.ThingRef{Collection: "a", Key: "k1"}, true, geo.Output{})
	if err != nil {
		t.Fatal(err)
	}
	if byKey.Name != "Box" || byKey.Collection != "a" || byKey.Key != "k1" || byKey.Properties["n"] != 1.0 ||
		byKey.BBox != (geo.BBox{MinLng: 1, MinLat: 2, MaxLng: 3, MaxLat: 4}) || byKey.GeometryGeoJSON == "" {
		t.Errorf("by key: %+v", byKey)
	}
	byID, err := svc.Get(context.Background(), geo.ThingRef{ID: byKey.ID}, false, geo.Output{})
	if err != nil {
		t.Fatal(err)
	}
	byKey.GeometryGeoJSON = ""
	if diff := cmp.Diff(byKey, byID); diff != "" {
		t.Errorf("by id (-by key +by id):\n%s", diff)
	}
	// A key without a collection is in the default collection.
	if d, err := svc.Get(context.Background(), geo.ThingRef{Key: "k1"}, false, geo.Output{}); err != nil || d.Name != "Default box" {
		t.Errorf("key in default: %+v, %v", d, err)
	}
	for _, tt := range []struct {
		name string
		ref  geo.ThingRef
		code geo.Code
	}{
		{"absent id", geo.ThingRef{ID: byKey.ID + 100}, geo.NotFound},
		{"absent key", geo.ThingRef{Collection: "a", Key: "nope"}, geo.NotFound},
		{"absent collection", geo.ThingRef{Collection: "zzz", Key: "k1"}, geo.NotFound},
		{"neither id nor key", geo.ThingRef{}, geo.Invalid},
		{"collection without key", geo.ThingRef{Collection: "a"}, geo.Invalid},
		{"both", geo.ThingRef{ID: 1, Key: "k1"}, geo.Invalid},
		{"bad collection", geo.ThingRef{Collection: "A", Key: "k1"}, geo.Invalid},
	} {
		_, err := svc.Get(context.Background(), tt.ref, false, geo.Output{})
		if geo.ErrorCode(err) != tt.code {
			t.Errorf("%s: %v, want code %s", tt.name, err, tt.code)
		}
	}
}

func TestDeleteThingsAndCollections(t *testing.T) {
	t.Parallel()
	svc, pool := newService(t)
	importInto(t, svc, geo.ImportOptions{Collection: "a"}, grid(4, nil))
	importInto(t, svc, geo.ImportOptions{Collection: "b"}, grid(3, nil))
	ctx := context.Background()
	_, parts0 := counts(t, pool)

	n, err := svc.Delete(ctx, geo.DeleteRequest{Collection: "a", Keys: []string{"0-0", "1-1", "no-such-key"}})
	if err != nil || n != 2 {
		t.Fatalf("delete keys: %d, %v; want 2", n, err)
	}
	b00 := search(t, svc, geo.Filter{Collections: []string{"b"}, Query: "cell 0 0"})[0]
	n, err = svc.Delete(ctx, geo.DeleteRequest{IDs: []int64{b00.ID, 999_999}})
	if err != nil || n != 1 {
		t.Fatalf("delete ids: %d, %v; want 1", n, err)
	}
	things, parts := counts(t, pool)
	if things != 16+9-3 || parts >= parts0 {
		t.Errorf("after deletes: %d things, %d parts (from %d); want 22 and fewer parts", things, parts, parts0)
	}
	if _, err := svc.Delete(ctx, geo.DeleteRequest{Collection: "nope", Keys: []string{"0-0"}}); geo.ErrorCode(err) != geo.NotFound {
		t.Errorf("delete from a missing collection: %v, want NotFound", err)
	}
	for name, d := range map[string]geo.DeleteRequest{
		"nothing":   {},
		"both":      {IDs: []int64{1}, Keys: []string{"x"}},
		"empty key": {Collection: "a", Keys: []string{""}},
		"bad name":  {Collection: "A;DROP", Keys: []string{"x"}},
		"bad id":    {IDs: []int64{-1}},
	} {
		if _, err := svc.Delete(ctx, d); geo.ErrorCode(err) != geo.Invalid {
			t.Errorf("delete %s: %v, want Invalid", name, err)
		}
	}

	n, err = svc.DeleteCollection(ctx, "a")
	if err != nil || n != 14 {
		t.Fatalf("delete collection a: %d, %v; want 14", n, err)
	}
	if _, err := svc.DeleteCollection(ctx, "a"); geo.ErrorCode(err) != geo.NotFound {
		t.Errorf("delete collection a again: %v, want NotFound", err)
	}
	if _, err := svc.DeleteCollection(ctx, "Bad Name"); geo.ErrorCode(err) != geo.Invalid {
		t.Errorf("delete collection with a bad name: %v, want Invalid", err)
	}
	things, parts = counts(t, pool)
	var partsOfB int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM thing_part p JOIN thing t ON t.id = p.thing_id WHERE t.collection = 'b'`).Scan(&partsOfB); err != nil {
		t.Fatal(err)
	}
	if things != 8 || parts != partsOfB {
		t.Errorf("after deleting a: %d things, %d parts; want 8 and only b's %d", things, parts, partsOfB)
	}
	cs, err := svc.Collections(ctx)
	if err != nil || len(cs) != 2 || cs[0].Name != "b" || cs[0].Count != 8 || cs[1].Name != "default" {
		t.Errorf("collections after deleting a: %+v, %v; want b and default", cs, err)
	}
}

func TestListCollections(t *testing.T) {
	t.Parallel()
	svc, _ := newService(t)
	ctx := context.Background()
	if cs, err := svc.Collections(ctx); err != nil || len(cs) != 1 || cs[0].Name != "default" || cs[0].Count != 0 || cs[0].BBox != nil {
		t.Fatalf("empty store: %+v, %v; want only default, empty", cs, err)
	}
	start := time.Now()
	importInto(t, svc, geo.ImportOptions{Collection: "zones"}, []geo.Feature{
		geotest.Square("one", "1", nil, -10, -5, 0, 0), geotest.Square("two", "2", nil, 5, 1, 20, 30)})
	importInto(t, svc, geo.ImportOptions{}, []geo.Feature{geotest.Square("d", "", nil, 0, 0, 1, 1)})
	cs, err := svc.Collections(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []geo.Collection{
		{Name: "default", Count: 1, BBox: &geo.BBox{MinLng: 0, MinLat: 0, MaxLng: 1, MaxLat: 1}},
		{Name: "zones", Count: 2, BBox: &geo.BBox{MinLng: -10, MinLat: -5, MaxLng: 20, MaxLat: 30}},
	}
	if diff := cmp.Diff(want, cs, cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".Updated" }, cmp.Ignore())); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	zonesUpdated := cs[1].Updated
	if zonesUpdated.Before(start.Add(-time.Minute)) {
		t.Errorf("zones updated %v, before the import started at %v", zonesUpdated, start)
	}
	// Deleting every thing leaves the collection, empty, changed later.
	if _, err := svc.Delete(ctx, geo.DeleteRequest{Collection: "zones", Keys: []string{"1", "2"}}); err != nil {
		t.Fatal(err)
	}
	cs, err = svc.Collections(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if z := cs[1]; z.Count != 0 || z.BBox != nil || !z.Updated.After(zonesUpdated) {
		t.Errorf("emptied zones: %+v; want count 0, no bbox, updated after %v", z, zonesUpdated)
	}
}

func TestReplaceImport(t *testing.T) {
	t.Parallel()
	svc, pool := newService(t)
	ctx := context.Background()
	old := []geo.Feature{
		geotest.Square("Kept", "kept", map[string]any{"v": 1.0}, 0, 0, 1, 1),
		geotest.Square("Gone", "gone", nil, 2, 2, 3, 3),
		geotest.Square("Unkeyed", "", nil, 4, 4, 5, 5),
	}
	importInto(t, svc, geo.ImportOptions{Collection: "c"}, old)
	importInto(t, svc, geo.ImportOptions{Collection: "other"}, []geo.Feature{geotest.Square("Other", "gone", nil, 2, 2, 3, 3)})
	keptBefore, err := svc.Get(ctx, geo.ThingRef{Collection: "c", Key: "kept"}, false, geo.Output{})
	if err != nil {
		t.Fatal(err)
	}

	res := importInto(t, svc, geo.ImportOptions{Collection: "c", Replace: true}, []geo.Feature{
		geotest.Square("Kept", "kept", map[string]any{"v": 2.0}, 0, 0, 1, 1),
		geotest.Square("New", "new", nil, 6, 6, 7, 7),
	})
	if res.Imported != 2 || res.Deleted != 2 || res.Collection != "c" {
		t.Errorf("replace: %+v; want 2 imported, 2 deleted, into c", res)
	}
	if got := names(search(t, svc, geo.Filter{Collections: []string{"c"}})); !slices.Equal(got, []string{"Kept", "New"}) {
		t.Errorf("c after replace: %v, want Kept and New", got)
	}
	keptAfter, err := svc.Get(ctx, geo.ThingRef{Collection: "c", Key: "kept"}, false, geo.Output{})
	if err != nil || keptAfter.ID != keptBefore.ID || keptAfter.Properties["v"] != 2.0 {
		t.Errorf("a replaced key keeps its id and takes the new data: before %+v, after %+v, %v", keptBefore, keptAfter, err)
	}
	if got := names(search(t, svc, geo.Filter{Collections: []string{"other"}})); !slices.Equal(got, []string{"Other"}) {
		t.Errorf("other collection after replacing c: %v", got)
	}
	if _, parts := counts(t, pool); parts != 3 {
		t.Errorf("%d parts after replace, want 3 (one per square)", parts)
	}

	// A replace that fails half-way (the client goes away after 450
	// features: more than two batches) leaves c as it was.
	boom := errors.New("client went away")
	_, err = svc.Import(ctx, geo.ImportOptions{Collection: "c", Replace: true}, &geotest.Source{Features: grid(30, nil)[:450], Err: boom})
	if !errors.Is(err, boom) {
		t.Fatalf("failed replace: %v, want %v", err, boom)
	}
	if got := names(search(t, svc, geo.Filter{Collections: []string{"c"}})); !slices.Equal(got, []string{"Kept", "New"}) {
		t.Errorf("c after a failed replace: %v, want Kept and New", got)
	}
	// An empty replace empties the collection.
	res = importInto(t, svc, geo.ImportOptions{Collection: "c", Replace: true}, nil)
	if res.Deleted != 2 || len(search(t, svc, geo.Filter{Collections: []string{"c"}})) != 0 {
		t.Errorf("empty replace: %+v", res)
	}
	if _, err := svc.Import(ctx, geo.ImportOptions{Collection: "Bad Name"}, &geotest.Source{}); geo.ErrorCode(err) != geo.Invalid {
		t.Errorf("import into a bad collection name: %v, want Invalid", err)
	}
}

// TestReplaceIsAtomicForConcurrentSearches replaces a collection of 300
// things with 300 others while searches run: every search sees the whole
// old set or the whole new set, never a mix. Searches are counted, not
// timed.
func TestReplaceIsAtomicForConcurrentSearches(t *testing.T) {
	t.Parallel()
	svc, _ := newService(t)
	ctx := context.Background()
	set := func(prefix string) []geo.Feature {
		var fs []geo.Feature
		for i := range 300 {
			x := float64(i%20) * 0.5
			y := float64(i/20) * 0.5
			fs = append(fs, geotest.Square(fmt.Sprintf("%s %03d", prefix, i), fmt.Sprintf("%s-%d", prefix, i), nil, x, y, x+1, y+1))
		}
		return fs
	}
	importInto(t, svc, geo.ImportOptions{Collection: "layer"}, set("old"))

	classify := func(things []geo.Thing) string {
		n := map[string]int{}
		for _, th := range things {
			n[th.Name[:3]]++
		}
		switch {
		case n["old"] == 300 && len(n) == 1:
			return "old"
		case n["new"] == 300 && len(n) == 1:
			return "new"
		}
		return fmt.Sprintf("mixed %v", n)
	}
	var (
		wg     sync.WaitGroup
		done   atomic.Bool
		mu     sync.Mutex
		seen   = map[string]int{}
		errs   []error
		filter = geo.Filter{Collections: []string{"layer"}}
	)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !done.Load() {
				page, err := svc.Search(ctx, geo.Query{Filter: filter, Limit: 1000})
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					seen[classify(page.Things)]++
				}
				mu.Unlock()
			}
		}()
	}
	// Wait for the searches to see the old set before replacing.
	for {
		mu.Lock()
		n := seen["old"]
		mu.Unlock()
		if n > 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	res, err := svc.Import(ctx, geo.ImportOptions{Collection: "layer", Replace: true}, &geotest.Source{Features: set("new")})
	done.Store(true)
	wg.Wait()
	if err != nil || res.Imported != 300 || res.Deleted != 300 {
		t.Fatalf("replace: %+v, %v", res, err)
	}
	if len(errs) > 0 {
		t.Fatalf("searches failed: %v", errs)
	}
	for k, n := range seen {
		if k != "old" && k != "new" {
			t.Errorf("%d searches saw %s", n, k)
		}
	}
	if got := classify(search(t, svc, filter)); got != "new" {
		t.Errorf("after the replace: %s", got)
	}
	t.Logf("searches during the replace: %v", seen)
}

// TestDeleteRacingSearches deletes half a collection in one call while
// searches run: each sees all of it or the remaining half.
func TestDeleteRacingSearches(t *testing.T) {
	t.Parallel()
	svc, _ := newService(t)
	ctx := context.Background()
	fs := grid(10, nil)
	importInto(t, svc, geo.ImportOptions{Collection: "g"}, fs)
	var keys []string
	for _, f := range fs[:50] {
		keys = append(keys, f.Key)
	}
	var (
		wg   sync.WaitGroup
		done atomic.Bool
		mu   sync.Mutex
		seen = map[int]int{}
		errs []error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !done.Load() {
			page, err := svc.Search(ctx, geo.Query{Filter: geo.Filter{Collections: []string{"g"}}, Limit: 1000})
			mu.Lock()
			if err != nil {
				errs = append(errs, err)
			} else {
				seen[len(page.Things)]++
			}
			mu.Unlock()
		}
	}()
	for {
		mu.Lock()
		n := seen[100]
		mu.Unlock()
		if n > 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	n, err := svc.Delete(ctx, geo.DeleteRequest{Collection: "g", Keys: keys})
	done.Store(true)
	wg.Wait()
	if err != nil || n != 50 {
		t.Fatalf("delete: %d, %v", n, err)
	}
	if len(errs) > 0 {
		t.Fatalf("searches failed: %v", errs)
	}
	for count, times := range seen {
		if count != 100 && count != 50 {
			t.Errorf("%d searches saw %d things, want 100 or 50", times, count)
		}
	}
}

func TestPropertyFilters(t *testing.T) {
	t.Parallel()
	svc, _ := newService(t)
	importInto(t, svc, geo.ImportOptions{Collection: "p"}, []geo.Feature{
		geotest.Square("A", "a", map[string]any{"kind": "lake", "rank": 1.0, "open": true, "nested": map[string]any{"x": 1.0}}, 0, 0, 1, 1),
		geotest.Square("B", "b", map[string]any{"kind": "park", "rank": 2.0, "open": false}, 0, 0, 1, 1),
		geotest.Square("C", "c", map[string]any{"kind": "lake", "rank": 2.0, "tags": []any{"x"}}, 5, 5, 6, 6),
		geotest.Square("D", "d", map[string]any{"kind": "1"}, 5, 5, 6, 6),
	})
	pf := func(key string, values ...any) geo.PropertyFilter {
		return geo.PropertyFilter{Key: key, Values: values}
	}
	tests := []struct {
		name   string
		filter geo.Filter
		want   []string
	}{
		{"string", geo.Filter{Properties: []geo.PropertyFilter{pf("kind", "lake")}}, []string{"A", "C"}},
		{"IN", geo.Filter{Properties: []geo.PropertyFilter{pf("kind", "park", "lake")}}, []string{"A", "B", "C"}},
		{"number", geo.Filter{Properties: []geo.PropertyFilter{pf("rank", 2.0)}}, []string{"B", "C"}},
		{"boolean", geo.Filter{Properties: []geo.PropertyFilter{pf("open", false)}}, []string{"B"}},
		{"AND", geo.Filter{Properties: []geo.PropertyFilter{pf("kind", "lake"), pf("rank", 2.0)}}, []string{"C"}},
		{"types are JSON's: the string 1 is not the number 1", geo.Filter{Properties: []geo.PropertyFilter{pf("kind", 1.0)}}, []string{}},
		{"string 1", geo.Filter{Properties: []geo.PropertyFilter{pf("kind", "1")}}, []string{"D"}},
		{"with a point", geo.Filter{Point: &geo.Point{Lat: 0.5, Lng: 0.5}, Properties: []geo.PropertyFilter{pf("kind", "lake")}}, []string{"A"}},
		{"with a name", geo.Filter{Query: "c", Properties: []geo.PropertyFilter{pf("rank", 1.0, 2.0)}}, []string{"C"}},
		{"with a collection", geo.Filter{Collections: []string{"other"}, Properties: []geo.PropertyFilter{pf("kind", "lake")}}, []string{}},
		{"a missing property matches nothing", geo.Filter{Properties: []geo.PropertyFilter{pf("nope", "x")}}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, names(search(t, svc, tt.filter))); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestEveryFilterFieldFilters is the SQL side of the filter-coverage check:
// for every field of geo.Filter (found by reflection), its example narrows
// the results of a search that otherwise matches everything, and the naive
// whole-geometry statement agrees. A field that Search ignores fails here.
func TestEveryFilterFieldFilters(t *testing.T) {
	t.Parallel()
	svc, pool := newService(t)
	total := 0
	for coll, fs := range geotest.FilterFixture() {
		importInto(t, svc, geo.ImportOptions{Collection: coll}, fs)
		total += len(fs)
	}
	fields := geotest.FilterFields()
	typ := reflect.TypeFor[geo.Filter]()
	for i := range typ.NumField() {
		name := typ.Field(i).Name
		t.Run(name, func(t *testing.T) {
			ff, ok := fields[name]
			if !ok {
				t.Fatalf("geo.Filter.%s has no entry in geotest.FilterFields: add examples, and make sure Validate, Canonical and the SQL cover it", name)
			}
			base := geotest.FilterBase()
			if got := len(search(t, svc, base)); got != total {
				t.Fatalf("base filter matches %d things, want all %d", got, total)
			}
			f := base
			ff.Narrow(&f)
			got := len(search(t, svc, f))
			if got == 0 || got >= total {
				t.Errorf("setting %s matches %d of %d things; the SQL does not filter on it", name, got, total)
			}
			if f.Point != nil || f.BBox != nil || f.Area != nil {
				sql, args := postgis.WholeGeometryStatement(geo.Query{Filter: f, Limit: 1000})
				rows, err := pool.Query(context.Background(), sql, args...)
				if err != nil {
					t.Fatal(err)
				}
				n := 0
				for rows.Next() {
					n++
				}
				if rows.Err() != nil || n != got {
					t.Errorf("whole-geometry statement: %d things, %v; want %d", n, rows.Err(), got)
				}
			}
		})
	}
}

// TestCollectionCountsAreKeptUntilTheCollectionChanges: a collection is
// read by its name, and its things are aggregated only when it changed
// since, whichever instance changed it.
func TestCollectionCountsAreKeptUntilTheCollectionChanges(t *testing.T) {
	t.Parallel()
	svc, pool := newService(t)
	other := postgis.NewSearchService(pool) // another instance's service
	ctx := context.Background()
	importInto(t, svc, geo.ImportOptions{Collection: "zones"}, grid(4, nil))
	importInto(t, svc, geo.ImportOptions{Collection: "other"}, grid(2, nil))

	want := func(what string, count int64) {
		t.Helper()
		c, err := svc.Collection(ctx, "zones")
		if err != nil || c.Name != "zones" || c.Count != count {
			t.Fatalf("%s: %+v, %v; want zones with %d things", what, c, err, count)
		}
	}
	want("after the import", 16)
	before := postgis.CollectionAggregates(svc)
	for range 5 {
		want("read again", 16)
	}
	if _, err := svc.Collections(ctx); err != nil {
		t.Fatal(err)
	}
	// The list aggregates "default" and "other" once (not seen yet),
	// zones not again.
	if got := postgis.CollectionAggregates(svc) - before; got != 2 {
		t.Errorf("5 reads and a list of unchanged collections aggregated %d times, want 2 (default and other, never seen)", got)
	}
	before = postgis.CollectionAggregates(svc)
	if _, err := svc.Collections(ctx); err != nil {
		t.Fatal(err)
	}
	if got := postgis.CollectionAggregates(svc) - before; got != 0 {
		t.Errorf("a second list of unchanged collections aggregated %d times, want 0", got)
	}

	for _, step := range []struct {
		what  string
		write func() error
		count int64
	}{
		{"an import by another instance", func() error {
			_, err := other.Import(ctx, geo.ImportOptions{Collection: "zones"}, &geotest.Source{Features: grid(1, nil)[:1]})
			return err
		}, 16}, // grid(1)'s one key "0-0" is already there: replaced, not added
		{"a new key", func() error {
			_, err := other.Import(ctx, geo.ImportOptions{Collection: "zones"}, &geotest.Source{Features: []geo.Feature{geotest.Square("new", "new", nil, 1, 1, 2, 2)}})
			return err
		}, 17},
		{"a delete by keys", func() error {
			_, err := other.Delete(ctx, geo.DeleteRequest{Collection: "zones", Keys: []string{"new", "0-0"}})
			return err
		}, 15},
		{"a replace", func() error {
			_, err := other.Import(ctx, geo.ImportOptions{Collection: "zones", Replace: true}, &geotest.Source{Features: grid(2, nil)})
			return err
		}, 4},
	} {
		if err := step.write(); err != nil {
			t.Fatalf("%s: %v", step.what, err)
		}
		want(step.what, step.count)
	}
	if _, err := other.DeleteCollection(ctx, "zones"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Collection(ctx, "zones"); geo.ErrorCode(err) != geo.NotFound {
		t.Errorf("deleted collection: %v, want NotFound", err)
	}
	if _, err := svc.Collection(ctx, "Bad Name"); geo.ErrorCode(err) != geo.Invalid {
		t.Errorf("bad name: %v, want Invalid", err)
	}
	cs, err := svc.Collections(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range cs {
		got = append(got, c.Name)
	}
	if !slices.Equal(got, []string{"default", "other"}) {
		t.Errorf("collections after the delete: %v", got)
	}
}
