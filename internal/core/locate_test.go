package core_test

import (
	"context"
	"errors"
	"testing"

	"github.com/geosearch/search/internal/core"
	"github.com/geosearch/search/internal/geo"
)

// counts is a core.Counter keeping its counts.
type counts map[string]int64

func (c counts) Count(name string, n int64) { c[name] += n }

// TestLocateBatch: the store is asked with the batch byte budget, every
// point is answered in order (a bad one with its own error, without the
// store), and the batch is counted.
func TestLocateBatch(t *testing.T) {
	t.Parallel()
	store := &recording{}
	svc := oneThingEach{store}
	points := []geo.Point{{Lat: 1, Lng: 1}, {Lat: 91, Lng: 0}, {Lat: 2, Lng: 2}}
	bad := errors.New("bad id")
	errs := []error{nil, nil, bad}
	m := counts{}
	var got []string
	err := core.LocateBatch(context.Background(), svc, geo.LocateQuery{Limit: 5}, points, errs, m, func(i int, things []geo.Thing, err error) error {
		switch {
		case errors.Is(err, bad):
			got = append(got, "bad id")
		case err != nil:
			got = append(got, geo.ErrorMessage(err))
		default:
			got = append(got, things[0].Name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0] != "a thing" || got[2] != "bad id" || got[1] == "a thing" {
		t.Errorf("answers %q, want a thing, latitude's error, bad id", got)
	}
	if q := store.lastLocate(); q.MaxBytes != geo.LocateBatchBytes || q.Limit != 5 {
		t.Errorf("the store was asked %+v, want MaxBytes %d", q, geo.LocateBatchBytes)
	}
	if m["locate.points"] != 3 || m["search.results"] != 1 {
		t.Errorf("counted %v, want 3 points and 1 result", m)
	}
}

// oneThingEach answers every point with one thing, through recording.
type oneThingEach struct{ *recording }

func (o oneThingEach) Locate(ctx context.Context, q geo.LocateQuery) ([][]geo.Thing, error) {
	if _, err := o.recording.Locate(ctx, q); err != nil {
		return nil, err
	}
	out := make([][]geo.Thing, len(q.Points))
	for i := range out {
		out[i] = []geo.Thing{{Name: "a thing"}}
	}
	return out, nil
}
