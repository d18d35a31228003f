package core

import (
	"context"

	"github.com/geosearch/search/internal/geo"
)

// Counter counts events: the Count of metrics.Metrics.
type Counter interface {
	Count(name string, n int64)
}

// LocateBatch answers one batch of Locate's points, as every edge does
// (gRPC Locate, HTTP's GET and POST /locate): geo.LocateEach under the one
// byte budget of a batch's answers (geo.LocateBatchBytes: one statement,
// more only when the answers pass it), answer called for every point in
// order (errs[i], when set, is point i's own error, answered without the
// store), then the batch counted in m: locate.points (every point, bad
// ones too) and search.results (the things answered).
func LocateBatch(ctx context.Context, svc geo.SearchService, q geo.LocateQuery, points []geo.Point, errs []error, m Counter,
	answer func(i int, things []geo.Thing, err error) error) error {
	q.MaxBytes = geo.LocateBatchBytes
	results := 0
	err := geo.LocateEach(ctx, svc, q, points, errs, func(i int, things []geo.Thing, err error) error {
		results += len(things)
		return answer(i, things, err)
	})
	if err != nil {
		return err
	}
	m.Count("locate.points", int64(len(points)))
	m.Count("search.results", int64(results))
	return nil
}
