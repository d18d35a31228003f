package geo_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"

	"github.com/geosearch/search/internal/geo"
)

// partialStore is a store whose Locate answers at most per points a call,
// as a byte budget does; each point's answer is one thing named after its
// latitude.
type partialStore struct {
	geo.SearchService // only Locate is called
	per               int
	asked             []int       // points per call
	seen              []geo.Point // every point the store was asked
}

func (s *partialStore) Locate(_ context.Context, q geo.LocateQuery) ([][]geo.Thing, error) {
	s.asked = append(s.asked, len(q.Points))
	s.seen = append(s.seen, q.Points...)
	n := min(s.per, len(q.Points))
	out := make([][]geo.Thing, n)
	for i, p := range q.Points[:n] {
		out[i] = []geo.Thing{{Name: strconv.FormatFloat(p.Lat, 'f', -1, 64)}}
	}
	return out, nil
}

// TestLocateEachAnswersInOrderWithinTheBudget: when the store answers only
// some points of each call, LocateEach asks again for the rest, and every
// point gets one answer, in order; bad points are answered with their
// errors in their places and never reach the store; after a partial
// answer, no call asks for more than twice what the last one answered.
func TestLocateEachAnswersInOrderWithinTheBudget(t *testing.T) {
	const n = 40
	points := make([]geo.Point, n)
	errs := make([]error, n)
	for i := range points {
		points[i] = geo.Point{Lat: float64(i)}
		switch {
		case i%7 == 3:
			errs[i] = geo.Errorf(geo.Invalid, "bad id %d", i)
		case i%11 == 5:
			points[i].Lat = 91 + float64(i) // fails Validate
		}
	}
	store := &partialStore{per: 3}
	next := 0
	err := geo.LocateEach(context.Background(), store, geo.LocateQuery{Limit: 1, MaxBytes: 1}, points, errs, func(i int, things []geo.Thing, err error) error {
		if i != next {
			t.Fatalf("answer for point %d, want %d", i, next)
		}
		next++
		bad := i%7 == 3 || i%11 == 5
		switch {
		case bad && (err == nil || geo.ErrorCode(err) != geo.Invalid):
			t.Errorf("point %d: err %v, want Invalid", i, err)
		case !bad && (err != nil || len(things) != 1 || things[0].Name != strconv.Itoa(i)):
			t.Errorf("point %d: things %v, err %v; want its own answer", i, things, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if next != n {
		t.Fatalf("%d answers for %d points", next, n)
	}
	for _, p := range store.seen {
		if i := int(p.Lat); i%7 == 3 || i%11 == 5 || p.Validate() != nil {
			t.Errorf("the store was asked bad point %v", p)
		}
	}
	for k := 1; k < len(store.asked); k++ {
		if store.asked[k] > 2*store.per {
			t.Errorf("call %d asked %d points after an answer of %d: %v", k, store.asked[k], store.per, store.asked)
		}
	}
	if len(store.asked) < 2 {
		t.Errorf("calls %v: the budget was never used", store.asked)
	}
	t.Logf("calls: %v", store.asked)
}

// TestLocateEachStopsOnAStoreThatAnswersNothing: a store answering no point
// at all is a bug, reported, not a loop.
func TestLocateEachStopsOnAStoreThatAnswersNothing(t *testing.T) {
	store := &partialStore{per: 0}
	err := geo.LocateEach(context.Background(), store, geo.LocateQuery{Limit: 1}, []geo.Point{{}, {}}, nil, func(int, []geo.Thing, error) error { return nil })
	if geo.ErrorCode(err) != geo.Internal || len(store.asked) != 1 {
		t.Fatalf("err %v after %d calls; want one call and Internal", err, len(store.asked))
	}
}

// TestLocateEachStopsWhenAnAnswerCannotBeSent: answer's error ends it.
func TestLocateEachStopsWhenAnAnswerCannotBeSent(t *testing.T) {
	gone := errors.New("client gone")
	store := &partialStore{per: 2}
	calls := 0
	err := geo.LocateEach(context.Background(), store, geo.LocateQuery{Limit: 1}, make([]geo.Point, 10), nil, func(i int, _ []geo.Thing, _ error) error {
		calls++
		if i == 2 {
			return fmt.Errorf("send: %w", gone)
		}
		return nil
	})
	if !errors.Is(err, gone) || calls != 3 {
		t.Fatalf("err %v after %d answers; want the send's error after 3", err, calls)
	}
}

// TestLocateScopeIsAPointSearchWithoutItsPoint: ValidateScope takes what a
// point search's filter takes, without a point of its own (no fake one),
// and refuses what a point search refuses.
func TestLocateScopeIsAPointSearchWithoutItsPoint(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		scope geo.LocateQuery
		ok    bool
	}{
		{"nothing: every collection", geo.LocateQuery{}, true},
		{"a distance, measured from each point", geo.LocateQuery{Filter: geo.Filter{MaxDistanceM: 1000}}, true},
		{"collections and a name", geo.LocateQuery{Filter: geo.Filter{Collections: []string{"a"}, Query: "x"}}, true},
		{"a bbox", geo.LocateQuery{Filter: geo.Filter{BBox: &geo.BBox{MaxLng: 1, MaxLat: 1}}}, false},
		{"a negative distance", geo.LocateQuery{Filter: geo.Filter{MaxDistanceM: -1}}, false},
		{"a distance past the cap", geo.LocateQuery{Filter: geo.Filter{MaxDistanceM: geo.MaxDistanceM + 1}}, false},
		{"a bad collection name", geo.LocateQuery{Filter: geo.Filter{Collections: []string{""}}}, false},
		{"a NUL in the name", geo.LocateQuery{Filter: geo.Filter{Query: "a\x00"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.scope.ValidateScope()
			if (err == nil) != tt.ok || (err != nil && geo.ErrorCode(err) != geo.Invalid) {
				t.Errorf("ValidateScope() = %v, want ok: %v", err, tt.ok)
			}
		})
	}
}
