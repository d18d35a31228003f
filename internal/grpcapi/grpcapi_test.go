package grpcapi_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/grpcapi"
	"github.com/geosearch/search/internal/metrics"
)

// fakeService is a geo.SearchService over an in-memory sorted list, which
// records the queries it gets and can be told to fail or panic.
type fakeService struct {
	block   bool // Search waits until its context ends
	mu      sync.Mutex
	things  []geo.Thing // in (name, id) order
	queries []geo.Query
	err     error
	panic   bool
}

func (f *fakeService) Search(ctx context.Context, q geo.Query) (geo.Page, error) {
	if f.block {
		<-ctx.Done()
		return geo.Page{}, ctx.Err()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries = append(f.queries, q)
	if f.panic {
		panic("boom")
	}
	if f.err != nil {
		return geo.Page{}, f.err
	}
	var out []geo.Thing
	for _, t := range f.things {
		if q.After != nil && (t.Name < q.After.Name || t.Name == q.After.Name && t.ID <= q.After.ID) {
			continue
		}
		out = append(out, t)
	}
	page := geo.Page{Things: out}
	if len(out) > q.Limit {
		page.Things = out[:q.Limit]
		last := page.Things[q.Limit-1]
		page.Next = &geo.Cursor{Name: last.Name, ID: last.ID}
	}
	return page, nil
}

func (f *fakeService) Import(ctx context.Context, src geo.FeatureSource) (geo.ImportResult, error) {
	var res geo.ImportResult
	for {
		feat, err := src.Next(ctx)
		if errors.Is(err, io.EOF) {
			return res, nil
		}
		if err != nil {
			return geo.ImportResult{}, err
		}
		if feat.Name == "refused by store" {
			res.Rejected = append(res.Rejected, geo.Problem{Index: feat.Index, Name: feat.Name, Reason: "store says no"})
			continue
		}
		res.Imported++
	}
}

func (f *fakeService) Get(_ context.Context, id int64, _ bool) (geo.Thing, error) {
	return geo.Thing{}, geo.Errorf(geo.NotFound, "there is no thing with id %d", id)
}

func (f *fakeService) Stats(context.Context) (geo.Stats, error) { return geo.Stats{Things: 7}, f.err }
func (f *fakeService) Ping(context.Context) error               { return f.err }

func (f *fakeService) lastQuery() geo.Query {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.queries[len(f.queries)-1]
}

var testConfig = grpcapi.Config{
	ListenAddr: "127.0.0.1:0", DefaultPageSize: 10, MaxPageSize: 100,
	MaxMessageBytes: 4 << 20, MaxFeatureVertices: 1000, MaxImportFeatures: 4, DefaultTimeout: 300 * time.Millisecond, StreamSendTimeout: 10 * time.Second,
	ShutdownTimeout: time.Second, HealthInterval: time.Second,
	MaxConcurrentImports: 2, ImportIdleTimeout: 10 * time.Second, ImportMaxDuration: time.Minute,
	MaxConcurrentStreams: 100, KeepaliveTime: time.Minute, KeepaliveTimeout: 20 * time.Second,
}

// serve runs a gRPC server on loopback around svc and returns a client and
// the server's log.
func serve(t *testing.T, svc geo.SearchService) (searchv1.SearchServiceClient, *lockedBuffer) {
	t.Helper()
	conn, logs := serveWith(t, svc, testConfig, grpc.WithTransportCredentials(insecure.NewCredentials()))
	return searchv1.NewSearchServiceClient(conn), logs
}

// serveWith runs a gRPC server configured by cfg, with the health service,
// and returns a connection to it dialled with opts, and the server's log.
func serveWith(t *testing.T, svc geo.SearchService, cfg grpcapi.Config, opts ...grpc.DialOption) (*grpc.ClientConn, *lockedBuffer) {
	t.Helper()
	logs := &lockedBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	serverOpts, err := grpcapi.ServerOptions(cfg, logger, logger, metrics.Nop{}, grpcapi.NewAuth(cfg))
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(serverOpts...)
	searchv1.RegisterSearchServiceServer(gs, grpcapi.NewServer(svc, cfg, grpcapi.Info{InstanceID: "test-1"}, metrics.Nop{}))
	healthpb.RegisterHealthServer(gs, health.NewServer())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, logs
}

func TestErrorsMapToCodesInOnePlace(t *testing.T) {
	t.Parallel()
	secret := errors.New("pq: password authentication failed; SELECT secret FROM vault")
	tests := []struct {
		name    string
		err     error
		code    codes.Code
		message string
	}{
		{"invalid", geo.Errorf(geo.Invalid, "bad thing"), codes.InvalidArgument, "bad thing"},
		{"not found", geo.Errorf(geo.NotFound, "no such thing"), codes.NotFound, "no such thing"},
		{"conflict", geo.Errorf(geo.Conflict, "exists"), codes.AlreadyExists, "exists"},
		{"unavailable", geo.Wrap(geo.Unavailable, secret, "the database is unavailable"), codes.Unavailable, "the database is unavailable"},
		{"timeout", geo.Wrap(geo.Timeout, secret, "too slow"), codes.DeadlineExceeded, "too slow"},
		{"too large", geo.Errorf(geo.TooLarge, "too big"), codes.ResourceExhausted, "too big"},
		{"forbidden", geo.Errorf(geo.Forbidden, "may not"), codes.PermissionDenied, "may not"},
		{"aborted", geo.Wrap(geo.Aborted, secret, "retry the import"), codes.Aborted, "retry the import"},
		{"busy", geo.Errorf(geo.Busy, "too many imports"), codes.ResourceExhausted, "too many imports"},
		{"misconfigured", geo.Wrap(geo.Misconfigured, secret, "the server may not write"), codes.FailedPrecondition, "the server may not write"},
		{"internal hides its cause", geo.Wrap(geo.Internal, secret, "internal error"), codes.Internal, "internal error"},
		{"unclassified hides its cause", fmt.Errorf("search: %w", secret), codes.Internal, "internal error"},
		{"wrapped domain error", fmt.Errorf("a: %w", geo.Errorf(geo.Invalid, "inner")), codes.InvalidArgument, "inner"},
		{"context deadline", fmt.Errorf("search: %w", context.DeadlineExceeded), codes.DeadlineExceeded, "the request's deadline passed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			client, logs := serve(t, &fakeService{err: tt.err})
			_, err := client.Search(context.Background(), &searchv1.SearchRequest{Query: "x"})
			st := status.Convert(err)
			if st.Code() != tt.code || st.Message() != tt.message {
				t.Errorf("got %s %q, want %s %q", st.Code(), st.Message(), tt.code, tt.message)
			}
			if tt.code == codes.Internal && !strings.Contains(logs.String(), "password authentication failed") {
				t.Errorf("internal error cause not logged:\n%s", logs)
			}
		})
	}
}

