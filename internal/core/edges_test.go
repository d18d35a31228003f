package core_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/core"
	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/grpcapi"
	"github.com/geosearch/search/internal/httpapi"
	"github.com/geosearch/search/internal/metrics"
)

// failing is a geo.SearchService with one collection, "c", whose searches
// fail with err (none: an empty page).
type failing struct{ err error }

func (f failing) Search(context.Context, geo.Query) (geo.Page, error) { return geo.Page{}, f.err }
func (f failing) Locate(_ context.Context, q geo.LocateQuery) ([][]geo.Thing, error) {
	return make([][]geo.Thing, len(q.Points)), f.err
}
func (f failing) Get(context.Context, geo.ThingRef, bool, geo.Output) (geo.Thing, error) {
	return geo.Thing{}, f.err
}
func (f failing) Import(context.Context, geo.ImportOptions, geo.FeatureSource) (geo.ImportResult, error) {
	return geo.ImportResult{}, f.err
}
func (f failing) Delete(context.Context, geo.DeleteRequest) (int64, error) { return 0, f.err }
func (f failing) DeleteCollection(context.Context, string) (int64, error)  { return 0, f.err }
func (f failing) Stats(context.Context) (geo.Stats, error)                 { return geo.Stats{}, f.err }
func (f failing) Ping(context.Context) error                               { return nil }
func (f failing) Collections(ctx context.Context) ([]geo.Collection, error) {
	c, err := f.Collection(ctx, "c")
	return []geo.Collection{c}, err
}
func (f failing) Collection(_ context.Context, name string) (geo.Collection, error) {
	if name != "c" {
		return geo.Collection{}, geo.Errorf(geo.NotFound, "there is no collection %q", name)
	}
	return geo.Collection{Name: "c", Count: 1, Updated: time.Unix(0, 0)}, nil
}

var grpcConfig = grpcapi.Config{
	DefaultPageSize: 50, MaxPageSize: 1000, MaxMessageBytes: 4 << 20, MaxFeatureVertices: 1000,
	MaxImportFeatures: 1000, DefaultTimeout: 10 * time.Second, StreamSendTimeout: 10 * time.Second,
	ShutdownTimeout: time.Second, HealthInterval: time.Second,
	MaxConcurrentImports: 2, ImportIdleTimeout: 10 * time.Second, ImportMaxDuration: time.Minute,
	MaxConcurrentStreams: 100, KeepaliveTime: time.Minute, KeepaliveTimeout: 20 * time.Second,
	LocateBatchSize: 100, LocateBatchWait: 2 * time.Millisecond,
}

// edges serves svc over gRPC (on loopback) and HTTP (the API's handler).
func edges(t *testing.T, svc geo.SearchService) (searchv1.SearchServiceClient, http.Handler) {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	opts, err := grpcapi.ServerOptions(grpcConfig, logger, logger, metrics.Nop{}, grpcapi.NewAuth(grpcConfig))
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(opts...)
	searchv1.RegisterSearchServiceServer(gs, grpcapi.NewServer(svc, grpcConfig, grpcapi.Info{InstanceID: "edges"}, metrics.Nop{}))
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
	deps := httpapi.Deps{Logger: logger}
	if pl, ok := svc.(geo.PropertyLister); ok {
		deps.Properties = pl // the queryables of items' property filters
	}
	hs, err := httpapi.New(svc, httpapi.Config{ListenAddr: "127.0.0.1:0", ServiceName: "edges", MaxBodyBytes: 1 << 20},
		httpapi.Limits{DefaultPageSize: 50, MaxPageSize: 1000, LocateBatchSize: 100, LocateBatchWait: 2 * time.Millisecond},
		deps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hs.Close)
	return searchv1.NewSearchServiceClient(conn), hs.Handler()
}

func get(t *testing.T, h http.Handler, path string) *http.Response {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Result()
}

