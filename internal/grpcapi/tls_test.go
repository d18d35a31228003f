package grpcapi_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/grpcapi"
	"github.com/geosearch/search/internal/grpcapi/grpcapitest"
)

// searchOver serves svc with cfg and makes one Search through a client with
// tlsc and, when token is set, a bearer token.
func searchOver(t *testing.T, cfg grpcapi.Config, tlsc grpcapi.ClientTLS, token string) error {
	t.Helper()
	opts, err := tlsc.DialOptions(token)
	if err != nil {
		t.Fatal(err)
	}
	conn, _ := serveWith(t, &fakeService{things: []geo.Thing{{ID: 1, Name: "a"}}}, cfg, opts...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = searchv1.NewSearchServiceClient(conn).Search(ctx, &searchv1.SearchRequest{Query: "a"})
	return err
}

func TestTLSVerifiesTheServerAndOptionallyTheClient(t *testing.T) {
	t.Parallel()
	ca := grpcapitest.NewCA(t, "test")
	other := grpcapitest.NewCA(t, "other")
	server := ca.Server(t, "search-server", "127.0.0.1", "search.internal")
	client := ca.Client(t, "search-client")
	stranger := other.Client(t, "stranger")

	tlsOn := testConfig
	tlsOn.TLSCertFile, tlsOn.TLSKeyFile = server.CertFile, server.KeyFile
	mutual := tlsOn
	mutual.TLSClientCAFile = ca.CertFile
	withToken := tlsOn
	withToken.WriteTokens, withToken.ReadTokens = []string{writeToken}, []string{readToken}

	cases := []struct {
		name    string
		cfg     grpcapi.Config
		client  grpcapi.ClientTLS
		token   string
		code    codes.Code
		message string // part of the error, when it fails
	}{
		{"server verified by its CA", tlsOn, grpcapi.ClientTLS{CAFile: ca.CertFile}, "", codes.OK, ""},
		{"server name given", tlsOn, grpcapi.ClientTLS{CAFile: ca.CertFile, ServerName: "search.internal"}, "", codes.OK, ""},
		{"wrong server name", tlsOn, grpcapi.ClientTLS{CAFile: ca.CertFile, ServerName: "elsewhere.internal"}, "", codes.Unavailable, "certificate is valid for"},
		{"server from an unknown CA", tlsOn, grpcapi.ClientTLS{CAFile: other.CertFile}, "", codes.Unavailable, "certificate signed by unknown authority"},
		{"mutual TLS, client certificate", mutual, grpcapi.ClientTLS{CAFile: ca.CertFile, CertFile: client.CertFile, KeyFile: client.KeyFile}, "", codes.OK, ""},
		{"mutual TLS, no client certificate", mutual, grpcapi.ClientTLS{CAFile: ca.CertFile}, "", codes.Unavailable, ""},
		{"mutual TLS, client of another CA", mutual, grpcapi.ClientTLS{CAFile: ca.CertFile, CertFile: stranger.CertFile, KeyFile: stranger.KeyFile}, "", codes.Unavailable, ""},
		{"token over TLS", withToken, grpcapi.ClientTLS{CAFile: ca.CertFile}, readToken, codes.OK, ""},
		{"no token over TLS", withToken, grpcapi.ClientTLS{CAFile: ca.CertFile}, "", codes.Unauthenticated, "needs a token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := searchOver(t, tc.cfg, tc.client, tc.token)
			if status.Code(err) != tc.code || !strings.Contains(status.Convert(err).Message(), tc.message) {
				t.Errorf("got %v, want %s containing %q", err, tc.code, tc.message)
			}
		})
	}
}

func TestTLSSettingsAreCheckedAtStart(t *testing.T) {
	t.Parallel()
	ca := grpcapitest.NewCA(t, "test")
	pair := ca.Server(t, "s", "127.0.0.1")
	for _, tc := range []struct {
		name          string
		cert, key, ca string
		want          string
	}{
		{"certificate without key", pair.CertFile, "", "", "TLS_CERT_FILE and TLS_KEY_FILE must be set together"},
		{"client CA without TLS", "", "", ca.CertFile, "TLS_CLIENT_CA_FILE needs TLS_CERT_FILE and TLS_KEY_FILE"},
	} {
		cfg := testConfig
		cfg.TLSCertFile, cfg.TLSKeyFile, cfg.TLSClientCAFile = tc.cert, tc.key, tc.ca
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Validate() = %v, want %q", tc.name, err, tc.want)
		}
	}
	cfg := testConfig
	cfg.TLSCertFile, cfg.TLSKeyFile = pair.CertFile, ca.CertFile // a key file that is no key
	if _, err := grpcapi.ServerCredentials(cfg); err == nil || !strings.Contains(err.Error(), "TLS_CERT_FILE/TLS_KEY_FILE") {
		t.Errorf("mismatched key: %v, want an error naming TLS_CERT_FILE/TLS_KEY_FILE", err)
	}
	cfg.TLSKeyFile, cfg.TLSClientCAFile = pair.KeyFile, pair.KeyFile // a CA file with no certificate
	if _, err := grpcapi.ServerCredentials(cfg); err == nil || !strings.Contains(err.Error(), "holds no PEM certificate") {
		t.Errorf("CA file without certificates: %v", err)
	}
}

func TestATokenNeverTravelsWithoutTLS(t *testing.T) {
	t.Parallel()
	conn, err := grpc.NewClient("127.0.0.1:1", grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(grpcapi.BearerToken("t")))
	if err == nil {
		conn.Close()
		t.Fatal("a client sending a bearer token without TLS was built")
	}
}
