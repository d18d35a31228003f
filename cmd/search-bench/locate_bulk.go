package main

import (
	"context"
	"fmt"
	"strconv"

	"google.golang.org/grpc"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/geo"
)

// kindLocateMsgs is Locate with a message per point each way (the form
// before LocateRequest.points), beside kindLocate's bulk form.
const kindLocateMsgs = "locate 1/msg"

// locatePerMessageKind is the Locate round on main in the message-per-point
// form: what the bulk form saves, in the same run.
func (b *bench) locatePerMessageKind(main endpoint) roundKind {
	ls, op := grpcLocate(main.conn, b.points, b.batch)
	return roundKind{kind: kindLocateMsgs, at: main, op: op, per: b.batch, done: ls.close}
}

// grpcLocateBulk is grpcLocate in Locate's bulk form: call i sends points
// [i*batch, (i+1)*batch) (wrapping around) in one message, and reads
// their answers, which come in one response (or a few, past a megabyte).
// It returns the number of things found.
func grpcLocateBulk(conn *grpc.ClientConn, points []geo.Point, batch int, collections ...string) (*locateStreams, func(int) op) {
	ls := &locateStreams{client: searchv1.NewSearchServiceClient(conn)}
	if len(collections) > 0 {
		ls.opts = &searchv1.LocateOptions{Collections: collections}
	}
	ids := make([]string, batch)
	for j := range ids {
		ids[j] = strconv.Itoa(j)
	}
	return ls, func(int) op {
		var stream searchv1.SearchService_LocateClient
		return func(ctx context.Context, i int) (int, error) {
			if stream == nil {
				s, err := ls.start()
				if err != nil {
					return 0, err
				}
				stream = s
			}
			msg := &searchv1.LocateRequest{Points: make([]*searchv1.LocatePoint, batch)}
			for j := range msg.Points {
				p := points[(i*batch+j)%len(points)]
				msg.Points[j] = &searchv1.LocatePoint{Id: ids[j], Point: &searchv1.Point{Lat: p.Lat, Lng: p.Lng}}
			}
			if err := stream.Send(msg); err != nil {
				stream = nil
				return 0, err
			}
			found := 0
			for got := 0; got < batch; {
				resp, err := stream.Recv()
				if err != nil {
					stream = nil // the stream is over; the next call opens another
					return found, fmt.Errorf("locate answers %d of %d: %w", got, batch, err)
				}
				if len(resp.GetAnswers()) == 0 {
					return found, fmt.Errorf("locate: a response without answers to a message with points (id %q)", resp.GetId())
				}
				for _, a := range resp.GetAnswers() {
					if a.GetError() != nil {
						return found, fmt.Errorf("locate point %s: %s", a.GetId(), a.GetError().GetMessage())
					}
					found += len(a.GetThings())
				}
				got += len(resp.GetAnswers())
			}
			return found, nil
		}
	}
}
