package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sethvargo/go-envconfig"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/consul/consultest"
	"github.com/geosearch/search/internal/grpcapi/grpcapitest"
	"github.com/geosearch/search/internal/postgis/postgistest"
)

var (
	cluster   *postgistest.Cluster
	agent     *consultest.Agent // a real Consul agent; tests use distinct service names
	clientBin string            // the search-client binary, built once
	serverBin string            // the search-server binary, built once
)

func TestMain(m *testing.M) {
	os.Exit(func() int {
		dir, err := os.MkdirTemp("", "search-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		clientBin, serverBin = filepath.Join(dir, "search-client"), filepath.Join(dir, "search-server")
		for bin, pkg := range map[string]string{clientBin: "../search-client", serverBin: "."} {
			if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "build %s: %v\n%s", pkg, err, out)
				return 1
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		agent, err = consultest.Start(ctx)
		cancel()
		if err != nil {
			fmt.Fprintf(os.Stderr, "consultest: %v\n", err)
			return 1
		}
		defer agent.Close()
		return postgistest.Main(m, &cluster)
	}())
}

// ownCluster starts a PostgreSQL+PostGIS server of the test's own, for tests
// that stop it; it is removed after the test's databases are dropped.
func ownCluster(t *testing.T) *postgistest.Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := postgistest.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// ownAgent starts a Consul agent of the test's own, for tests that stop it.
func ownAgent(t *testing.T) *consultest.Agent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, err := consultest.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	return a
}

// testServer is a search-server running in-process on a free port.
type testServer struct {
	addr   string
	dbURL  string
	conn   *grpc.ClientConn
	client searchv1.SearchServiceClient
	logs   *syncBuffer
	srv    *Server
}

// unset, as a value in startServer's env, removes one of its default
// variables instead of setting it.
const unset = "\x00unset"

// startServer runs the real server wiring with env on top of a fresh
// database, and waits until it is SERVING unless wantReady is false.
func startServer(t testing.TB, env map[string]string, wantReady bool) *testServer {
	t.Helper()
	return startServerWith(t, env, wantReady, grpc.WithTransportCredentials(insecure.NewCredentials()))
}

// startServerWith is startServer with the test's connection dialled with
// dial (TLS credentials, say).
func startServerWith(t testing.TB, env map[string]string, wantReady bool, dial ...grpc.DialOption) *testServer {
	t.Helper()
	ts := &testServer{logs: &syncBuffer{}}
	vars := map[string]string{
		"DATABASE_URL":          "",
		"LISTEN_ADDR":           "127.0.0.1:0",
		"HEALTH_CHECK_INTERVAL": "100ms",
		"LOG_LEVEL":             "debug",
		"CONSUL_REGISTER":       "false",
	}
	// MEMINDEX in the test process's environment (make test-memindex-on)
	// runs every server of the suite with the in-memory index so; a test's
	// own env still wins.
	if m, ok := os.LookupEnv("MEMINDEX"); ok {
		vars["MEMINDEX"] = m
	}
	for k, v := range env {
		if v == unset {
			delete(vars, k)
			continue
		}
		vars[k] = v
	}
	if vars["DATABASE_URL"] == "" { // consulEnv leaves it empty for a fresh one
		vars["DATABASE_URL"] = cluster.NewDatabase(t)
	}
	ts.dbURL = vars["DATABASE_URL"]
	ctx, cancel := context.WithCancel(context.Background())
	st, err := startupConfig(ctx, envconfig.MapLookuper(nil), envconfig.MapLookuper(vars)) // as main does
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	srv, err := NewServer(ctx, st.cfg, ts.logs)
	if err != nil {
		t.Fatalf("new server: %v", err)
	}
	ts.srv = srv
	srv.ReportConfig(ctx, st)
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server run: %v", err)
		}
		if t.Failed() {
			t.Logf("server log:\n%s", ts.logs.String())
		}
	})
	ts.addr = srv.Addr().String()
	ts.conn, err = grpc.NewClient(ts.addr, dial...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ts.conn.Close() })
	ts.client = searchv1.NewSearchServiceClient(ts.conn)
	if wantReady {
		ts.waitHealth(t, healthpb.HealthCheckResponse_SERVING)
	}
	return ts
}

// waitHealth waits until ts reports want.
func (ts *testServer) waitHealth(t testing.TB, want healthpb.HealthCheckResponse_ServingStatus) {
	t.Helper()
	grpcapitest.WaitHealth(t, ts.conn, want)
}

// runClient runs the search-client binary against ts and returns its output
// and exit code.
func (ts *testServer) runClient(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return ts.runClientEnv(t, nil, args...)
}

// runClientEnv is runClient with env (NAME=value) added to the client's
// environment.
func (ts *testServer) runClientEnv(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(clientBin, append([]string{"--addr", ts.addr}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run search-client: %v", err)
	}
	return out.String(), errOut.String(), code
}

// syncBuffer is a bytes.Buffer safe for the server's concurrent logging.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var _ io.Writer = (*syncBuffer)(nil)

// connect opens a connection to dbURL for the test; the caller closes it.
func connect(t testing.TB, dbURL string) *pgx.Conn {
	t.Helper()
	return postgistest.Connect(t, dbURL)
}

// fingerprint summarizes everything stored, to prove that bad input
// changed nothing.
func fingerprint(t *testing.T, dbURL string) string {
	t.Helper()
	return postgistest.Fingerprint(t, dbURL)
}

func TestHealthIsNotServingWithoutDatabase(t *testing.T) {
	t.Parallel()
	ts := startServer(t, map[string]string{
		"DATABASE_URL":       "postgres://nobody@127.0.0.1:1/none?sslmode=disable",
		"DB_CONNECT_TIMEOUT": "1s",
	}, false)
	ts.waitHealth(t, healthpb.HealthCheckResponse_NOT_SERVING)
	_, errOut, code := ts.runClient(t, "search", "--query", "x")
	if code != 1 || !strings.Contains(errOut, "Unavailable: the database is unavailable") {
		t.Errorf("search without database: exit %d, stderr %q", code, errOut)
	}
	if countRecords(logRecords(ts.logs.String()), map[string]any{"level": "ERROR"}) > 0 {
		t.Errorf("an unavailable database is logged as an internal error:\n%s", ts.logs.String())
	}
}

func TestShutdownLogsItsOrder(t *testing.T) {
	t.Parallel()
	logs := &syncBuffer{}
	vars := map[string]string{"DATABASE_URL": cluster.NewDatabase(t), "LISTEN_ADDR": "127.0.0.1:0", "CONSUL_REGISTER": "false"}
	cfg, err := loadConfig(context.Background(), envconfig.MapLookuper(vars))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := NewServer(ctx, cfg, logs)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var steps []string
	for _, rec := range logRecords(logs.String()) {
		if step, ok := rec["step"].(string); ok {
			steps = append(steps, step)
		}
	}
	want := "health NOT_SERVING|draining in-flight RPCs|closing database pool|flushing metrics and logs"
	if got := strings.Join(steps, "|"); got != want {
		t.Errorf("shutdown steps %q, want %q", got, want)
	}
}
