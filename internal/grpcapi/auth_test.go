package grpcapi_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/grpcapi"
	"github.com/geosearch/search/internal/metrics"
)

const (
	readToken  = "read-0f6c2a9d1e"
	writeToken = "write-7b41e8c350"
	wrongToken = "wrong-2d9a77f104"
)

// calls makes one call of each kind with token (none when empty) and
// returns their codes.
func calls(t *testing.T, conn *grpc.ClientConn, token string) map[string]codes.Code {
	t.Helper()
	ctx := context.Background()
	if token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	client := searchv1.NewSearchServiceClient(conn)
	got := map[string]codes.Code{}
	_, err := client.Search(ctx, &searchv1.SearchRequest{Query: "a"})
	got["Search"] = status.Code(err)
	_, err = client.Monitor(ctx, &searchv1.MonitorRequest{})
	got["Monitor"] = status.Code(err)
	stream, err := client.SearchStream(ctx, &searchv1.SearchRequest{Query: "a"})
	if err == nil {
		_, err = stream.Recv()
	}
	got["SearchStream"] = status.Code(err)
	imp, err := client.Import(ctx)
	if err == nil {
		_, err = imp.CloseAndRecv()
	}
	got["Import"] = status.Code(err)
	_, err = client.GetThing(ctx, &searchv1.GetThingRequest{Id: 1})
	got["GetThing"] = status.Code(err)
	_, err = client.ListCollections(ctx, &searchv1.ListCollectionsRequest{})
	got["ListCollections"] = status.Code(err)
	_, err = client.DeleteThings(ctx, &searchv1.DeleteThingsRequest{Ids: []int64{1}})
	got["DeleteThings"] = status.Code(err)
	_, err = client.DeleteCollection(ctx, &searchv1.DeleteCollectionRequest{Name: "c"})
	got["DeleteCollection"] = status.Code(err)
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	got["Health"] = status.Code(err)
	return got
}

func TestTokensSeparateReadsFromWrites(t *testing.T) {
	t.Parallel()
	svc := &fakeService{things: []geo.Thing{{ID: 1, Name: "a"}}}
	ok, unauth, denied := codes.OK, codes.Unauthenticated, codes.PermissionDenied
	type want map[string]codes.Code
	// rw is the outcome of every read and every write; health is open.
	rw := func(r, w codes.Code) want {
		return want{"Search": r, "Monitor": r, "SearchStream": r, "GetThing": r, "ListCollections": r,
			"Import": w, "DeleteThings": w, "DeleteCollection": w, "Health": ok}
	}
	all := func(c codes.Code) want { return rw(c, c) }
	cases := []struct {
		name        string
		read, write []string
		token       string
		want        want
		listen      string // LISTEN_ADDR; empty: loopback
		allowOpen   bool   // ALLOW_OPEN_WRITES
	}{
		{"no tokens configured", nil, nil, "", all(ok), "", false},
		{"write tokens only, no token", nil, []string{writeToken}, "", rw(ok, unauth), "", false},
		{"write tokens only, wrong token", nil, []string{writeToken}, wrongToken, rw(ok, unauth), "", false},
		{"write tokens only, write token", nil, []string{writeToken}, writeToken, all(ok), "", false},
		{"both, no token", []string{readToken}, []string{writeToken}, "", all(unauth), "", false},
		{"both, wrong token", []string{readToken}, []string{writeToken}, wrongToken, all(unauth), "", false},
		{"both, a prefix of the read token", []string{readToken}, []string{writeToken}, readToken[:5], all(unauth), "", false},
		{"both, read token", []string{readToken}, []string{writeToken}, readToken, rw(ok, denied), "", false},
		{"both, write token", []string{readToken}, []string{writeToken}, writeToken, all(ok), "", false},
		{"second of two write tokens", nil, []string{"old-token", writeToken}, writeToken, all(ok), "", false},
		{"read tokens only, read token", []string{readToken}, nil, readToken, rw(ok, denied), "", false},
		{"no tokens, every interface", nil, nil, "", rw(ok, denied), ":50051", false},
		{"no tokens, a host's address", nil, nil, "", rw(ok, denied), "10.1.2.3:50051", false},
		{"no tokens, every interface, open writes allowed", nil, nil, "", all(ok), ":50051", true},
		{"no tokens, IPv6 loopback", nil, nil, "", all(ok), "[::1]:50051", false},
		{"no tokens, localhost", nil, nil, "", all(ok), "localhost:50051", false},
		{"write tokens, every interface, write token", nil, []string{writeToken}, writeToken, all(ok), ":50051", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig
			cfg.ReadTokens, cfg.WriteTokens = tc.read, tc.write
			if tc.listen != "" { // Auth reads it; the test server listens on loopback
				cfg.ListenAddr = tc.listen
			}
			cfg.AllowOpenWrites = tc.allowOpen
			conn, logs := serveWith(t, svc, cfg, grpc.WithTransportCredentials(insecure.NewCredentials()))
			got := calls(t, conn, tc.token)
			for method, code := range tc.want {
				if got[method] != code {
					t.Errorf("%s: %s, want %s", method, got[method], code)
				}
			}
			for _, secret := range []string{readToken, writeToken, wrongToken, "old-token"} {
				if strings.Contains(logs.String(), secret) {
					t.Errorf("the server's log holds the token %q", secret)
				}
			}
		})
	}
}