// TestEveryDomainCodeIsTheSameOverBothEdges walks geo's codes: a search
// and a Locate failing with each one answer the table's gRPC code over
// gRPC (unary Search, the Locate stream) and its HTTP status over HTTP
// (items, /locate), with the same message (the domain error's user
// message; its cause is logged, never shown).
func TestEveryDomainCodeIsTheSameOverBothEdges(t *testing.T) {
	t.Parallel()
	walked := 0
	for c := geo.Code(0); c == geo.Internal || c.String() != geo.Internal.String(); c++ {
		walked++
		t.Run(c.String(), func(t *testing.T) {
			t.Parallel()
			msg := fmt.Sprintf("the store says %s", c)
			client, h := edges(t, failing{err: geo.Wrap(c, io.ErrUnexpectedEOF, msg)})
			want := core.StatusOf(c)

			_, err := client.Search(context.Background(), &searchv1.SearchRequest{Collections: []string{"c"}})
			if st := status.Convert(err); st.Code() != want.GRPC || st.Message() != msg {
				t.Errorf("gRPC: %s %q, want %s %q", st.Code(), st.Message(), want.GRPC, msg)
			}

			resp := get(t, h, "/collections/c/items")
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != want.HTTP || !strings.Contains(string(body), msg) {
				t.Errorf("HTTP: %d %s, want %d with %q", resp.StatusCode, body, want.HTTP, msg)
			}
			if got := resp.Header.Get("Retry-After") != ""; got != want.RetryAfter {
				t.Errorf("HTTP: Retry-After %q, want one: %v", resp.Header.Get("Retry-After"), want.RetryAfter)
			}

			// The streams' path: gRPC Locate's status, HTTP /locate's.
			if st := status.Convert(locateOnce(t, client)); st.Code() != want.GRPC || st.Message() != msg {
				t.Errorf("gRPC Locate: %s %q, want %s %q", st.Code(), st.Message(), want.GRPC, msg)
			}
			resp = get(t, h, "/locate?lat=1&lng=1")
			body, _ = io.ReadAll(resp.Body)
			if resp.StatusCode != want.HTTP || !strings.Contains(string(body), msg) {
				t.Errorf("HTTP /locate: %d %s, want %d with %q", resp.StatusCode, body, want.HTTP, msg)
			}
			if got := resp.Header.Get("Retry-After") != ""; got != want.RetryAfter {
				t.Errorf("HTTP /locate: Retry-After %q, want one: %v", resp.Header.Get("Retry-After"), want.RetryAfter)
			}
		})
	}
	if walked < 11 {
		t.Errorf("walked %d codes, want every one of geo's (at least 11)", walked)
	}
}

// locateOnce sends one point over a gRPC Locate stream and returns how
// the stream ended (nil: it ended well).
func locateOnce(t *testing.T, client searchv1.SearchServiceClient) error {
	t.Helper()
	stream, err := client.Locate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&searchv1.LocateRequest{Id: "p", Point: &searchv1.Point{Lat: 1, Lng: 1}}); err != nil {
		t.Fatal(err)
	}
	_ = stream.CloseSend()
	for {
		if _, err := stream.Recv(); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
}

