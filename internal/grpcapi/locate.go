package grpcapi

import (
	"errors"
	"io"
	"strconv"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/batching"
	"github.com/geosearch/search/internal/core"
	"github.com/geosearch/search/internal/geo"
)

// MaxLocateIDBytes is the longest point id a Locate stream accepts; a longer
// one gets an error in its own answer.
const MaxLocateIDBytes = 256

// maxLocateBatch caps LOCATE_BATCH_SIZE: a batch's points travel as two
// arrays in one statement.
const maxLocateBatch = 10000

// Locate answers a stream of points in batches, one database statement per
// batch (more only for answers too large to hold at once), in the order the
// points arrived.
//
// The scope travels once, in the first message's options, like Import's:
// one scope for the whole stream is what lets every batch be a single
// statement (a scope per point would split batches by scope), and it is the
// bulk job's shape (one set of collections and filters for a whole file of
// points). A client wanting two scopes opens two streams.
//
// Flow control both ways, in bounded memory: one goroutine
// (batching.Reader) reads the stream ahead by at most one batch
// (LOCATE_BATCH_SIZE) of messages, and the
// handler takes from it only while filling a batch. While a batch is in the
// database or its answers are being sent, the reader fills the channel and
// then stops, so a client that sends without reading fills its HTTP/2
// window and waits. The handler holds at most two batches of points (the
// one answered and the next, read ahead) plus the one message the reader
// holds, and of their answers about geo.LocateBatchBytes, or a single
// point's, at a time. Answers go through stallGuard: a client that makes no room for one
// for STREAM_SEND_TIMEOUT ends the stream with DEADLINE_EXCEEDED.
// Cancelling cancels the stream's context, which the batch's statement runs
// under.
func (s *Server) Locate(stream grpc.BidiStreamingServer[searchv1.LocateRequest, searchv1.LocateResponse]) error {
	lim := s.cfg.Load()
	ctx := stream.Context()
	// Sent with the first answer: a client that sees it sends the bulk
	// form from then on.
	if err := stream.SetHeader(metadata.Pairs(LocateBulkHeader, strconv.Itoa(MaxLocatePoints))); err != nil {
		return err
	}
	guard := newStallGuard[searchv1.LocateResponse](stream, lim.StreamSendTimeout)
	defer guard.close()
	in := newLocateReader(stream, lim.LocateBatchSize)
	defer in.Stop()

	first, err := in.Next(ctx)
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err != nil {
		return err
	}
	q := geo.LocateQuery{Limit: lim.DefaultPageSize}
	var sh shape
	if o := first.GetOptions(); o != nil {
		if q, sh, err = s.locateQuery(o, lim); err != nil {
			return err
		}
		if first.GetPoint() == nil && first.GetId() == "" && len(first.GetPoints()) == 0 {
			first = nil // options only
		}
	}
	var pending []*searchv1.LocateRequest
	if first != nil {
		if err := checkBulk(first); err != nil {
			return err
		}
		pending = append(make([]*searchv1.LocateRequest, 0, min(lim.LocateBatchSize, 64)), first)
	}
	for {
		batch, eof, err := in.Batch(ctx, pending, lim.LocateBatchSize, lim.LocateBatchWait)
		pending = nil
		if err == nil && eof {
			err = in.Err()
		}
		if err != nil {
			return err
		}
		if err := s.answer(ctx, guard, q, &sh, batch); err != nil {
			return err
		}
		if eof {
			return nil
		}
	}
}

// locateQuery validates a stream's options.
func (s *Server) locateQuery(o *searchv1.LocateOptions, lim *Config) (geo.LocateQuery, shape, error) {
	f, err := convertFilter(&searchv1.SearchRequest{
		Query: o.GetQuery(), Collections: o.GetCollections(), Where: o.GetWhere(), MaxDistanceM: o.GetMaxDistanceM(),
	})
	if err != nil {
		return geo.LocateQuery{}, shape{}, err
	}
	sh, err := shapeOf(o.GetReadMask(), o.GetIncludeGeometry(), o.GetSimplifyTolerance(), o.CoordinatePrecision)
	if err != nil {
		return geo.LocateQuery{}, shape{}, err
	}
	q := geo.LocateQuery{Filter: f, IncludeGeometry: sh.includeGeometry, Output: sh.output}
	if err := q.ValidateScope(); err != nil {
		return geo.LocateQuery{}, shape{}, err
	}
	if q.Limit, err = core.PageSize(int64(o.GetLimit()), "options.limit", lim.DefaultPageSize, lim.MaxPageSize); err != nil {
		return geo.LocateQuery{}, shape{}, err
	}
	return q, sh, nil
}

// checkLocatePoint returns the error a point gets in its own answer.
func checkLocatePoint(id string, p *searchv1.Point) error {
	if len(id) > MaxLocateIDBytes {
		return geo.Errorf(geo.Invalid, "id is %d bytes long; the limit is %d", len(id), MaxLocateIDBytes)
	}
	if p == nil {
		return geo.Errorf(geo.Invalid, "the message has no point")
	}
	return geo.Point{Lat: p.GetLat(), Lng: p.GetLng()}.Validate()
}

// recvAll hands emit each message recv returns, until the stream ends
// (nil) or fails: a gRPC stream's read loop for batching.Read.
func recvAll[T any](recv func() (T, error), emit func(T) error) error {
	for {
		m, err := recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := emit(m); err != nil {
			return err
		}
	}
}

// newLocateReader reads a Locate stream, holding up to buffer messages
// read ahead: the reading goroutine receives the next batch while the
// handler answers one. Its batches count points, not messages (pointsOf),
// and a message after the first must be one of Locate's forms without
// options (notOptions).
func newLocateReader(stream grpc.BidiStreamingServer[searchv1.LocateRequest, searchv1.LocateResponse], buffer int) *batching.Reader[*searchv1.LocateRequest] {
	return batching.Read(func(emit func(*searchv1.LocateRequest) error) error {
		return recvAll(stream.Recv, emit)
	}, batching.Options[*searchv1.LocateRequest]{Buffer: buffer, Weight: pointsOf, Check: notOptions})
}
