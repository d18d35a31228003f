package geo

import "context"

// LocateBatchBytes is the byte budget (LocateQuery.MaxBytes) the servers
// give a Locate batch, gRPC and HTTP alike: about the most answers, in
// bytes as read from the database, a batch holds at once: as much as a
// page of SearchStream.
const LocateBatchBytes = 4 << 20

// ValidateScope validates what every point of q is answered with: its
// filter as the filter of a point search (each point brings the point,
// which the filter's own Point, ignored, does not; a bbox or an area
// cannot scope a point) and its output. The edges call it before the
// first point, the stores before searching, so a scope means the same
// whichever reads it.
func (q LocateQuery) ValidateScope() error {
	if q.BBox != nil || q.Area != nil {
		return Errorf(Invalid, "a located point cannot be scoped by a bbox or an area")
	}
	if err := q.Filter.validate(true); err != nil {
		return err
	}
	return q.Output.Validate()
}

// LocateEach answers a batch of points in order with q's scope: answer(i,
// things, nil) for a point it located, answer(i, nil, err) for one it did
// not: a point with pointErrs[i] set (pointErrs may be nil) or one that
// fails Validate, which the store never sees.
//
// Memory stays bounded when answers are large (geometries): with
// q.MaxBytes, the store answers as many points as fit, LocateEach hands
// those answers over, and only then asks for the next points, as many as
// fitted the last time (doubling while they all fit). So it holds one
// statement's answers, about MaxBytes or a single point's. The store
// reads more points than it answers: all of them the first time, then at
// most about twice as many as it answers.
func LocateEach(ctx context.Context, svc SearchService, q LocateQuery, points []Point, pointErrs []error, answer func(i int, things []Thing, err error) error) error {
	errs := make([]error, len(points))
	valid := make([]Point, 0, len(points))
	at := make([]int, 0, len(points)) // at[k] is valid[k]'s index in points
	for i, p := range points {
		if pointErrs != nil && pointErrs[i] != nil {
			errs[i] = pointErrs[i]
		} else {
			errs[i] = p.Validate()
		}
		if errs[i] == nil {
			valid = append(valid, p)
			at = append(at, i)
		}
	}
	next := 0 // the next point to answer
	answerBadUpTo := func(end int) error {
		for ; next < end; next++ {
			if err := answer(next, nil, errs[next]); err != nil {
				return err
			}
		}
		return nil
	}
	ask := len(valid)
	for len(valid) > 0 {
		q.Points = valid[:min(ask, len(valid))]
		found, err := svc.Locate(ctx, q)
		if err != nil {
			return err
		}
		if len(found) == 0 || len(found) > len(q.Points) {
			return Errorf(Internal, "the store answered %d of %d points", len(found), len(q.Points))
		}
		for k, things := range found {
			if err := answerBadUpTo(at[k]); err != nil {
				return err
			}
			if err := answer(next, things, nil); err != nil {
				return err
			}
			next++
		}
		if len(found) < len(q.Points) {
			ask = len(found)
		} else {
			ask *= 2
		}
		valid, at = valid[len(found):], at[len(found):]
	}
	return answerBadUpTo(len(points))
}