// TestTheSameBadInputsGetTheSameCodes sends each bad input over both
// edges, validated before the store is asked: the codes match, by the
// table.
func TestTheSameBadInputsGetTheSameCodes(t *testing.T) {
	t.Parallel()
	client, h := edges(t, failing{})
	long := strings.Repeat("x", geo.MaxQueryLength+1)
	tests := []struct {
		name string
		grpc *searchv1.SearchRequest
		http string
		want geo.Code
	}{
		{"bbox upside down", &searchv1.SearchRequest{Collections: []string{"c"}, Bbox: &searchv1.BoundingBox{MinLng: 0, MinLat: 10, MaxLng: 1, MaxLat: 5}},
			"/collections/c/items?bbox=0,10,1,5", geo.Invalid},
		{"bbox off the globe", &searchv1.SearchRequest{Collections: []string{"c"}, Bbox: &searchv1.BoundingBox{MinLng: 0, MinLat: 0, MaxLng: 200, MaxLat: 5}},
			"/collections/c/items?bbox=0,0,200,5", geo.Invalid},
		{"query too long", &searchv1.SearchRequest{Collections: []string{"c"}, Query: long},
			"/collections/c/items?q=" + long, geo.Invalid},
		{"NUL in the query", &searchv1.SearchRequest{Collections: []string{"c"}, Query: "a\x00b"},
			"/collections/c/items?q=a%00b", geo.Invalid},
		{"malformed page token", &searchv1.SearchRequest{Collections: []string{"c"}, PageToken: "not a token!"},
			"/collections/c/items?cursor=" + url.QueryEscape("not a token!"), geo.Invalid},
		{"negative page size", &searchv1.SearchRequest{Collections: []string{"c"}, PageSize: -1},
			"/collections/c/items?limit=-1", geo.Invalid},
		{"latitude off the globe", &searchv1.SearchRequest{Point: &searchv1.Point{Lat: 91, Lng: 0}},
			"/locate?lat=91&lng=0", geo.Invalid},
		{"negative distance", &searchv1.SearchRequest{Point: &searchv1.Point{Lat: 1, Lng: 1}, MaxDistanceM: -1},
			"/locate?lat=1&lng=1&max_distance_m=-1", geo.Invalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			want := core.StatusOf(tt.want)
			_, err := client.Search(context.Background(), tt.grpc)
			if got := status.Code(err); got != want.GRPC {
				t.Errorf("gRPC: %s (%v), want %s", got, err, want.GRPC)
			}
			resp := get(t, h, tt.http)
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != want.HTTP {
				t.Errorf("HTTP: %d %s, want %d", resp.StatusCode, body, want.HTTP)
			}
		})
	}
}

// recording is a store that answers every Locate with nothing and keeps
// the last query it was asked.
type recording struct {
	failing
	mu   sync.Mutex
	last geo.LocateQuery
}

func (r *recording) Locate(_ context.Context, q geo.LocateQuery) ([][]geo.Thing, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.last = q
	r.last.Points = nil
	return make([][]geo.Thing, len(q.Points)), nil
}

func (r *recording) lastLocate() geo.LocateQuery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

// httpLocateParams is how HTTP's /locate says each field of gRPC's
// LocateOptions: a query parameter and a valid value that is not the
// default, or (no parameter) why HTTP has none.
var httpLocateParams = map[string]struct{ param, value, none string }{
	"collections":          {param: "collections", value: "c"},
	"query":                {param: "q", value: "x"},
	"limit":                {param: "limit", value: "3"},
	"include_geometry":     {param: "geometry", value: "true"},
	"max_distance_m":       {param: "max_distance_m", value: "1000"},
	"where":                {none: "property filters are OGC items' (queryables); /locate has none yet"},
	"read_mask":            {none: "/locate answers a fixed shape (thingJSON)"},
	"simplify_tolerance":   {none: "/locate answers a fixed shape (thingJSON)"},
	"coordinate_precision": {none: "/locate answers a fixed shape (thingJSON)"},
	"consistency_token":    {none: "the Consistency-Token header, for every read route"},
}

// TestEveryLocateOptionIsHTTPsToo walks the fields of gRPC's LocateOptions:
// each has its /locate parameter, which set alone changes the query the
// store is asked, or a reason HTTP has none; a new field without either
// fails.
func TestEveryLocateOptionIsHTTPsToo(t *testing.T) {
	t.Parallel()
	store := &recording{}
	_, h := edges(t, store)
	locate := func(param string) geo.LocateQuery {
		t.Helper()
		resp := get(t, h, "/locate?lat=1&lng=1"+param)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("/locate with %q: %d %s", param, resp.StatusCode, body)
		}
		return store.lastLocate()
	}
	base := locate("")
	fields := (&searchv1.LocateOptions{}).ProtoReflect().Descriptor().Fields()
	for i := range fields.Len() {
		name := string(fields.Get(i).Name())
		p, ok := httpLocateParams[name]
		switch {
		case !ok:
			t.Errorf("LocateOptions.%s has no line in httpLocateParams: give /locate its parameter, or say why HTTP has none", name)
		case p.param != "":
			if got := locate("&" + p.param + "=" + url.QueryEscape(p.value)); reflect.DeepEqual(got, base) {
				t.Errorf("/locate's %s (LocateOptions.%s) changed nothing the store was asked: %+v", p.param, name, got)
			}
		}
	}
}
