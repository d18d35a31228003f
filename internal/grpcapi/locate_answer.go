package grpcapi

import (
	"context"

	rpccode "google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/protobuf/proto"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/core"
	"github.com/geosearch/search/internal/geo"
)

// MaxLocatePoints is the most points one LocateRequest may carry in
// points (the bulk form).
const MaxLocatePoints = 10000

// LocateBulkHeader is the response header with which a server says it
// takes the bulk form, its value the most points per message
// (MaxLocatePoints). A server from before the bulk form answers a message
// of points as one without a point ("no point"), so a client sends many
// points per message only after it has seen this header.
const LocateBulkHeader = "search-locate-bulk"

// bulkAnswerBytes is about the most a LocateResponse carrying answers
// holds: a request's answers are split over several responses past it,
// well below a client's default 4 MiB receive limit.
const bulkAnswerBytes = 1 << 20

// sendAnswers is how many responses are handed to the stall guard at once:
// two hand-overs to its goroutine per that many rather than per response,
// few enough that they hold little beyond the answers the batch holds.
const sendAnswers = 64

// checkBulk fails the stream for a message that is not one of Locate's
// forms: options after the first message, points beside id or point, or
// too many points.
func checkBulk(req *searchv1.LocateRequest) error {
	if n := len(req.GetPoints()); n > 0 {
		if req.GetId() != "" || req.GetPoint() != nil {
			return geo.Errorf(geo.Invalid, "a Locate message with points must not set id or point (id %q)", req.GetId())
		}
		if n > MaxLocatePoints {
			return geo.Errorf(geo.Invalid, "a Locate message carries %d points; the limit is %d", n, MaxLocatePoints)
		}
	}
	return nil
}

// notOptions fails the stream when a message after the first carries
// options, or is not one of Locate's forms.
func notOptions(req *searchv1.LocateRequest) error {
	if req.GetOptions() != nil {
		return geo.Errorf(geo.Invalid, "Locate options may only be sent in the first message (point %q carries them)", req.GetId())
	}
	return checkBulk(req)
}

// pointsOf is how many points req carries.
func pointsOf(req *searchv1.LocateRequest) int { return max(len(req.GetPoints()), 1) }

// answer locates a batch's valid points and sends every point's answer in
// order (core.LocateBatch): a response per point sent alone, the answers
// of a message's points in responses of their own.
func (s *Server) answer(ctx context.Context, guard *stallGuard[searchv1.LocateResponse], q geo.LocateQuery, sh *shape, batch []*searchv1.LocateRequest) error {
	var n int
	for _, req := range batch {
		n += pointsOf(req)
	}
	points := make([]geo.Point, n)
	errs := make([]error, n)
	ids := make([]string, n)
	kind := make([]pointKind, n)
	i := 0
	for _, req := range batch {
		if len(req.GetPoints()) == 0 {
			ids[i], errs[i] = req.GetId(), checkLocatePoint(req.GetId(), req.GetPoint())
			points[i] = geo.Point{Lat: req.GetPoint().GetLat(), Lng: req.GetPoint().GetLng()}
			i++
			continue
		}
		for _, p := range req.GetPoints() {
			ids[i], errs[i] = p.GetId(), checkLocatePoint(p.GetId(), p.GetPoint())
			points[i] = geo.Point{Lat: p.GetPoint().GetLat(), Lng: p.GetPoint().GetLng()}
			kind[i] = inBulk
			i++
		}
		kind[i-1] = lastInBulk
	}
	a := answers{guard: guard, sh: sh, pending: make([]*searchv1.LocateResponse, 0, min(n, sendAnswers)),
		slab: make([]searchv1.LocateResponse, n)}
	if err := core.LocateBatch(ctx, s.svc, q, points, errs, s.metrics, func(i int, things []geo.Thing, err error) error {
		return a.add(ids[i], things, err, kind[i])
	}); err != nil {
		return err
	}
	return a.flush()
}

// answers builds a batch's responses and hands them to the guard.
type answers struct {
	guard   *stallGuard[searchv1.LocateResponse]
	sh      *shape
	pending []*searchv1.LocateResponse
	bulk    *searchv1.LocateResponse  // the open response of a message's points
	bytes   int                       // bulk's size, about
	slab    []searchv1.LocateResponse // a response per point, allocated at once
	things  []*searchv1.Thing         // the answers' things, cut per point
}

// thingsChunk is how many answers' things are allocated at once.
const thingsChunk = 256

// thingSlice returns room for n things of one answer, cut from a chunk
// shared with the batch's other answers: no allocation per point.
func (a *answers) thingSlice(n int) []*searchv1.Thing {
	if len(a.things) < n {
		a.things = make([]*searchv1.Thing, max(n, thingsChunk))
	}
	s := a.things[:n:n]
	a.things = a.things[n:]
	return s
}

// pointKind says how a point of a batch came: alone in its message, or in
// a message's points (the last of them or not).
type pointKind uint8

const (
	alone pointKind = iota
	inBulk
	lastInBulk
)

// add answers the batch's next point (id), which came as kind says.
func (a *answers) add(id string, things []geo.Thing, err error, kind pointKind) error {
	resp := &a.slab[0]
	a.slab = a.slab[1:]
	resp.Id = id
	if err != nil {
		st, _ := toStatus(err)
		// The code's canonical name (google.rpc.Code), the same in every
		// language: "INVALID_ARGUMENT", not Go's "InvalidArgument".
		resp.Error = &searchv1.LocateError{Code: rpccode.Code(st.Code()).String(), Message: st.Message()}
	} else if len(things) > 0 {
		resp.Things = a.thingSlice(len(things))
		for j, t := range things {
			pt, err := thingMessage(t, a.sh)
			if err != nil {
				return err
			}
			resp.Things[j] = pt
		}
	}
	if kind == alone {
		return a.queue(resp)
	}
	if a.bulk == nil {
		a.bulk = &searchv1.LocateResponse{}
	}
	a.bulk.Answers = append(a.bulk.Answers, resp)
	if len(resp.Things) > 0 || resp.Error != nil {
		a.bytes += proto.Size(resp)
	} else {
		a.bytes += len(id) + 4
	}
	if kind != lastInBulk && a.bytes < bulkAnswerBytes {
		return nil
	}
	b := a.bulk
	a.bulk, a.bytes = nil, 0
	return a.queue(b)
}

// queue adds a response, handing them to the guard sendAnswers at a time.
func (a *answers) queue(resp *searchv1.LocateResponse) error {
	a.pending = append(a.pending, resp)
	if len(a.pending) < sendAnswers {
		return nil
	}
	return a.flush()
}

// flush hands the queued responses to the guard.
func (a *answers) flush() error {
	err := a.guard.sendAll(a.pending)
	a.pending = a.pending[:0]
	return err
}
