package grpcapi_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"strconv"
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
	"google.golang.org/protobuf/types/known/structpb"

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
	// importOpts are the options of every import, in order.
	importOpts []geo.ImportOptions
	err        error
	panic      bool
	// locateBatches are the sizes of the Locate calls' batches.
	locateBatches []int
	lastLocate    geo.LocateQuery
	lastGet       geo.Query // Get's geometry and output, in a Query
	blocked       int       // Locate calls waiting for their context to end
}

// locating reports whether a Locate call is blocked in the store.
func (f *fakeService) locating() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.blocked > 0
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
		if q.After != nil && len(q.SortBy) > 0 && t.ID <= q.After.ID {
			continue // a sorted search's cursor: the fake's things are in id order too
		}
		if q.After != nil && len(q.SortBy) == 0 && (t.Name < q.After.Name || t.Name == q.After.Name && t.ID <= q.After.ID) {
			continue
		}
		out = append(out, withGeometry(t, q.IncludeGeometry))
	}
	page := geo.Page{Things: out}
	if q.WithTotal {
		page.Total = int64(len(f.things))
	}
	if len(out) > q.Limit {
		page.Things = out[:q.Limit]
		last := page.Things[q.Limit-1]
		page.Next = &geo.Cursor{Name: last.Name, ID: last.ID}
		for range q.SortBy {
			page.Next.Sort = append(page.Next.Sort, geo.SortValue{Kind: geo.SortNumber, Text: strconv.FormatInt(last.ID, 10)})
		}
	}
	return page, nil
}