func TestPanicBecomesInternal(t *testing.T) {
	t.Parallel()
	client, logs := serve(t, &fakeService{panic: true})
	_, err := client.Search(context.Background(), &searchv1.SearchRequest{Query: "x"})
	if st := status.Convert(err); st.Code() != codes.Internal || st.Message() != "internal error" {
		t.Errorf("got %s %q", st.Code(), st.Message())
	}
	if !strings.Contains(logs.String(), "panic: boom") || !strings.Contains(logs.String(), "goroutine") {
		t.Errorf("panic and stack not logged:\n%s", logs)
	}
	// The server survives.
	if _, err := client.Monitor(context.Background(), &searchv1.MonitorRequest{}); err != nil {
		t.Errorf("after panic: %v", err)
	}
}

func things(n int) []geo.Thing {
	out := make([]geo.Thing, n)
	for i := range out {
		out[i] = geo.Thing{ID: int64(i + 1), Name: fmt.Sprintf("thing %04d", i/3)} // names repeat
	}
	return out
}

func TestPageSizeFollowsAIP158(t *testing.T) {
	t.Parallel()
	svc := &fakeService{things: things(5)}
	client, _ := serve(t, svc)
	for _, tt := range []struct {
		size int32
		want int
	}{{0, 10}, {1, 1}, {100, 100}, {101, 100}, {1 << 30, 100}} {
		if _, err := client.Search(context.Background(), &searchv1.SearchRequest{Query: "x", PageSize: tt.size}); err != nil {
			t.Fatal(err)
		}
		if got := svc.lastQuery().Limit; got != tt.want {
			t.Errorf("page_size %d served as %d, want %d", tt.size, got, tt.want)
		}
	}
}

