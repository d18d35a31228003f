package grpcapi_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/grpcapi"
)

// badPoint returns the i-th kind of bad point, or nil for a good one.
func badPoint(i int) *searchv1.LocateRequest {
	id := fmt.Sprint(i)
	switch i % 7 {
	case 1:
		return &searchv1.LocateRequest{Id: id, Point: &searchv1.Point{Lat: math.NaN()}}
	case 3:
		return &searchv1.LocateRequest{Id: id, Point: &searchv1.Point{Lat: 91}}
	case 4:
		return &searchv1.LocateRequest{Id: id, Point: &searchv1.Point{Lng: math.Inf(-1)}}
	case 5:
		return &searchv1.LocateRequest{Id: id} // no point
	case 6:
		return &searchv1.LocateRequest{Id: id + strings.Repeat("x", grpcapi.MaxLocateIDBytes), Point: &searchv1.Point{}}
	}
	return nil
}

// TestLocateAnswersEveryPointOnceInOrder sends thousands of points with bad
// ones mixed in, reading while sending: every point gets exactly one answer,
// in input order, with its id; bad points get INVALID_ARGUMENT in their own
// answer and the stream goes on; the good ones reach the store in batches
// of at most LOCATE_BATCH_SIZE, scoped by the first message's options.
func TestLocateAnswersEveryPointOnceInOrder(t *testing.T) {
	t.Parallel()
	svc := &fakeService{things: things(5)}
	client, _ := serve(t, svc)
	stream, err := client.Locate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	const n = 5000
	sendErr := make(chan error, 1)
	go func() {
		err := stream.Send(&searchv1.LocateRequest{Options: &searchv1.LocateOptions{Limit: 2, Collections: []string{"countries"}}})
		for i := 0; i < n && err == nil; i++ {
			req := badPoint(i)
			if req == nil {
				req = &searchv1.LocateRequest{Id: fmt.Sprint(i), Point: &searchv1.Point{Lat: float64(i%180) - 90, Lng: float64(i%360) - 180}}
			}
			err = stream.Send(req)
		}
		if err == nil {
			err = stream.CloseSend()
		}
		sendErr <- err
	}()
	good := 0
	for i := 0; ; i++ {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			if i != n {
				t.Errorf("%d answers for %d points", i, n)
			}
			break
		}
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		bad := badPoint(i)
		want := fmt.Sprint(i)
		if bad != nil {
			want = bad.GetId()
		}
		if resp.GetId() != want {
			t.Fatalf("answer %d has id %.20q, want %.20q: answers are out of order", i, resp.GetId(), want)
		}
		switch {
		case bad != nil && resp.GetError().GetCode() != "INVALID_ARGUMENT":
			t.Errorf("bad point %d: answer %v, want an INVALID_ARGUMENT error", i, resp)
		case bad == nil && (resp.GetError() != nil || len(resp.GetThings()) != 2):
			t.Errorf("point %d: answer %v, want 2 things (the limit)", i, resp)
		case bad == nil:
			good++
		}
	}
	if err := <-sendErr; err != nil {
		t.Fatal(err)
	}
	svc.mu.Lock()
	defer svc.mu.Unlock()
	total := 0
	for _, b := range svc.locateBatches {
		total += b
		if b > testConfig.LocateBatchSize {
			t.Errorf("a batch of %d points; LOCATE_BATCH_SIZE is %d", b, testConfig.LocateBatchSize)
		}
	}
	if total != good {
		t.Errorf("the store was asked about %d points; %d were good", total, good)
	}
	t.Logf("%d points in %d batches", total, len(svc.locateBatches))
	if q := svc.lastLocate; len(q.Collections) != 1 || q.Collections[0] != "countries" || q.Limit != 2 {
		t.Errorf("the store got scope %+v, want the options' collection and limit", q)
	}
	if svc.lastLocate.MaxBytes <= 0 {
		t.Errorf("the store got no byte budget (MaxBytes %d): a batch of large answers would be held whole", svc.lastLocate.MaxBytes)
	}
}

func TestLocateRejectsBadOptions(t *testing.T) {
	t.Parallel()
	client, _ := serve(t, &fakeService{things: things(1)})
	for name, msgs := range map[string][]*searchv1.LocateRequest{
		"negative limit":    {{Options: &searchv1.LocateOptions{Limit: -1}}},
		"bad collection":    {{Options: &searchv1.LocateOptions{Collections: []string{"Not A Name"}}}},
		"nested where key":  {{Options: &searchv1.LocateOptions{Where: []*searchv1.PropertyFilter{{Key: "a.b"}}}}},
		"negative distance": {{Options: &searchv1.LocateOptions{MaxDistanceM: -5}}},
		"NaN distance":      {{Options: &searchv1.LocateOptions{MaxDistanceM: math.NaN()}}},
		"distance over cap": {{Options: &searchv1.LocateOptions{MaxDistanceM: 2e6}}},
		"options later": {
			{Id: "a", Point: &searchv1.Point{}},
			{Id: "b", Point: &searchv1.Point{}, Options: &searchv1.LocateOptions{}},
		},
	} {
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
		for err == nil {
			_, err = stream.Recv()
		}
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: stream ended with %v, want INVALID_ARGUMENT", name, err)
		}
	}
	// A stream with no point at all ends at once, cleanly.
	stream, err := client.Locate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_ = stream.CloseSend()
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Errorf("an empty stream: %v, want io.EOF", err)
	}
}

