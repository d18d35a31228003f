package grpcapi_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/grpcapi"
)

// TestLocateBulkAnswersEveryPointInOrder mixes messages with many points
// (LocateRequest.points, bad points among them) and messages with one:
// every point is answered once, in order, with its id; a message's points
// are answered in the answers of responses of their own (split past about
// a megabyte: here the answers carry 4 KB geometries), a single point in a
// response of its own.
func TestLocateBulkAnswersEveryPointInOrder(t *testing.T) {
	t.Parallel()
	svc := &fakeService{things: things(1)}
	svc.things[0].GeometryGeoJSON = `{"type":"Polygon","coordinates":[[` + strings.Repeat("[1.2345678,2.3456789],", 180) + `[1.2345678,2.3456789]]]}`
	client, _ := serve(t, svc)
	stream, err := client.Locate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Messages of 1, 2500 (answers over two megabytes), 1, 3 points...
	sizes := []int{1, 2500, 1, 3, 1, 1, 250, 1}
	var wantIDs []string
	var wantBulk, wantBad []bool
	var wantMsg []int // the message of each answer
	sendErr := make(chan error, 1)
	var msgs []*searchv1.LocateRequest
	n := 0
	for k, size := range sizes {
		if size == 1 && k%2 == 0 {
			id := fmt.Sprint(n)
			msgs = append(msgs, &searchv1.LocateRequest{Id: id, Point: &searchv1.Point{Lat: 1, Lng: 2}})
			wantIDs, wantBulk, wantBad = append(wantIDs, id), append(wantBulk, false), append(wantBad, false)
			wantMsg = append(wantMsg, k)
			n++
			continue
		}
		m := &searchv1.LocateRequest{}
		for range size {
			id := fmt.Sprint(n)
			p := &searchv1.LocatePoint{Id: id, Point: &searchv1.Point{Lat: 1, Lng: 2}}
			if req := badPoint(n); req != nil {
				p = &searchv1.LocatePoint{Id: req.GetId(), Point: req.GetPoint()}
				id = req.GetId()
			}
			m.Points = append(m.Points, p)
			wantIDs, wantBulk, wantBad = append(wantIDs, id), append(wantBulk, true), append(wantBad, badPoint(n) != nil)
			wantMsg = append(wantMsg, k)
			n++
		}
		msgs = append(msgs, m)
	}
	go func() {
		err := stream.Send(&searchv1.LocateRequest{Options: &searchv1.LocateOptions{IncludeGeometry: true}})
		for _, m := range msgs {
			if err == nil {
				err = stream.Send(m)
			}
		}
		if err == nil {
			err = stream.CloseSend()
		}
		sendErr <- err
	}()
	got, split := 0, 0
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("after %d answers: %v", got, err)
		}
		answers := resp.GetAnswers()
		bulk := len(answers) > 0
		if !bulk {
			answers = []*searchv1.LocateResponse{resp}
		} else if resp.GetId() != "" || len(resp.GetThings()) > 0 || resp.GetError() != nil {
			t.Errorf("a response with answers sets id %q, %d things, error %v", resp.GetId(), len(resp.GetThings()), resp.GetError())
		}
		for _, a := range answers {
			if got >= len(wantIDs) {
				t.Fatalf("more than %d answers", len(wantIDs))
			}
			if a.GetId() != wantIDs[got] || bulk != wantBulk[got] || len(a.GetAnswers()) > 0 {
				t.Fatalf("answer %d: id %q (in answers: %v), want %q (%v)", got, a.GetId(), bulk, wantIDs[got], wantBulk[got])
			}
			if bad := wantBad[got]; bad != (a.GetError() != nil) || bad == (len(a.GetThings()) == 1) {
				t.Errorf("answer %d: error %v, %d things", got, a.GetError(), len(a.GetThings()))
			}
			got++
		}
		if bulk && got < len(wantIDs) && wantMsg[got] == wantMsg[got-1] {
			split++ // the next answer is of the same message: it was split
		}
	}
	if err := <-sendErr; err != nil {
		t.Fatal(err)
	}
	if got != len(wantIDs) {
		t.Errorf("%d answers for %d points", got, len(wantIDs))
	}
	if split == 0 {
		t.Error("2500 answers (700 of 4 KB) came in one response: past a megabyte they are split")
	}
}

// TestLocateBulkRejectsMixedAndOversizedMessages: a message with points
// must not set id or point, and carries at most MaxLocatePoints: either
// ends the stream with INVALID_ARGUMENT.
func TestLocateBulkRejectsMixedAndOversizedMessages(t *testing.T) {
	t.Parallel()
	client, _ := serve(t, &fakeService{things: things(1)})
	many := make([]*searchv1.LocatePoint, grpcapi.MaxLocatePoints+1)
	for i := range many {
		many[i] = &searchv1.LocatePoint{Id: fmt.Sprint(i), Point: &searchv1.Point{}}
	}
	one := []*searchv1.LocatePoint{{Id: "a", Point: &searchv1.Point{}}}
	for name, msgs := range map[string][]*searchv1.LocateRequest{
		"points and id":        {{Id: "x", Points: one}},
		"points and point":     {{Point: &searchv1.Point{}, Points: one}},
		"too many points":      {{Id: "0", Point: &searchv1.Point{}}, {Points: many}},
		"options, points, id":  {{Options: &searchv1.LocateOptions{}, Id: "x", Points: one}},
		"later points with id": {{Points: one}, {Id: "y", Points: one}},
	} {
		t.Run(name, func(t *testing.T) {
			stream, err := client.Locate(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range msgs {
				if err := stream.Send(m); err != nil {
					break
				}
			}
			_ = stream.CloseSend()
			for {
				_, err = stream.Recv()
				if err != nil {
					break
				}
			}
			if st := status.Convert(err); st.Code() != codes.InvalidArgument {
				t.Errorf("the stream ended with %v, want InvalidArgument", err)
			}
		})
	}
}