func TestPageTokensWalkAndBindToTheirFilter(t *testing.T) {
	t.Parallel()
	svc := &fakeService{things: things(25)}
	client, _ := serve(t, svc)
	point := &searchv1.Point{Lat: 1, Lng: 2}
	var ids []int64
	req := &searchv1.SearchRequest{Query: "thing", Point: point, PageSize: 4}
	var token string
	for {
		resp, err := client.Search(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		for _, th := range resp.GetThings() {
			ids = append(ids, th.GetId())
		}
		if resp.GetNextPageToken() == "" {
			break
		}
		token = resp.GetNextPageToken()
		req.PageToken = token
	}
	want := make([]int64, 25)
	for i := range want {
		want[i] = int64(i + 1)
	}
	if diff := cmp.Diff(want, ids); diff != "" {
		t.Errorf("walk (-want +got):\n%s", diff)
	}
	for name, other := range map[string]*searchv1.SearchRequest{
		"other query": {Query: "thinG", Point: point, PageToken: token},
		"other point": {Query: "thing", Point: &searchv1.Point{Lat: 1, Lng: 2.0000001}, PageToken: token},
		"no point":    {Query: "thing", PageToken: token},
	} {
		_, err := client.Search(context.Background(), other)
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "different search") {
			t.Errorf("%s: %s %q", name, st.Code(), st.Message())
		}
	}
}

func TestSearchStreamSendsEveryMatchInOrder(t *testing.T) {
	t.Parallel()
	svc := &fakeService{things: things(1234)}
	client, _ := serve(t, svc)
	stream, err := client.SearchStream(context.Background(), &searchv1.SearchRequest{Query: "thing", PageSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for {
		th, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
		if th.GetId() != n {
			t.Fatalf("thing %d has id %d", n, th.GetId())
		}
	}
	if n != 1234 {
		t.Errorf("streamed %d things, want 1234", n)
	}
}

func TestImportMergesRejectionsInIndexOrder(t *testing.T) {
	t.Parallel()
	client, _ := serve(t, &fakeService{})
	stream, err := client.Import(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	square := `{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}`
	for _, req := range []*searchv1.ImportRequest{
		{Name: "ok", GeometryGeojson: square},
		{Name: "refused by store", GeometryGeojson: square},
		{Name: "bad", GeometryGeojson: "{"},
		{Name: "ok too", GeometryGeojson: square},
	} {
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range resp.GetRejected() {
		got = append(got, fmt.Sprintf("%d %s", p.GetIndex(), p.GetName()))
	}
	if diff := cmp.Diff([]string{"1 refused by store", "2 bad"}, got); diff != "" || resp.GetImported() != 2 {
		t.Errorf("imported %d; rejected (-want +got):\n%s", resp.GetImported(), diff)
	}
}

func TestCallsWithoutDeadlineGetTheDefaultOne(t *testing.T) {
	t.Parallel()
	client, _ := serve(t, &fakeService{block: true})
	// The client sets no deadline; the server's default (300ms here) ends
	// the call instead of letting it hang.
	_, err := client.Search(context.Background(), &searchv1.SearchRequest{Query: "x"})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("no client deadline: %v, want DeadlineExceeded from the server's default", err)
	}
}

func TestImportsLargerThanTheLimitFailWhole(t *testing.T) {
	t.Parallel()
	client, _ := serve(t, &fakeService{})
	stream, err := client.Import(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	square := `{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}`
	for i := range 6 { // MaxImportFeatures is 4
		if err := stream.Send(&searchv1.ImportRequest{Name: fmt.Sprint("f", i), GeometryGeojson: square}); err != nil {
			break // the server may end the stream first
		}
	}
	_, err = stream.CloseAndRecv()
	if st := status.Convert(err); st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "more than 4 features (MAX_IMPORT_FEATURES)") {
		t.Errorf("import of 6 with a limit of 4: %s %q, want ResourceExhausted", st.Code(), st.Message())
	}
}
