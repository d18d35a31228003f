package server_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/consul/consultest"
	"github.com/geosearch/search/internal/geo/geotest"
	"github.com/geosearch/search/internal/grpcapi"
	"github.com/geosearch/search/internal/grpcapi/grpcapitest"
	"github.com/geosearch/search/internal/server/servertest"
)

// agentWith starts a Consul agent of the test's own with opts.
func agentWith(t *testing.T, opts consultest.Options) *consultest.Agent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, err := consultest.StartWith(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	return a
}

// checkStatus is the status of service's one check in a, or "" when none.
func checkStatus(t *testing.T, a *consultest.Agent, service string) string {
	t.Helper()
	checks, _, err := a.Client().Health().Checks(service, nil)
	if err != nil || len(checks) != 1 {
		return ""
	}
	return checks[0].Status
}

// tlsDial returns the options of a client with tlsc and, when set, token.
func tlsDial(t testing.TB, tlsc grpcapi.ClientTLS, token string) []grpc.DialOption {
	t.Helper()
	opts, err := tlsc.DialOptions(token)
	if err != nil {
		t.Fatal(err)
	}
	return opts
}

// checksOverTLS is the agent configuration for gRPC checks over TLS: the
// check verifies the server with ca and presents cert
// (enable_agent_tls_for_checks), as servers with TLS_CLIENT_CA_FILE need.
func checksOverTLS(ca *grpcapitest.CA, cert grpcapitest.Pair) string {
	return fmt.Sprintf(`
tls {
  defaults {
    ca_file   = %q
    cert_file = %q
    key_file  = %q
  }
}
enable_agent_tls_for_checks = true
`, ca.CertFile, cert.CertFile, cert.KeyFile)
}

func TestMutualTLSServesVerifiedClientsAndPassesConsulsCheck(t *testing.T) {
	t.Parallel()
	ca := grpcapitest.NewCA(t, "search")
	server := ca.Server(t, "search-server", "127.0.0.1", "search.internal")
	agentCert := ca.Client(t, "consul-agent")
	client := ca.Client(t, "search-client")
	stranger := grpcapitest.NewCA(t, "stranger")

	a := agentWith(t, consultest.Options{HCL: checksOverTLS(ca, agentCert)})

	const service = "search-tls"
	ts := servertest.StartWith(t, map[string]string{
		"TLS_CERT_FILE":                server.CertFile,
		"TLS_KEY_FILE":                 server.KeyFile,
		"TLS_CLIENT_CA_FILE":           ca.CertFile,
		"CONSUL_REGISTER":              "true",
		"CONSUL_HTTP_ADDR":             a.HTTPAddr(),
		"SERVICE_NAME":                 service,
		"CONSUL_CHECK_INTERVAL":        "1s", // a TLS handshake on a loaded machine
		"CONSUL_CHECK_TIMEOUT":         "1s", // can exceed a shorter timeout
		"CONSUL_CHECK_TLS_SERVER_NAME": "search.internal",
	}, true, tlsDial(t, grpcapi.ClientTLS{CAFile: ca.CertFile, CertFile: client.CertFile, KeyFile: client.KeyFile}, "")...)
	servertest.ImportFixture(t, ts)

	servertest.Eventually(t, 30*time.Second, "Consul's gRPC check over TLS passing", func() bool {
		return checkStatus(t, a, service) == api.HealthPassing
	})
	checks, err := a.Client().Agent().Checks()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range checks {
		if c.ServiceName == service && !strings.Contains(c.Output, "success") {
			t.Errorf("check output %q, want success", c.Output)
		}
	}

	// The CLI finds the server through Consul DNS and verifies it.
	discover := []string{"--addr", "", "--consul-dns", a.DNSAddr(), "--service", service}
	run := func(args ...string) (string, string, int) {
		return ts.RunClientEnv(t, nil, append(discover, args...)...)
	}
	mtls := []string{"--tls-ca", ca.CertFile, "--tls-server-name", "search.internal", "--tls-cert", client.CertFile, "--tls-key", client.KeyFile}
	out, errOut, code := run(append(mtls, "search", "--lat", "48.85", "--lng", "2.35")...)
	if code != 0 || !strings.Contains(out, "France") {
		t.Errorf("search over mutual TLS: exit %d\n%s%s", code, out, errOut)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"plain text", nil, "Unavailable"},
		{"server of an unknown CA", []string{"--tls-ca", stranger.CertFile, "--tls-server-name", "search.internal", "--tls-cert", client.CertFile, "--tls-key", client.KeyFile}, "certificate signed by unknown authority"},
		{"wrong server name", []string{"--tls-ca", ca.CertFile, "--tls-server-name", "other.internal", "--tls-cert", client.CertFile, "--tls-key", client.KeyFile}, "other.internal"},
		{"no client certificate", []string{"--tls-ca", ca.CertFile}, "Unavailable"},
	} {
		// By address: what fails is TLS, whatever discovery says meanwhile.
		out, errOut, code := ts.RunClient(t, append(tc.args, "--timeout", "5s", "search", "--lat", "48.85", "--lng", "2.35")...)
		if code != 1 || !strings.Contains(errOut, tc.want) || strings.Contains(out, "France") {
			t.Errorf("%s: exit %d, want 1 with %q\n%s%s", tc.name, code, tc.want, out, errOut)
		}
	}
}

