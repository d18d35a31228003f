package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/grpcapi"
	"github.com/geosearch/search/internal/server/servertest"
)

// releaseLocate answers Locate as a server from before the bulk form did: a
// message per point, "no point" for a message without one; with bulk, it
// also names grpcapi.LocateBulkHeader and answers messages of points. It
// records the most points a message carried.
type releaseLocate struct {
	searchv1.UnimplementedSearchServiceServer
	bulk bool

	mu       sync.Mutex
	messages int
	most     int
}

func (s *releaseLocate) Locate(stream grpc.BidiStreamingServer[searchv1.LocateRequest, searchv1.LocateResponse]) error {
	if s.bulk {
		if err := stream.SetHeader(metadata.Pairs(grpcapi.LocateBulkHeader, "10000")); err != nil {
			return err
		}
	}
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if req.GetOptions() != nil && req.GetPoint() == nil && len(req.GetPoints()) == 0 {
			continue // options only
		}
		s.mu.Lock()
		s.messages++
		s.most = max(s.most, max(1, len(req.GetPoints())))
		s.mu.Unlock()
		var resp *searchv1.LocateResponse
		switch {
		case s.bulk && len(req.GetPoints()) > 0:
			resp = &searchv1.LocateResponse{}
			for _, p := range req.GetPoints() {
				resp.Answers = append(resp.Answers, &searchv1.LocateResponse{Id: p.GetId()})
			}
		case req.GetPoint() == nil:
			resp = &searchv1.LocateResponse{Id: req.GetId(), Error: &searchv1.LocateError{Message: "no point"}}
		default:
			resp = &searchv1.LocateResponse{Id: req.GetId()}
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}

// TestLocateAsksTheServerForTheBulkForm: without --points-per-message the
// client sends many points per message only to a server that says it takes
// them; one from before the bulk form gets a message per point and answers
// every point.
func TestLocateAsksTheServerForTheBulkForm(t *testing.T) {
	const n = 2000
	var in strings.Builder
	for i := range n {
		fmt.Fprintf(&in, "p%d,%g,%g\n", i, float64(i%80), float64(i%170))
	}
	file := filepath.Join(t.TempDir(), "points.csv")
	if err := os.WriteFile(file, []byte(in.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, bulk := range []bool{false, true} {
		t.Run(fmt.Sprintf("bulk=%v", bulk), func(t *testing.T) {
			srv := &releaseLocate{bulk: bulk}
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			gs := grpc.NewServer()
			searchv1.RegisterSearchServiceServer(gs, srv)
			go gs.Serve(lis)
			t.Cleanup(gs.Stop)
			ts := &servertest.Server{Addr: lis.Addr().String()}
			stdout, stderr, code := ts.RunClient(t, "locate", "--csv", file)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if rows := strings.Count(stdout, "\n") - 1; rows != n || strings.Contains(stdout, "no point") {
				t.Fatalf("%d rows for %d points, or a point refused:\n%.500s", rows, n, stdout)
			}
			srv.mu.Lock()
			defer srv.mu.Unlock()
			switch {
			case !bulk && srv.most != 1:
				t.Fatalf("a message carried %d points to a server without the bulk form", srv.most)
			case bulk && srv.most < 2:
				t.Fatalf("%d messages, at most %d points each, to a server that takes the bulk form", srv.messages, srv.most)
			}
			t.Logf("%d messages for %d points, at most %d per message", srv.messages, n, srv.most)
		})
	}
}
