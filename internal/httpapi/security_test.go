package httpapi_test

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/grpcapi/grpcapitest"
)

// TestTokens: with READ_TOKENS and WRITE_TOKENS set, data needs a read or
// write token; the landing page, conformance, the API definition, the map
// and readiness stay open (they show no data, and Consul's check and a
// browser's page load send no token).
func TestTokens(t *testing.T) {
	t.Parallel()
	a := start(t, func(s *setup) { s.tokens = geo.NewTokens([]string{"reader-secret"}, []string{"writer-secret"}) })
	for _, path := range []string{"/", "/conformance", "/api", "/map", "/map/leaflet/leaflet.js", "/readyz"} {
		if r := a.get(t, path); r.status != http.StatusOK {
			t.Errorf("%s without a token: %d, want 200", path, r.status)
		}
	}
	for _, path := range []string{"/collections", "/collections/default", "/collections/default/queryables", "/collections/default/items", "/collections/default/items?iso_n3=250", "/collections/default/items/1", "/locate?lat=1&lng=2"} {
		r := a.get(t, path)
		wantException(t, path+" without a token", r, http.StatusUnauthorized, `send the header "Authorization: Bearer <token>"`)
		if r.header.Get("WWW-Authenticate") != `Bearer realm="search"` {
			t.Errorf("%s: WWW-Authenticate %q", path, r.header.Get("WWW-Authenticate"))
		}
		r = a.get(t, path, "Authorization", "Bearer guess")
		wantException(t, path+" with a wrong token", r, http.StatusUnauthorized, "the token is not valid")
		if !strings.Contains(r.header.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Errorf("%s: WWW-Authenticate %q", path, r.header.Get("WWW-Authenticate"))
		}
		wantException(t, path+" with a Basic header", a.get(t, path, "Authorization", "Basic cmVhZGVyLXNlY3JldA=="), http.StatusUnauthorized, "needs a token")
		for _, tok := range []string{"reader-secret", "writer-secret"} {
			if r := a.get(t, path, "Authorization", "bearer "+tok); r.status != http.StatusOK {
				t.Errorf("%s with %s: %d %s", path, tok, r.status, r.body)
			}
		}
	}
	r := a.do(t, http.MethodPost, "/locate", strings.NewReader(`{"lat":1,"lng":2}`), "Content-Type", "application/x-ndjson", "Authorization", "Bearer reader-secret")
	if r.status != http.StatusOK {
		t.Errorf("POST /locate with a read token: %d %s", r.status, r.body)
	}
	for _, rec := range a.access.records(t) {
		if msg, _ := rec["message"].(string); strings.Contains(msg+rec["path"].(string), "secret") {
			t.Errorf("a token in the access log: %v", rec)
		}
	}
}

// TestTLS: with gRPC's TLS settings (here with client certificates
// required), the API answers HTTPS only, and only to clients with a
// certificate from the client CA.
func TestTLS(t *testing.T) {
	t.Parallel()
	ca := grpcapitest.NewCA(t, "test")
	server := ca.Server(t, "localhost", "127.0.0.1")
	clientCA := grpcapitest.NewCA(t, "clients")
	client := clientCA.Client(t, "a client")
	cert, err := tls.LoadX509KeyPair(server.CertFile, server.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := func(file string) *x509.CertPool {
		pem, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		p := x509.NewCertPool()
		p.AppendCertsFromPEM(pem)
		return p
	}
	a := start(t, func(s *setup) {
		s.fixture = ""
		s.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, ClientCAs: pool(clientCA.CertFile), ClientAuth: tls.RequireAndVerifyClientCert}
	})
	clientCert, err := tls.LoadX509KeyPair(client.CertFile, client.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	withCert := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool(ca.CertFile), Certificates: []tls.Certificate{clientCert}}}}
	resp, err := withCert.Get(a.base + "/conformance")
	if err != nil {
		t.Fatalf("HTTPS with a client certificate: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("HTTPS with a client certificate: %d", resp.StatusCode)
	}
	noCert := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool(ca.CertFile)}}}
	if resp, err := noCert.Get(a.base + "/conformance"); err == nil {
		resp.Body.Close()
		t.Errorf("HTTPS without a client certificate: %d, want a refused handshake", resp.StatusCode)
	}
	plain := "http://" + strings.TrimPrefix(a.base, "https://") + "/conformance"
	if resp, err := (&http.Client{Timeout: 30 * time.Second}).Get(plain); err == nil {
		if resp.StatusCode == http.StatusOK {
			t.Errorf("plain HTTP to the TLS server: 200")
		}
		resp.Body.Close()
	}
}

// TestReadiness: /readyz follows SetReady (the command wires it to the
// database check that drives gRPC health).
func TestReadiness(t *testing.T) {
	t.Parallel()
	a := start(t, func(s *setup) { s.fixture = "" })
	if r := a.get(t, "/readyz"); r.status != http.StatusOK {
		t.Errorf("ready: %d", r.status)
	}
	a.srv.SetReady(false)
	wantException(t, "not ready", a.get(t, "/readyz"), http.StatusServiceUnavailable, "not ready")
	a.srv.SetReady(true)
	if r := a.get(t, "/readyz"); r.status != http.StatusOK {
		t.Errorf("ready again: %d", r.status)
	}
}

// TestAccessLogAndMetrics: one access record and one request count per
// request, by route, with errors counted by status.
func TestAccessLogAndMetrics(t *testing.T) {
	t.Parallel()
	a := start(t)
	a.get(t, "/collections/default/items?limit=3")
	a.get(t, "/collections/default/items?limit=3")
	a.get(t, "/collections/default/items?limit=0")
	a.get(t, "/locate?lat=48.85&lng=2.35")
	a.get(t, "/no/such/thing")
	a.get(t, "/readyz")
	if got := a.metrics.count("http.items.requests"); got != 3 {
		t.Errorf("http.items.requests = %d, want 3", got)
	}
	if got := a.metrics.count("http.items.errors.400"); got != 1 {
		t.Errorf("http.items.errors.400 = %d, want 1", got)
	}
	if got := a.metrics.count("http.locate.requests"); got != 1 {
		t.Errorf("http.locate.requests = %d, want 1", got)
	}
	if got := a.metrics.count("http.unknown.errors.404"); got != 1 {
		t.Errorf("http.unknown.errors.404 = %d, want 1", got)
	}
	if got := a.metrics.count("search.results"); got != 7 {
		t.Errorf("search.results = %d, want 7 (3 + 3 + France)", got)
	}
	recs := a.access.records(t)
	byRoute := map[string][]map[string]any{}
	for _, r := range recs {
		if r["msg"] != "http" {
			t.Errorf("access record %v", r)
		}
		byRoute[r["route"].(string)] = append(byRoute[r["route"].(string)], r)
	}
	if len(recs) != 6 || len(byRoute["items"]) != 3 || len(byRoute["readyz"]) != 1 {
		t.Fatalf("%d access records: %v", len(recs), recs)
	}
	bad := byRoute["items"][2]
	if bad["status"] != float64(400) || !strings.Contains(bad["message"].(string), "limit must be at least 1") || bad["level"] != "INFO" {
		t.Errorf("the 400's record: %v", bad)
	}
	if ready := byRoute["readyz"][0]; ready["level"] != "DEBUG" {
		t.Errorf("a successful readiness check is logged at %v, want DEBUG", ready["level"])
	}
}