// Locate answers every point with its things, at most q.Limit of them.
func (f *fakeService) Locate(ctx context.Context, q geo.LocateQuery) ([][]geo.Thing, error) {
	if f.block {
		f.mu.Lock()
		f.blocked++
		f.mu.Unlock()
		<-ctx.Done()
		f.mu.Lock()
		f.blocked--
		f.mu.Unlock()
		return nil, ctx.Err()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.locateBatches = append(f.locateBatches, len(q.Points))
	f.lastLocate = q
	if f.err != nil {
		return nil, f.err
	}
	out := make([][]geo.Thing, len(q.Points))
	for i := range out {
		for _, t := range f.things[:min(len(f.things), q.Limit)] {
			out[i] = append(out[i], withGeometry(t, q.IncludeGeometry))
		}
	}
	return out, nil
}

// withGeometry returns t without its geometry unless the query asked for
// it, as the store does.
func withGeometry(t geo.Thing, include bool) geo.Thing {
	if !include {
		t.GeometryGeoJSON = ""
	}
	return t
}

func (f *fakeService) Import(ctx context.Context, opts geo.ImportOptions, src geo.FeatureSource) (geo.ImportResult, error) {
	f.mu.Lock()
	f.importOpts = append(f.importOpts, opts)
	f.mu.Unlock()
	res := geo.ImportResult{Collection: opts.Collection}
	for {
		feat, err := src.Next(ctx)
		if errors.Is(err, io.EOF) {
			return res, nil
		}
		if err != nil {
			return geo.ImportResult{}, err
		}
		if feat.Name == "refused by store" {
			res.Rejected.Add(geo.Problem{Index: feat.Index, Name: feat.Name, Reason: "store says no"})
			continue
		}
		res.Imported++
		if strings.HasPrefix(feat.Name, "repaired by store") {
			res.Repaired++
			res.Repairs.Add(geo.Problem{Index: feat.Index, Name: feat.Name, Reason: "made valid with ST_MakeValid (self-intersections or overlapping rings)"})
		}
	}
}

func (f *fakeService) Get(_ context.Context, ref geo.ThingRef, includeGeometry bool, out geo.Output) (geo.Thing, error) {
	f.mu.Lock()
	f.lastGet = geo.Query{IncludeGeometry: includeGeometry, Output: out}
	f.mu.Unlock()
	if f.err != nil {
		return geo.Thing{}, f.err
	}
	ref, err := ref.Normalize()
	if err != nil {
		return geo.Thing{}, err
	}
	for _, th := range f.things {
		if (ref.ID != 0 && th.ID == ref.ID) || (ref.Key != "" && th.Key == ref.Key && th.Collection == ref.Collection) {
			return withGeometry(th, includeGeometry), nil
		}
	}
	return geo.Thing{}, geo.Errorf(geo.NotFound, "no such thing")
}

func (f *fakeService) Delete(_ context.Context, d geo.DeleteRequest) (int64, error) {
	if _, err := d.Normalize(); err != nil {
		return 0, err
	}
	return int64(len(d.IDs) + len(d.Keys)), f.err
}

func (f *fakeService) DeleteCollection(_ context.Context, name string) (int64, error) {
	if name == "nope" {
		return 0, geo.Errorf(geo.NotFound, "there is no collection %q", name)
	}
	return 3, f.err
}

func (f *fakeService) Collections(context.Context) ([]geo.Collection, error) {
	return []geo.Collection{
		{Name: "countries", Count: 2, BBox: &geo.BBox{MinLng: -1, MinLat: -2, MaxLng: 3, MaxLat: 4}, Updated: time.Unix(1700000000, 0)},
		{Name: "empty", Updated: time.Unix(1700000001, 0)},
	}, f.err
}

func (f *fakeService) Collection(ctx context.Context, name string) (geo.Collection, error) {
	list, err := f.Collections(ctx)
	for _, c := range list {
		if c.Name == name {
			return c, err
		}
	}
	return geo.Collection{}, geo.Errorf(geo.NotFound, "there is no collection %q", name)
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
	LocateBatchSize: 100, LocateBatchWait: 2 * time.Millisecond,
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

// TestImportSummaryFitsADefaultClient: 60,000 repaired features, each named
// and explained at length, are summarized within grpc-go's default 4 MiB
// receive limit (listed whole they made 10 MB, and the client failed with
// RESOURCE_EXHAUSTED after the import committed).
func TestImportSummaryFitsADefaultClient(t *testing.T) {
	t.Parallel()
	const n = 60_000
	cfg := testConfig
	cfg.MaxImportFeatures = n + 1
	// Sending 60,000 messages under -race on a loaded machine took longer
	// than testConfig's minute, which this test is not about.
	cfg.ImportMaxDuration = 10 * time.Minute
	conn, _ := serveWith(t, &fakeService{}, cfg, grpc.WithTransportCredentials(insecure.NewCredentials()))
	stream, err := searchv1.NewSearchServiceClient(conn).Import(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	square := `{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}`
	for i := range n {
		name := fmt.Sprintf("repaired by store %d %s", i, strings.Repeat("x", 80))
		if err := stream.Send(&searchv1.ImportRequest{Name: name, GeometryGeojson: square}); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.Send(&searchv1.ImportRequest{Name: "bad", GeometryGeojson: "{"}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		t.Fatalf("import of %d repaired features: %v", n, err)
	}
	got := fmt.Sprintf("imported %d repaired %d, repairs %d of %d, rejected %d of %d, truncated %v",
		resp.GetImported(), resp.GetRepaired(), len(resp.GetRepairs()), resp.GetRepairsCount(),
		len(resp.GetRejected()), resp.GetRejectedCount(), resp.GetTruncated())
	want := fmt.Sprintf("imported %d repaired %d, repairs %d of %d, rejected 1 of 1, truncated true", n, n, geo.MaxListedProblems, n)
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
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

func TestImportOptionsTravelInTheFirstMessage(t *testing.T) {
	t.Parallel()
	square := `{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}`
	opts := &searchv1.ImportOptions{Collection: "zones", Replace: true}
	tests := []struct {
		name     string
		msgs     []*searchv1.ImportRequest
		code     codes.Code
		message  string
		want     geo.ImportOptions
		imported int64
	}{
		{"no options: default", []*searchv1.ImportRequest{{Name: "a", GeometryGeojson: square}}, codes.OK, "", geo.ImportOptions{Collection: "default"}, 1},
		{"options alone first", []*searchv1.ImportRequest{{Options: opts}, {Name: "a", GeometryGeojson: square}}, codes.OK, "", geo.ImportOptions{Collection: "zones", Replace: true}, 1},
		{"options with the first feature", []*searchv1.ImportRequest{{Options: opts, Name: "a", GeometryGeojson: square}, {Name: "b", GeometryGeojson: square}}, codes.OK, "", geo.ImportOptions{Collection: "zones", Replace: true}, 2},
		{"options alone, no feature", []*searchv1.ImportRequest{{Options: opts}}, codes.OK, "", geo.ImportOptions{Collection: "zones", Replace: true}, 0},
		{"options later", []*searchv1.ImportRequest{{Name: "a", GeometryGeojson: square}, {Options: opts, Name: "b", GeometryGeojson: square}}, codes.InvalidArgument, "import options may only be sent in the first message", geo.ImportOptions{Collection: "default"}, 0},
		{"bad collection", []*searchv1.ImportRequest{{Options: &searchv1.ImportOptions{Collection: "Zones"}}}, codes.InvalidArgument, `collection name "Zones" is invalid`, geo.ImportOptions{}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			svc := &fakeService{}
			client, _ := serve(t, svc)
			stream, err := client.Import(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range tt.msgs {
				if err := stream.Send(m); err != nil {
					break
				}
			}
			resp, err := stream.CloseAndRecv()
			st := status.Convert(err)
			if st.Code() != tt.code || !strings.HasPrefix(st.Message(), tt.message) {
				t.Fatalf("got %s %q, want %s %q", st.Code(), st.Message(), tt.code, tt.message)
			}
			if tt.want == (geo.ImportOptions{}) {
				if len(svc.importOpts) != 0 {
					t.Errorf("the store was called with %v", svc.importOpts)
				}
				return
			}
			if len(svc.importOpts) != 1 || svc.importOpts[0] != tt.want {
				t.Errorf("store got options %v, want %v", svc.importOpts, tt.want)
			}
			if err == nil && (resp.GetImported() != tt.imported || resp.GetCollection() != tt.want.Collection) {
				t.Errorf("response %v, want %d imported into %s", resp, tt.imported, tt.want.Collection)
			}
		})
	}
}

func TestSearchFiltersMapToTheDomain(t *testing.T) {
	t.Parallel()
	svc := &fakeService{things: things(3)}
	client, _ := serve(t, svc)
	_, err := client.Search(context.Background(), &searchv1.SearchRequest{
		Collections: []string{"b", "a"},
		Where: []*searchv1.PropertyFilter{{Key: "kind", Values: []*structpb.Value{
			structpb.NewStringValue("lake"), structpb.NewNumberValue(2), structpb.NewBoolValue(true)}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := geo.Filter{Collections: []string{"b", "a"}, Properties: []geo.PropertyFilter{{Key: "kind", Values: []any{"lake", 2.0, true}}}}
	if diff := cmp.Diff(want, svc.lastQuery().Filter); diff != "" {
		t.Errorf("filter (-want +got):\n%s", diff)
	}
	for name, v := range map[string]*structpb.Value{
		"a list": structpb.NewListValue(&structpb.ListValue{}), "an object": structpb.NewStructValue(&structpb.Struct{}), "null": structpb.NewNullValue()} {
		_, err := client.Search(context.Background(), &searchv1.SearchRequest{Where: []*searchv1.PropertyFilter{{Key: "k", Values: []*structpb.Value{v}}}})
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "value 0 is "+name) {
			t.Errorf("value %s: %s %q", name, st.Code(), st.Message())
		}
	}
}

func TestLifecycleCallsMapToTheDomain(t *testing.T) {
	t.Parallel()
	svc := &fakeService{things: []geo.Thing{{ID: 9, Collection: "c", Key: "k", Name: "Nine"}}}
	client, _ := serve(t, svc)
	ctx := context.Background()
	th, err := client.GetThing(ctx, &searchv1.GetThingRequest{Collection: "c", Key: "k"})
	if err != nil || th.GetId() != 9 || th.GetCollection() != "c" {
		t.Errorf("get by key: %v, %v", th, err)
	}
	if _, err := client.GetThing(ctx, &searchv1.GetThingRequest{Id: 10}); status.Code(err) != codes.NotFound {
		t.Errorf("get absent: %v, want NotFound", err)
	}
	if _, err := client.GetThing(ctx, &searchv1.GetThingRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("get nothing: %v, want InvalidArgument", err)
	}
	del, err := client.DeleteThings(ctx, &searchv1.DeleteThingsRequest{Collection: "c", Keys: []string{"k", "l"}})
	if err != nil || del.GetDeleted() != 2 {
		t.Errorf("delete: %v, %v", del, err)
	}
	if _, err := client.DeleteCollection(ctx, &searchv1.DeleteCollectionRequest{Name: "nope"}); status.Code(err) != codes.NotFound {
		t.Errorf("delete absent collection: %v, want NotFound", err)
	}
	list, err := client.ListCollections(ctx, &searchv1.ListCollectionsRequest{})
	if err != nil || len(list.GetCollections()) != 2 {
		t.Fatalf("list: %v, %v", list, err)
	}
	c0, c1 := list.GetCollections()[0], list.GetCollections()[1]
	if c0.GetName() != "countries" || c0.GetCount() != 2 || c0.GetBbox().GetMaxLat() != 4 || c0.GetUpdateTime().GetSeconds() != 1700000000 || c1.GetBbox() != nil {
		t.Errorf("list: %v", list)
	}
}

// TestSpatialFiltersMapToTheDomain: max_distance_m, bbox, area_geojson and
// relation reach the store as the domain's filter, distance_m comes back
// only when the store set it, and each bad value is INVALID_ARGUMENT with
// its reason.
func TestSpatialFiltersMapToTheDomain(t *testing.T) {
	t.Parallel()
	d := 0.0
	svc := &fakeService{things: []geo.Thing{{ID: 1, Name: "a", DistanceM: &d}, {ID: 2, Name: "b"}}}
	client, _ := serve(t, svc)
	ctx := context.Background()
	resp, err := client.Search(ctx, &searchv1.SearchRequest{Point: &searchv1.Point{Lat: 1, Lng: 2}, MaxDistanceM: 5000})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(geo.Filter{Point: &geo.Point{Lat: 1, Lng: 2}, MaxDistanceM: 5000}, svc.lastQuery().Filter); diff != "" {
		t.Errorf("nearest filter (-want +got):\n%s", diff)
	}
	if th := resp.GetThings(); th[0].DistanceM == nil || th[0].GetDistanceM() != 0 || th[1].DistanceM != nil {
		t.Errorf("distances: %v; want 0 (contained) on the first, none on the second", th)
	}
	_, err = client.Search(ctx, &searchv1.SearchRequest{Bbox: &searchv1.BoundingBox{MinLng: 170, MinLat: -20, MaxLng: -170, MaxLat: 0}, Relation: searchv1.Relation_RELATION_WITHIN})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(geo.Filter{BBox: &geo.BBox{MinLng: 170, MinLat: -20, MaxLng: -170, MaxLat: 0}, Relation: geo.Within}, svc.lastQuery().Filter); diff != "" {
		t.Errorf("bbox filter (-want +got):\n%s", diff)
	}
	_, err = client.Search(ctx, &searchv1.SearchRequest{AreaGeojson: `{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}`, Relation: searchv1.Relation_RELATION_CONTAINS})
	if err != nil {
		t.Fatal(err)
	}
	if f := svc.lastQuery().Filter; f.Area == nil || f.Area.GeoJSON() != `{"type":"MultiPolygon","coordinates":[[[[0,0],[1,0],[1,1],[0,0]]]]}` || f.Relation != geo.Contains {
		t.Errorf("area filter: %+v", f)
	}

	point := &searchv1.Point{Lat: 1, Lng: 2}
	box := &searchv1.BoundingBox{MaxLng: 1, MaxLat: 1}
	square := `{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}`
	tests := []struct {
		name string
		req  *searchv1.SearchRequest
		want string
	}{
		{"negative distance", &searchv1.SearchRequest{Point: point, MaxDistanceM: -1}, "max_distance_m must not be negative, got -1"},
		{"NaN distance", &searchv1.SearchRequest{Point: point, MaxDistanceM: math.NaN()}, "max_distance_m must be a finite number, got NaN"},
		{"infinite distance", &searchv1.SearchRequest{Point: point, MaxDistanceM: math.Inf(1)}, "max_distance_m must be a finite number, got +Inf"},
		{"absurd distance", &searchv1.SearchRequest{Point: point, MaxDistanceM: 4e7}, "max_distance_m is 4e+07; the limit is 1000000 (1000 km)"},
		{"distance without a point", &searchv1.SearchRequest{Query: "x", MaxDistanceM: 10}, "max_distance_m needs a point to measure from"},
		{"bbox min lat over max lat", &searchv1.SearchRequest{Bbox: &searchv1.BoundingBox{MinLng: 0, MinLat: 10, MaxLng: 1, MaxLat: 5}}, "bbox min lat (10) must not be greater than max lat (5)"},
		{"area not a polygon", &searchv1.SearchRequest{AreaGeojson: `{"type":"LineString","coordinates":[[0,0],[1,1]]}`}, "area type LineString is not supported; want Polygon or MultiPolygon"},
		{"area of 200,000 vertices", &searchv1.SearchRequest{AreaGeojson: `{"type":"Polygon","coordinates":[[` + strings.Repeat("[0,0],", 199_999) + `[0,0]]]}`}, "area has 200000 vertices; the limit is 100000"},
		{"point and bbox", &searchv1.SearchRequest{Point: point, Bbox: box}, "a search takes a point or a bbox, not both"},
		{"point and area", &searchv1.SearchRequest{Point: point, AreaGeojson: square}, "a search takes one of a point, a bbox and an area, not several"},
		{"bbox and area", &searchv1.SearchRequest{Bbox: box, AreaGeojson: square}, "a search takes one of a point, a bbox and an area, not several"},
		{"relation without an area", &searchv1.SearchRequest{Query: "x", Relation: searchv1.Relation_RELATION_WITHIN}, "relation within needs a bbox or an area"},
		{"unknown relation", &searchv1.SearchRequest{Bbox: box, Relation: 9}, "relation 9 is not one of RELATION_INTERSECTS, RELATION_WITHIN, RELATION_CONTAINS"},
	}
	for _, tt := range tests {
		for _, stream := range []bool{false, true} {
			var err error
			if stream {
				var s grpc.ServerStreamingClient[searchv1.Thing]
				if s, err = client.SearchStream(ctx, tt.req); err == nil {
					_, err = s.Recv()
				}
			} else {
				_, err = client.Search(ctx, tt.req)
			}
			if st := status.Convert(err); st.Code() != codes.InvalidArgument || st.Message() != tt.want {
				t.Errorf("%s (stream %v): %s %q, want INVALID_ARGUMENT %q", tt.name, stream, st.Code(), st.Message(), tt.want)
			}
		}
	}
}
