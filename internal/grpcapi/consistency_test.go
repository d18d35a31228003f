package grpcapi_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/grpcapi"
	"github.com/geosearch/search/internal/metrics"
)

// fakeReplica is a geo.ReadYourWrites at a fixed write position that
// records the positions reads wait for, and fails them with err.
type fakeReplica struct {
	position geo.Position
	err      error
	mu       sync.Mutex
	waited   []geo.Position
}

func (f *fakeReplica) WritePosition(context.Context) (geo.Position, error) { return f.position, nil }

func (f *fakeReplica) WaitFor(_ context.Context, p geo.Position) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.waited = append(f.waited, p)
	return f.err
}

func (f *fakeReplica) waits() []geo.Position {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]geo.Position(nil), f.waited...)
}

// serveConsistent is serve with consistency tokens implemented by rw.
func serveConsistent(t *testing.T, svc geo.SearchService, rw geo.ReadYourWrites) searchv1.SearchServiceClient {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	opts, err := grpcapi.ServerOptions(testConfig, logger, logger, metrics.Nop{}, grpcapi.NewAuth(testConfig))
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(append(opts, grpcapi.ConsistencyOptions(rw, logger)...)...)
	searchv1.RegisterSearchServiceServer(gs, grpcapi.NewServer(svc, testConfig, grpcapi.Info{InstanceID: "test-1"}, metrics.Nop{}))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return searchv1.NewSearchServiceClient(conn)
}

// TestWritesReturnTheirPosition: Import, DeleteThings and DeleteCollection
// answer with the token of the write position after the write.
func TestWritesReturnTheirPosition(t *testing.T) {
	t.Parallel()
	rw := &fakeReplica{position: 0x16_B374D848}
	client := serveConsistent(t, &fakeService{}, rw)
	ctx := context.Background()
	want := geo.EncodeConsistencyToken(rw.position)

	stream, err := client.Import(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&searchv1.ImportRequest{Name: "a", GeometryGeojson: `{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}`}); err != nil {
		t.Fatal(err)
	}
	ir, err := stream.CloseAndRecv()
	if err != nil {
		t.Fatal(err)
	}
	dr, err := client.DeleteThings(ctx, &searchv1.DeleteThingsRequest{Ids: []int64{1}})
	if err != nil {
		t.Fatal(err)
	}
	cr, err := client.DeleteCollection(ctx, &searchv1.DeleteCollectionRequest{Name: "x"})
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string]string{"Import": ir.GetConsistencyToken(), "DeleteThings": dr.GetConsistencyToken(), "DeleteCollection": cr.GetConsistencyToken()} {
		if got != want {
			t.Errorf("%s: consistency_token %q, want %q", name, got, want)
		}
	}
	if _, err := client.DeleteCollection(ctx, &searchv1.DeleteCollectionRequest{Name: "nope"}); status.Code(err) != codes.NotFound {
		t.Errorf("a failed write: %v, want NotFound", err)
	}
}

// TestReadsWaitForTheirToken: every read that takes a token waits for its
// position before answering; without a token nothing waits; a token that
// is not one is INVALID_ARGUMENT before anything is read; a replica that
// does not catch up fails the read with the replica's code.
func TestReadsWaitForTheirToken(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tok := geo.EncodeConsistencyToken(42)
	reads := map[string]func(c searchv1.SearchServiceClient, token string) error{
		"Search": func(c searchv1.SearchServiceClient, token string) error {
			_, err := c.Search(ctx, &searchv1.SearchRequest{Query: "a", ConsistencyToken: token})
			return err
		},
		"SearchStream": func(c searchv1.SearchServiceClient, token string) error {
			s, err := c.SearchStream(ctx, &searchv1.SearchRequest{Query: "a", ConsistencyToken: token})
			if err != nil {
				return err
			}
			for {
				if _, err := s.Recv(); err == io.EOF {
					return nil
				} else if err != nil {
					return err
				}
			}
		},
		"GetThing": func(c searchv1.SearchServiceClient, token string) error {
			_, err := c.GetThing(ctx, &searchv1.GetThingRequest{Id: 1, ConsistencyToken: token})
			return err
		},
		"Locate": func(c searchv1.SearchServiceClient, token string) error {
			s, err := c.Locate(ctx)
			if err != nil {
				return err
			}
			if err := s.Send(&searchv1.LocateRequest{Options: &searchv1.LocateOptions{ConsistencyToken: token}, Point: &searchv1.Point{Lat: 1, Lng: 1}}); err != nil {
				return err
			}
			if err := s.CloseSend(); err != nil {
				return err
			}
			for {
				if _, err := s.Recv(); err == io.EOF {
					return nil
				} else if err != nil {
					return err
				}
			}
		},
	}
	for name, read := range reads {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rw := &fakeReplica{}
			client := serveConsistent(t, &fakeService{things: things(3)}, rw)
			if err := read(client, ""); err != nil {
				t.Fatalf("without a token: %v", err)
			}
			if got := rw.waits(); len(got) != 0 {
				t.Fatalf("without a token the read waited for %v", got)
			}
			if err := read(client, tok); err != nil {
				t.Fatalf("with a token: %v", err)
			}
			if got := rw.waits(); len(got) != 1 || got[0] != 42 {
				t.Fatalf("with a token the read waited for %v, want [42]", got)
			}
			if err := read(client, "garbage"); status.Code(err) != codes.InvalidArgument {
				t.Fatalf("with a garbage token: %v, want InvalidArgument", err)
			}
			if got := rw.waits(); len(got) != 1 {
				t.Fatalf("a garbage token waited: %v", got)
			}
			rw.err = geo.Errorf(geo.Unavailable, "replica behind")
			if err := read(client, tok); status.Code(err) != codes.Unavailable {
				t.Fatalf("with the replica behind: %v, want Unavailable", err)
			}
		})
	}
}
