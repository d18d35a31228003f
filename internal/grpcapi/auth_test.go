package grpcapi_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/geo"
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
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	got["Health"] = status.Code(err)
	return got
}

func TestTokensSeparateReadsFromWrites(t *testing.T) {
	t.Parallel()
	svc := &fakeService{things: []geo.Thing{{ID: 1, Name: "a"}}}
	ok, unauth, denied := codes.OK, codes.Unauthenticated, codes.PermissionDenied
	type want map[string]codes.Code
	all := func(c codes.Code) want {
		return want{"Search": c, "Monitor": c, "SearchStream": c, "Import": c, "Health": ok}
	}
	cases := []struct {
		name        string
		read, write []string
		token       string
		want        want
	}{
		{"no tokens configured", nil, nil, "", all(ok)},
		{"write tokens only, no token", nil, []string{writeToken}, "", want{"Search": ok, "Monitor": ok, "SearchStream": ok, "Import": unauth, "Health": ok}},
		{"write tokens only, wrong token", nil, []string{writeToken}, wrongToken, want{"Search": ok, "Monitor": ok, "SearchStream": ok, "Import": unauth, "Health": ok}},
		{"write tokens only, write token", nil, []string{writeToken}, writeToken, all(ok)},
		{"both, no token", []string{readToken}, []string{writeToken}, "", all(unauth)},
		{"both, wrong token", []string{readToken}, []string{writeToken}, wrongToken, all(unauth)},
		{"both, a prefix of the read token", []string{readToken}, []string{writeToken}, readToken[:5], all(unauth)},
		{"both, read token", []string{readToken}, []string{writeToken}, readToken, want{"Search": ok, "Monitor": ok, "SearchStream": ok, "Import": denied, "Health": ok}},
		{"both, write token", []string{readToken}, []string{writeToken}, writeToken, all(ok)},
		{"second of two write tokens", nil, []string{"old-token", writeToken}, writeToken, all(ok)},
		{"read tokens only, read token", []string{readToken}, nil, readToken, want{"Search": ok, "Monitor": ok, "SearchStream": ok, "Import": denied, "Health": ok}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig
			cfg.ReadTokens, cfg.WriteTokens = tc.read, tc.write
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