func TestTokensGuardImportAndSearchAndRotateLive(t *testing.T) {
	t.Parallel()
	ca := grpcapitest.NewCA(t, "search")
	server := ca.Server(t, "search-server", "127.0.0.1")
	readTok, writeTok, newWriteTok := servertest.Secret("read"), servertest.Secret("write"), servertest.Secret("write2")
	prefix := "search-tokens/config"
	ts := servertest.StartWith(t, map[string]string{
		"TLS_CERT_FILE":        server.CertFile,
		"TLS_KEY_FILE":         server.KeyFile,
		"CONSUL_HTTP_ADDR":     servertest.Agent.HTTPAddr(),
		"CONFIG_CONSUL_PREFIX": prefix,
	}, true, tlsDial(t, grpcapi.ClientTLS{CAFile: ca.CertFile}, "")...)
	kv := servertest.Agent.Client().KV()
	put := func(key, value string) {
		t.Helper()
		if _, err := kv.Put(&api.KVPair{Key: prefix + "/" + key, Value: []byte(value)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _, _ = kv.DeleteTree(prefix, nil) })
	put("read_tokens", readTok)
	put("write_tokens", writeTok)
	servertest.Eventually(t, 10*time.Second, "the tokens from KV in effect", func() bool {
		return servertest.Logged(ts, map[string]any{"variable": "WRITE_TOKENS"}) > 0
	})

	tlsFlags := []string{"--tls-ca", ca.CertFile}
	client := func(token string, args ...string) (string, string, int) {
		var env []string
		if token != "" {
			env = []string{"SEARCH_TOKEN=" + token}
		}
		return ts.RunClientEnv(t, env, append(tlsFlags, args...)...)
	}
	data := geotest.Testdata("ne_110m_countries.geojson")
	for _, tc := range []struct {
		name  string
		token string
		args  []string
		code  int
		want  string
	}{
		{"import without a token", "", []string{"import", data, "--key-property", "name"}, 1, "Unauthenticated: this call needs a token"},
		{"import with a read token", readTok, []string{"import", data, "--key-property", "name"}, 1, "PermissionDenied: Import needs a write token"},
		{"search without a token", "", []string{"search", "--query", "fra"}, 1, "Unauthenticated"},
		{"search with a wrong token", servertest.Secret("guess"), []string{"search", "--query", "fra"}, 1, "Unauthenticated: the token is not valid"},
		{"import with the write token", writeTok, []string{"import", data, "--key-property", "name"}, 0, "imported 177"},
		{"search with the read token", readTok, []string{"search", "--lat", "48.85", "--lng", "2.35"}, 0, "France"},
		{"search with the write token", writeTok, []string{"search", "--lat", "48.85", "--lng", "2.35"}, 0, "France"},
	} {
		out, errOut, code := client(tc.token, tc.args...)
		if code != tc.code || !strings.Contains(out+errOut, tc.want) {
			t.Errorf("%s: exit %d, want %d with %q\n%s%s", tc.name, code, tc.code, tc.want, out, errOut)
		}
		for _, tok := range []string{readTok, writeTok} {
			if strings.Contains(out+errOut, tok) {
				t.Errorf("%s: the client's output holds a token", tc.name)
			}
		}
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(readTok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := client("", "--token-file", tokenFile, "search", "--query", "fra"); code != 0 || !strings.Contains(out, "France") {
		t.Errorf("search with --token-file: exit %d\n%s%s", code, out, errOut)
	}
	if out, errOut, code := ts.RunClientEnv(t, []string{"SEARCH_TOKEN=" + readTok}, "search", "--query", "fra"); code != 2 || !strings.Contains(errOut, "SEARCH_TOKEN needs TLS") {
		t.Errorf("a token without TLS: exit %d, want 2 and a refusal\n%s%s", code, out, errOut)
	}

	// Rotation: the new write token joins, the old one leaves, no restart.
	put("write_tokens", writeTok+","+newWriteTok)
	importWith := func(token string) codes.Code {
		conn, err := grpc.NewClient(ts.Addr, tlsDial(t, grpcapi.ClientTLS{CAFile: ca.CertFile}, token)...)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		stream, err := searchv1.NewSearchServiceClient(conn).Import(context.Background())
		if err == nil {
			_, err = stream.CloseAndRecv()
		}
		return status.Code(err)
	}
	servertest.Eventually(t, 10*time.Second, "the new write token accepted", func() bool { return importWith(newWriteTok) == codes.OK })
	if c := importWith(writeTok); c != codes.OK {
		t.Errorf("the old write token during rotation: %s, want OK", c)
	}
	put("write_tokens", newWriteTok)
	servertest.Eventually(t, 10*time.Second, "the old write token refused", func() bool { return importWith(writeTok) == codes.Unauthenticated })

	for _, tok := range []string{readTok, writeTok, newWriteTok} {
		if strings.Contains(ts.Logs.String(), tok) {
			t.Errorf("the server's log holds a token")
		}
	}
}

// roleURL is dbURL with user role.
func roleURL(t *testing.T, dbURL, role string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	return u.String()
}

// loginRole creates a login role in group and returns its name; it is
// dropped after the test.
func loginRole(t *testing.T, dbURL, group string) string {
	t.Helper()
	ctx := context.Background()
	conn := servertest.Connect(t, dbURL)
	defer conn.Close(ctx)
	role := strings.ReplaceAll(servertest.Secret(group), "-", "_")
	// Identifiers cannot be bound parameters; role is made here, not taken
	// from input.
	if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE ROLE %s LOGIN IN ROLE %s", role, group)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, dbURL)
		if err == nil {
			_, _ = conn.Exec(ctx, "DROP ROLE IF EXISTS "+role)
			conn.Close(ctx)
		}
	})
	return role
}

func TestSearchesRunAsARoleThatCanOnlyRead(t *testing.T) {
	t.Parallel()
	owner := servertest.Cluster.NewDatabase(t)
	reader := roleURL(t, owner, loginRole(t, owner, "search_reader"))
	writer := roleURL(t, owner, loginRole(t, owner, "search_writer"))

	// Reads as the reader, imports as the writer.
	ts := servertest.Start(t, map[string]string{"DATABASE_URL": reader, "DATABASE_WRITE_URL": writer}, true)
	servertest.ImportFixture(t, ts)
	resp, err := ts.Client.Search(context.Background(), &searchv1.SearchRequest{Point: &searchv1.Point{Lat: 48.85, Lng: 2.35}})
	if err != nil || len(resp.GetThings()) != 1 || resp.GetThings()[0].GetName() != "France" {
		t.Fatalf("search as the reader: %v, %v", resp, err)
	}
	// The roles need no more for consistency tokens: the writer reads the
	// WAL position, the reader waits for it.
	del, err := ts.Client.DeleteThings(context.Background(), &searchv1.DeleteThingsRequest{Ids: []int64{1 << 40}})
	if err != nil || del.GetConsistencyToken() == "" {
		t.Fatalf("delete as the writer: %v, %v; want a consistency token", del, err)
	}
	if _, err := ts.Client.Search(context.Background(), &searchv1.SearchRequest{Query: "a", ConsistencyToken: del.GetConsistencyToken()}); err != nil {
		t.Fatalf("search as the reader with a consistency token: %v", err)
	}

	// The reader itself can change nothing.
	ctx := context.Background()
	conn := servertest.Connect(t, reader)
	defer conn.Close(ctx)
	for _, sql := range []string{
		`DELETE FROM thing`,
		`UPDATE thing SET name = 'x'`,
		`INSERT INTO thing (name, geom) VALUES ('x', ST_Multi(ST_MakeEnvelope(0, 0, 1, 1, 4326)))`,
		`DELETE FROM thing_part`,
		`DROP TABLE thing_part`,
	} {
		if _, err := conn.Exec(ctx, sql); err == nil || !strings.Contains(err.Error(), "42501") {
			t.Errorf("as the reader, %s: %v, want insufficient_privilege (42501)", sql, err)
		}
	}
	// Nor can the writer change the schema.
	wconn := servertest.Connect(t, writer)
	defer wconn.Close(ctx)
	if _, err := wconn.Exec(ctx, `DROP TABLE thing_part`); err == nil {
		t.Error("the writer dropped a table")
	}

	// A server with only the reader refuses imports with a clear code, and
	// nothing changes.
	before := servertest.Fingerprint(t, owner)
	ro := servertest.Start(t, map[string]string{"DATABASE_URL": reader}, true)
	stream, err := ro.Client.Import(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, rf := range geotest.LoadRaw(t, "ne_110m_countries.geojson")[:3] {
		if err := stream.Send(&searchv1.ImportRequest{Name: rf.Name, GeometryGeojson: string(rf.GeometryJSON)}); err != nil {
			t.Fatal(err)
		}
	}
	_, err = stream.CloseAndRecv()
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(status.Convert(err).Message(), "DATABASE_WRITE_URL") {
		t.Errorf("import as the reader: %v, want FailedPrecondition (the server's setup, not the caller's fault) naming DATABASE_WRITE_URL", err)
	}
	if after := servertest.Fingerprint(t, owner); after != before {
		t.Errorf("a refused import changed the store: %s -> %s", before, after)
	}
}

func TestSecretsNeverReachLogsConfigOutputOrErrors(t *testing.T) {
	t.Parallel()
	consulTok := servertest.Secret("consul")
	ca := grpcapitest.NewCA(t, "search")
	server := ca.Server(t, "search-server", "127.0.0.1")
	a := agentWith(t, consultest.Options{ManagementToken: consulTok, HCL: checksOverTLS(ca, ca.Client(t, "consul-agent"))})
	readTok, writeTok, wrongTok := servertest.Secret("read"), servertest.Secret("write"), servertest.Secret("wrong")
	dbPass, writePass, kvPass := servertest.Secret("dbpass"), servertest.Secret("writepass"), servertest.Secret("kvpass")

	// The cluster trusts loopback, so the passwords are not checked; they
	// are in the URLs all the same, which is what must not leak.
	owner := servertest.Cluster.NewDatabase(t)
	withPassword := func(raw, pass string) string {
		u, _ := url.Parse(raw)
		u.User = url.UserPassword("postgres", pass)
		return u.String()
	}
	const service, prefix = "search-secrets", "search-secrets/config"
	env := map[string]string{
		"DATABASE_URL":          withPassword(owner, dbPass),
		"DATABASE_WRITE_URL":    withPassword(owner, writePass),
		"TLS_CERT_FILE":         server.CertFile,
		"TLS_KEY_FILE":          server.KeyFile,
		"READ_TOKENS":           readTok,
		"WRITE_TOKENS":          writeTok,
		"CONSUL_REGISTER":       "true",
		"CONSUL_HTTP_ADDR":      a.HTTPAddr(),
		"CONSUL_HTTP_TOKEN":     consulTok,
		"CONFIG_CONSUL_PREFIX":  prefix,
		"SERVICE_NAME":          service,
		"CONSUL_CHECK_INTERVAL": "1s", // a TLS handshake on a loaded machine
		"CONSUL_CHECK_TIMEOUT":  "1s", // can exceed a shorter timeout
		"LOG_LEVEL":             "debug",
	}
	ts := servertest.StartWith(t, env, true, tlsDial(t, grpcapi.ClientTLS{CAFile: ca.CertFile}, writeTok)...)

	// The ACL token is honoured: with a default policy of deny, the
	// instance registers.
	servertest.Eventually(t, 30*time.Second, "registration with the ACL token, check passing", func() bool {
		return checkStatus(t, a, service) == api.HealthPassing
	})

	// Calls that fail and succeed, with right and wrong tokens.
	servertest.ImportFixture(t, ts)
	var outputs strings.Builder
	for _, tok := range []string{wrongTok, readTok, writeTok, ""} {
		var env []string
		if tok != "" {
			env = []string{"SEARCH_TOKEN=" + tok}
		}
		out, errOut, _ := ts.RunClientEnv(t, env, "--tls-ca", ca.CertFile, "search", "--query", "fra")
		outputs.WriteString(out + errOut)
		out, errOut, _ = ts.RunClientEnv(t, env, "--tls-ca", ca.CertFile, "import", geotest.Testdata("ne_110m_countries.geojson"))
		outputs.WriteString(out + errOut)
	}

	// Configuration from KV (read with the ACL token): secrets in changes
	// that apply, wait for a restart, or are rejected.
	kv := a.Client().KV()
	for key, value := range map[string]string{
		"log_level":          "info",                                              // live
		"database_url":       "postgres://postgres:" + kvPass + "@127.0.0.1:1/db", // set in the environment, which wins
		"database_write_url": "postgres://postgres:" + kvPass + "@[::1/db",        // invalid: rejected
		"read_tokens":        "rotated-" + kvPass,                                 // live, a secret
	} {
		if _, err := kv.Put(&api.KVPair{Key: prefix + "/" + key, Value: []byte(value)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	servertest.Eventually(t, 10*time.Second, "the KV changes seen", func() bool {
		return servertest.Logged(ts, map[string]any{"variable": "LOG_LEVEL"}) > 0 && servertest.Logged(ts, map[string]any{"key": "database_write_url"}) > 0
	})

	// Without the ACL token, Consul refuses the registration, and says so.
	noToken := servertest.Start(t, map[string]string{
		"DATABASE_URL": owner, "CONSUL_REGISTER": "true", "CONSUL_HTTP_ADDR": a.HTTPAddr(), "SERVICE_NAME": service + "-anonymous",
	}, true)
	servertest.Eventually(t, 30*time.Second, "the refused registration logged", func() bool {
		for _, rec := range servertest.LogRecords(noToken.Logs.String()) {
			if e, _ := rec["error"].(string); rec["msg"] == "consul registration failed; retrying" && strings.Contains(e, "Permission denied") {
				return true
			}
		}
		return false
	})

	// search-server config, as an operator would run it.
	cmd := exec.Command(servertest.ServerBin, "config")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("search-server config: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "REDACTED") {
		t.Errorf("config output shows no redaction:\n%s", out)
	}
	outputs.Write(out)

	everything := ts.Logs.String() + noToken.Logs.String() + outputs.String()
	for name, s := range map[string]string{
		"Consul ACL token": consulTok, "read token": readTok, "write token": writeTok, "wrong token": wrongTok,
		"database password": dbPass, "write database password": writePass, "password from KV": kvPass,
	} {
		if strings.Contains(everything, s) {
			t.Errorf("the %s appears in the server's logs, the config output or a client's errors", name)
		}
	}
}
