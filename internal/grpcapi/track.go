package grpcapi

import (
	"context"
	"errors"
	"io"

	rpccode "google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/batching"
	"github.com/geosearch/search/internal/geo"
)

// SetFencing turns on Track (through tracker) and WatchEvents (from
// events); without it both answer UNAVAILABLE.
func (s *Server) SetFencing(tracker *geo.Tracker, events geo.EventSource) {
	s.tracker, s.events = tracker, events
}

// SetFenceStatus gives Monitor the instance's geofencing (ok false: off).
func (s *Server) SetFenceStatus(status func(context.Context) (geo.FenceStatus, bool)) {
	s.fenceStatus = status
}

// errFencingOff answers Track and WatchEvents on a server without fencing.
var errFencingOff = geo.Errorf(geo.Unavailable, "geofencing is off on this server: it needs FENCE_ENABLED and KAFKA_BROKERS")

// Track applies a stream of positions in batches (as Locate batches its
// points: LOCATE_BATCH_SIZE, LOCATE_BATCH_WAIT), one database transaction
// per batch, and answers each position in the order sent, after its batch
// is committed: an answer's events are stored and will be published.
func (s *Server) Track(stream grpc.BidiStreamingServer[searchv1.TrackRequest, searchv1.TrackResponse]) error {
	if s.tracker == nil {
		return errFencingOff
	}
	lim := s.cfg.Load()
	ctx := stream.Context()
	guard := newStallGuard[searchv1.TrackResponse](stream, lim.StreamSendTimeout)
	defer guard.close()
	in := batching.Read(func(emit func(*searchv1.TrackRequest) error) error {
		return recvAll(stream.Recv, emit)
	}, batching.Options[*searchv1.TrackRequest]{})
	defer in.Stop()
	for {
		batch, eof, err := in.Batch(ctx, nil, lim.LocateBatchSize, lim.LocateBatchWait)
		if err == nil && eof {
			err = in.Err()
		}
		if err != nil {
			return err
		}
		if len(batch) > 0 {
			if err := s.track(ctx, guard, batch); err != nil {
				return err
			}
		}
		if eof {
			return nil
		}
	}
}

// track applies one batch and sends its answers.
func (s *Server) track(ctx context.Context, guard *stallGuard[searchv1.TrackResponse], batch []*searchv1.TrackRequest) error {
	// A message without a point is answered without the tracker.
	fixes := make([]geo.Fix, 0, len(batch))
	for _, req := range batch {
		if req.GetPoint() != nil {
			fixes = append(fixes, fixFromProto(req))
		}
	}
	tracked, err := s.tracker.Track(ctx, fixes, nil)
	if err != nil {
		return err
	}
	results := make([]geo.TrackResult, len(batch))
	k := 0
	for i, req := range batch {
		if req.GetPoint() == nil {
			results[i].Err = geo.Errorf(geo.Invalid, "the message has no point")
			continue
		}
		results[i] = tracked[k]
		k++
	}
	var rejected, stale, events int64
	for _, r := range results {
		resp := &searchv1.TrackResponse{Stale: r.Stale}
		for _, e := range r.Events {
			resp.Events = append(resp.Events, fenceEventToProto(e))
		}
		events += int64(len(r.Events))
		if r.Stale {
			stale++
		}
		if r.Err != nil {
			rejected++
			st, _ := toStatus(r.Err)
			resp.Error = &searchv1.TrackError{Code: rpccode.Code(st.Code()).String(), Message: st.Message()}
		}
		if err := guard.send(resp); err != nil {
			return err
		}
	}
	s.metrics.Count("fence.positions_tracked", int64(len(batch)))
	s.metrics.Count("fence.positions_rejected", rejected)
	s.metrics.Count("fence.positions_stale", stale)
	s.metrics.Count("fence.events", events)
	return nil
}

// fixFromProto maps a position with a point; a missing or invalid time is
// left zero, for geo.Fix.Validate to refuse.
func fixFromProto(req *searchv1.TrackRequest) geo.Fix {
	p := req.GetPoint()
	f := geo.Fix{Device: req.GetDevice(), Collection: req.GetCollection(), Point: geo.Point{Lat: p.GetLat(), Lng: p.GetLng()}}
	if t := req.GetTime(); t != nil && t.IsValid() {
		f.Time = t.AsTime()
	}
	return f
}

// fenceEventToProto maps an event.
func fenceEventToProto(e geo.Event) *searchv1.FenceEvent {
	typ := searchv1.FenceEventType_FENCE_EVENT_TYPE_ENTER
	if e.Type == geo.Exit {
		typ = searchv1.FenceEventType_FENCE_EVENT_TYPE_EXIT
	}
	return &searchv1.FenceEvent{Device: e.Device, Collection: e.Collection, Type: typ, Seq: e.Seq,
		ThingId: e.Thing.ID, ThingKey: e.Thing.Key, Point: &searchv1.Point{Lat: e.Point.Lat, Lng: e.Point.Lng},
		Time: timestamppb.New(e.Time)}
}

// WatchEvents streams the published events (geo.EventSource).
func (s *Server) WatchEvents(req *searchv1.WatchEventsRequest, stream grpc.ServerStreamingServer[searchv1.FenceEvent]) error {
	if s.events == nil {
		return errFencingOff
	}
	guard := newStallGuard[searchv1.FenceEvent](stream, s.cfg.Load().StreamSendTimeout)
	defer guard.close()
	err := s.events.ReadEvents(stream.Context(), req.GetFollow(), func(e geo.Event) error {
		return guard.send(fenceEventToProto(e))
	})
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}
