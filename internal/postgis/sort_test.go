package postgis_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/geo/geotest"
	"github.com/geosearch/search/internal/postgis"
)

// sortFixture has numbers (with ties), strings, booleans, a null and a
// missing value in pop, and strings in kind; ids follow the order here.
func sortFixture() []geo.Feature {
	sq := func(name string, props map[string]any, i int) geo.Feature {
		x := float64(i * 2)
		return geotest.Square(name, name, props, x, 0, x+1, 1)
	}
	return []geo.Feature{
		sq("A", map[string]any{"pop": 10.0, "kind": "x"}, 0),
		sq("B", map[string]any{"pop": 2.0, "kind": "y"}, 1),
		sq("C", map[string]any{"pop": 10.0, "kind": "x"}, 2),
		sq("D", map[string]any{"pop": "many", "kind": "x"}, 3),
		sq("E", map[string]any{"pop": true}, 4),
		sq("F", map[string]any{"kind": "z"}, 5),
		sq("G", map[string]any{"pop": nil, "kind": "x"}, 6),
		sq("H", map[string]any{"pop": 2.5}, 7),
		sq("I", map[string]any{"pop": false}, 8),
		sq("J", map[string]any{"pop": "few"}, 9),
	}
}

// TestSortBy walks every page of sorted searches, with page sizes from 1
// up and with pages cut by bytes, each next page read through its token:
// the things come in geo.SortKey's order (numbers, strings, booleans, the
// missing last in both directions; ties by id), each exactly once.
func TestSortBy(t *testing.T) {
	t.Parallel()
	svc, _ := newService(t)
	importInto(t, svc, geo.ImportOptions{Collection: "s"}, sortFixture())
	importInto(t, svc, geo.ImportOptions{Collection: "other"}, sortFixture()[:2])
	for _, tc := range []struct {
		sortby string
		where  *geo.Expr
		want   []string
	}{
		{"pop", nil, []string{"B", "H", "A", "C", "J", "D", "I", "E", "F", "G"}},
		{"+pop", nil, []string{"B", "H", "A", "C", "J", "D", "I", "E", "F", "G"}},
		{"-pop", nil, []string{"E", "I", "D", "J", "A", "C", "H", "B", "F", "G"}},
		{"kind,-pop", nil, []string{"D", "A", "C", "G", "B", "F", "E", "I", "J", "H"}},
		{"-kind,pop", nil, []string{"F", "B", "A", "C", "D", "G", "H", "J", "I", "E"}},
		{"missing", nil, []string{"A", "B", "C", "D", "E", "F", "G", "H", "I", "J"}},
		{"-pop", &geo.Expr{Compare: &geo.Comparison{Property: "kind", Op: geo.OpEq, Value: "x"}}, []string{"D", "A", "C", "G"}},
	} {
		by, err := geo.ParseSortBy(tc.sortby, "sortby")
		if err != nil {
			t.Fatal(err)
		}
		f := geo.Filter{Collections: []string{"s"}, Where: tc.where}
		for _, size := range []struct{ limit, maxBytes int }{{1, 0}, {2, 0}, {3, 0}, {100, 0}, {100, 1}} {
			got := walkSorted(t, svc, geo.Query{Filter: f, SortBy: by, Limit: size.limit, MaxBytes: size.maxBytes})
			if !slices.Equal(got, tc.want) {
				t.Errorf("sortby=%s, limit %d, max bytes %d: %v, want %v", tc.sortby, size.limit, size.maxBytes, got, tc.want)
			}
		}
	}
}

// walkSorted reads every page of q, each next one through its token, and
// returns the names in order.
func walkSorted(t *testing.T, svc *postgis.SearchService, q geo.Query) []string {
	t.Helper()
	var names []string
	for range 100 {
		page, err := svc.Search(context.Background(), q)
		if err != nil {
			t.Fatalf("search %+v: %v", q, err)
		}
		for _, th := range page.Things {
			names = append(names, th.Name)
		}
		if page.Next == nil {
			return names
		}
		tok := geo.EncodeSortedPageToken(q.Filter, q.SortBy, *page.Next)
		after, err := geo.DecodeSortedPageToken(tok, q.Filter, q.SortBy, "cursor")
		if err != nil {
			t.Fatalf("token %s: %v", tok, err)
		}
		q.After = &after
	}
	t.Fatalf("more than 100 pages: %v", names)
	return nil
}

// TestSortByIsRefused: a nearest search takes no sort, and bad keys are
// Invalid before any SQL is sent.
func TestSortByIsRefused(t *testing.T) {
	t.Parallel()
	svc, _ := newService(t)
	pt := &geo.Point{Lat: 0.5, Lng: 0.5}
	for i, q := range []geo.Query{
		{Filter: geo.Filter{Point: pt, MaxDistanceM: 10}, SortBy: []geo.SortKey{{Property: "pop"}}, Limit: 1},
		{Filter: geo.Filter{Point: pt}, SortBy: []geo.SortKey{{Property: "a.b"}}, Limit: 1},
		{Filter: geo.Filter{Point: pt}, SortBy: []geo.SortKey{{Property: "a"}, {Property: "a", Desc: true}}, Limit: 1},
		{Filter: geo.Filter{Point: pt}, SortBy: []geo.SortKey{{Property: "a"}}, After: &geo.Cursor{ID: 1}, Limit: 1},
	} {
		if _, err := svc.Search(context.Background(), q); geo.ErrorCode(err) != geo.Invalid {
			t.Errorf("query %d: %v, want Invalid", i, err)
		}
	}
}

// TestSortByLargeNumbers: numbers are compared exactly, as the store holds
// them, across pages (a cursor carries the digits, never a float).
func TestSortByLargeNumbers(t *testing.T) {
	t.Parallel()
	svc, _ := newService(t)
	var fs []geo.Feature
	want := make([]string, 0, 6)
	for i, v := range []float64{1e300, -1e-300, 0.1, 0.30000000000000004, 0.3, 123456789012345680} {
		name := fmt.Sprintf("n%d", i)
		fs = append(fs, geotest.Square(name, name, map[string]any{"v": v}, float64(i), 0, float64(i)+0.5, 0.5))
	}
	want = append(want, "n1", "n2", "n4", "n3", "n5", "n0")
	importInto(t, svc, geo.ImportOptions{Collection: "n"}, fs)
	got := walkSorted(t, svc, geo.Query{Filter: geo.Filter{Collections: []string{"n"}}, SortBy: []geo.SortKey{{Property: "v"}}, Limit: 1})
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