func TestRefusalsSayWhatIsMissingButNotTheToken(t *testing.T) {
	t.Parallel()
	cfg := testConfig
	cfg.ReadTokens, cfg.WriteTokens = []string{readToken}, []string{writeToken}
	conn, _ := serveWith(t, &fakeService{}, cfg, grpc.WithTransportCredentials(insecure.NewCredentials()))
	client := searchv1.NewSearchServiceClient(conn)
	for _, tc := range []struct{ token, want string }{
		{"", `this call needs a token: send metadata "authorization: Bearer <token>"`},
		{wrongToken, "the token is not valid"},
		{readToken, "Import needs a write token; this token may only read"},
	} {
		ctx := context.Background()
		if tc.token != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tc.token)
		}
		imp, err := client.Import(ctx)
		if err == nil {
			_, err = imp.CloseAndRecv()
		}
		if msg := status.Convert(err).Message(); msg != tc.want {
			t.Errorf("Import with %q: message %q, want %q", tc.token, msg, tc.want)
		}
	}
}

// TestEveryMethodHasAnAccessClass walks the service descriptor: a method
// added to search.v1 without an entry in the access table fails here, and
// the lifecycle methods are classified as the README documents.
func TestEveryMethodHasAnAccessClass(t *testing.T) {
	t.Parallel()
	want := map[string]grpcapi.Access{
		"Search": grpcapi.Read, "SearchStream": grpcapi.Read, "Monitor": grpcapi.Read,
		"GetThing": grpcapi.Read, "ListCollections": grpcapi.Read, "Locate": grpcapi.Read,
		"Import": grpcapi.Write, "DeleteThings": grpcapi.Write, "DeleteCollection": grpcapi.Write,
		"Track": grpcapi.Write, "WatchEvents": grpcapi.Read,
	}
	services := searchv1.File_search_v1_search_proto.Services()
	for i := range services.Len() {
		methods := services.Get(i).Methods()
		for j := range methods.Len() {
			m := methods.Get(j)
			full := fmt.Sprintf("/%s/%s", services.Get(i).FullName(), m.Name())
			got, ok := grpcapi.MethodAccess(full)
			if !ok {
				t.Errorf("%s has no access class: add it to the table in internal/grpcapi/auth.go (and to this test and the README)", full)
				continue
			}
			if w, known := want[string(m.Name())]; !known || got != w {
				t.Errorf("%s is %s; this test expects %v (known: %v)", full, got, w, known)
			}
		}
	}
}

// TestUnclassifiedMethodIsRefused serves a method that is not in the access
// table: it is refused even with no token configured.
func TestUnclassifiedMethodIsRefused(t *testing.T) {
	t.Parallel()
	cfg := testConfig
	serverOpts, err := grpcapi.ServerOptions(cfg, slog.New(slog.DiscardHandler), slog.New(slog.DiscardHandler), metrics.Nop{}, grpcapi.NewAuth(cfg))
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(serverOpts...)
	called := false
	gs.RegisterService(&grpc.ServiceDesc{
		ServiceName: "test.Unlisted",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{MethodName: "Call", Handler: func(srv any, ctx context.Context, dec func(any) error, in grpc.UnaryServerInterceptor) (any, error) {
			req := &emptypb.Empty{}
			if err := dec(req); err != nil {
				return nil, err
			}
			h := func(context.Context, any) (any, error) { called = true; return &emptypb.Empty{}, nil }
			return in(ctx, req, &grpc.UnaryServerInfo{FullMethod: "/test.Unlisted/Call"}, h)
		}}},
	}, struct{}{})
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
	defer conn.Close()
	err = conn.Invoke(context.Background(), "/test.Unlisted/Call", &emptypb.Empty{}, &emptypb.Empty{})
	if status.Code(err) != codes.PermissionDenied || called {
		t.Errorf("unlisted method: %v (handler called: %v), want PermissionDenied and no call", err, called)
	}
}