// TestLocateStopsReadingAClientThatDoesNotRead has a client send up to a
// million points and read nothing: the server stops reading once its
// answers fill the client's window, so it takes only a bounded number of
// points, and it ends the stream after STREAM_SEND_TIMEOUT, which stops the
// client's sends too. Not parallel, so that the goroutines counted are this
// test's.
func TestLocateStopsReadingAClientThatDoesNotRead(t *testing.T) {
	svc := &fakeService{things: things(1)}
	svc.things[0].GeometryGeoJSON = `{"type":"Polygon","coordinates":[[` + strings.Repeat("[1.2345678,2.3456789],", 180) + `[1.2345678,2.3456789]]]}`
	cfg := testConfig
	cfg.StreamSendTimeout = 300 * time.Millisecond
	counts := &countingMetrics{}
	addr := serveWithInterceptors(t, svc, cfg, slog.New(slog.DiscardHandler), counts)

	stream, err := stallingClient(t, addr).Locate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&searchv1.LocateRequest{Options: &searchv1.LocateOptions{IncludeGeometry: true}}); err != nil {
		t.Fatal(err)
	}
	// The client sends on a goroutine: once the server stops reading, a
	// Send blocks until the client reads again (the stream's status is
	// behind the answers it has not read) or gives up.
	const n = 1_000_000
	sent := make(chan int, 1)
	go func() {
		i := 0
		for ; i < n; i++ {
			if err := stream.Send(&searchv1.LocateRequest{Id: fmt.Sprint(i), Point: &searchv1.Point{Lat: 1, Lng: 2}}); err != nil {
				break // the server ended the stream
			}
		}
		sent <- i
	}()
	deadline := time.Now().Add(60 * time.Second)
	for counts.get("grpc.SearchService.Locate.errors.DeadlineExceeded") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the stalled Locate stream was not ended by the server")
		}
		time.Sleep(20 * time.Millisecond)
	}
	svc.mu.Lock()
	taken := 0
	for _, b := range svc.locateBatches {
		taken += b
	}
	svc.mu.Unlock()
	// The answers (4 KB each) fill the client's 64 KiB window after about
	// 16; the server then holds one batch and the reader one message.
	if limit := 16 + 2*cfg.LocateBatchSize + 1; taken > limit {
		t.Errorf("the server located %d points for a client that read none; at most %d expected", taken, limit)
	}
	for locateHandlersRunning() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the Locate handler or its goroutines outlived the stalled stream")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The client reads again: it gets the answers in flight, then the status,
	// and its sends stop.
	answers := 0
	for err == nil {
		if _, err = stream.Recv(); err == nil {
			answers++
		}
	}
	if st := status.Convert(err); st.Code() != codes.DeadlineExceeded || !strings.Contains(st.Message(), "STREAM_SEND_TIMEOUT") {
		t.Errorf("the stalled stream ended with %s %q, want DeadlineExceeded naming STREAM_SEND_TIMEOUT", st.Code(), st.Message())
	}
	if got := <-sent; got == n {
		t.Errorf("the server took all %d points from a client that read nothing", n)
	} else {
		t.Logf("the client could send %d of %d points; the server located %d and the client got %d answers", got, n, taken, answers)
	}
}

// TestLocateCancelStopsTheStore cancels a stream whose batch is in the store:
// the store's call returns (its context ended) and the handler ends.
func TestLocateCancelStopsTheStore(t *testing.T) {
	svc := &fakeService{block: true}
	client, _ := serve(t, svc)
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := client.Locate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&searchv1.LocateRequest{Id: "a", Point: &searchv1.Point{}}); err != nil {
		t.Fatal(err)
	}
	for locateHandlersRunning() == 0 || !svc.locating() {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if _, err := stream.Recv(); status.Code(err) != codes.Canceled {
		t.Errorf("cancelled stream: %v, want CANCELED", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for locateHandlersRunning() > 0 || svc.locating() {
		if time.Now().After(deadline) {
			t.Fatal("the cancelled Locate did not end")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// locateHandlersRunning counts goroutines in the Locate handler or its
// reader and stall guard.
func locateHandlersRunning() int {
	n := 0
	for _, g := range goroutines() {
		if strings.Contains(g, "grpcapi.(*Server).Locate") || strings.Contains(g, "grpcapi.newLocateReader") || strings.Contains(g, "newStallGuard[...]") {
			n++
		}
	}
	return n
}

// TestLocateDistanceMapsToTheDomain: options.max_distance_m reaches the
// store, and the things' distances reach the client.
func TestLocateDistanceMapsToTheDomain(t *testing.T) {
	t.Parallel()
	d := 12.5
	svc := &fakeService{things: []geo.Thing{{ID: 1, Name: "a", DistanceM: &d}}}
	client, _ := serve(t, svc)
	stream, err := client.Locate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&searchv1.LocateRequest{Options: &searchv1.LocateOptions{MaxDistanceM: 5000}, Id: "p", Point: &searchv1.Point{Lat: 1, Lng: 2}}); err != nil {
		t.Fatal(err)
	}
	_ = stream.CloseSend()
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.GetThings(); len(got) != 1 || got[0].DistanceM == nil || got[0].GetDistanceM() != 12.5 {
		t.Errorf("answer %v, want one thing 12.5 m away", resp)
	}
	svc.mu.Lock()
	defer svc.mu.Unlock()
	if svc.lastLocate.MaxDistanceM != 5000 || svc.lastLocate.Point != nil {
		t.Errorf("store got %+v, want MaxDistanceM 5000 and no point", svc.lastLocate.Filter)
	}
}
