// Package servertest is the harness of the search server's end-to-end
// tests (internal/server's and cmd/search-server's): one PostgreSQL
// cluster, one Consul agent and the search-client and search-server
// binaries per test binary (Main), servers run in-process (Start) or as
// processes (StartProc), and the helpers the tests of both packages share.
package servertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
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
	"github.com/geosearch/search/internal/server"
)

// What Main starts for the test binary.
var (
	Cluster   *postgistest.Cluster
	Agent     *consultest.Agent // a real Consul agent; tests use distinct service names
	ClientBin string            // the search-client binary, built once
	ServerBin string            // the search-server binary, built once
)

// Version is what the in-process servers report as their version.
const Version = "servertest"

// Main builds the binaries, starts the Consul agent and the PostgreSQL
// cluster, runs the tests and releases it all; TestMain exits with its
// result.
func Main(m *testing.M) int {
	dir, err := BuildBinaries(false)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	Agent, err = consultest.Start(ctx)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "consultest: %v\n", err)
		return 1
	}
	defer Agent.Close()
	return postgistest.Main(m, &Cluster)
}

// BinDirEnv names a directory that holds search-server and search-client
// built from this tree just before the tests run: make test-go builds bin/
// and sets it, so that each suite does not link its own copies (about
// 3 s of CPU each). Only the Makefile should set it: nothing checks that
// the binaries are current.
const BinDirEnv = "SEARCH_TEST_BIN_DIR"

// BuildBinaries builds search-client (with -race when clientRace is set)
// and search-server into a new temporary directory, which the caller
// removes, and sets ClientBin and ServerBin. The server binary is never
// built with -race: its code is race-checked where it is under test, in
// process (internal/server's tests run server.New under -race), and a
// -race server process costs the suites that only need one running
// (the CLI's) two to three times the CPU. With BinDirEnv set, the
// binaries there are used instead, except a -race client, which is built.
func BuildBinaries(clientRace bool) (dir string, err error) {
	dir, err = os.MkdirTemp("", "search-bin-")
	if err != nil {
		return "", err
	}
	ClientBin, ServerBin = filepath.Join(dir, "search-client"), filepath.Join(dir, "search-server")
	if prebuilt := os.Getenv(BinDirEnv); prebuilt != "" {
		ServerBin = filepath.Join(prebuilt, "search-server")
		if !clientRace {
			ClientBin = filepath.Join(prebuilt, "search-client")
		}
	}
	for bin, pkg := range map[string]string{ClientBin: "github.com/geosearch/search/cmd/search-client", ServerBin: "github.com/geosearch/search/cmd/search-server"} {
		if filepath.Dir(bin) != dir { // prebuilt
			if _, err := os.Stat(bin); err != nil {
				os.RemoveAll(dir)
				return "", fmt.Errorf("%s: %w", BinDirEnv, err)
			}
			continue
		}
		args := []string{"build", "-o", bin}
		if clientRace && bin == ClientBin {
			args = append(args, "-race")
		}
		if out, err := exec.Command("go", append(args, pkg)...).CombinedOutput(); err != nil {
			os.RemoveAll(dir)
			return "", fmt.Errorf("build %s: %v\n%s", pkg, err, out)
		}
	}
	return dir, nil
}

// OwnCluster starts a PostgreSQL+PostGIS server of the test's own, for tests
// that stop it; it is removed after the test's databases are dropped.
func OwnCluster(t *testing.T) *postgistest.Cluster {
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

// OwnAgent starts a Consul agent of the test's own, for tests that stop it.
func OwnAgent(t *testing.T) *consultest.Agent {
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

// Server is a search-server running in-process on a free port.
type Server struct {
	Addr   string
	DBURL  string
	Conn   *grpc.ClientConn
	Client searchv1.SearchServiceClient
	Logs   *SyncBuffer
	Srv    *server.Server
}

// Unset, as a value in Start's env, removes one of its default variables
// instead of setting it.
const Unset = "\x00unset"

// Start runs the real server wiring with env on top of a fresh database,
// and waits until it is SERVING unless wantReady is false.
func Start(t testing.TB, env map[string]string, wantReady bool) *Server {
	t.Helper()
	return StartWith(t, env, wantReady, grpc.WithTransportCredentials(insecure.NewCredentials()))
}

// StartWith is Start with the test's connection dialled with dial (TLS
// credentials, say).
func StartWith(t testing.TB, env map[string]string, wantReady bool, dial ...grpc.DialOption) *Server {
	t.Helper()
	ts := &Server{Logs: &SyncBuffer{}}
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
		if v == Unset {
			delete(vars, k)
			continue
		}
		vars[k] = v
	}
	if vars["DATABASE_URL"] == "" { // ConsulEnv leaves it empty for a fresh one
		vars["DATABASE_URL"] = Cluster.NewDatabase(t)
	}
	ts.DBURL = vars["DATABASE_URL"]
	ctx, cancel := context.WithCancel(context.Background())
	st, err := server.LoadStartup(ctx, envconfig.MapLookuper(nil), envconfig.MapLookuper(vars)) // as main does
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	srv, err := server.New(ctx, st.Config, ts.Logs, Version)
	if err != nil {
		t.Fatalf("new server: %v", err)
	}
	ts.Srv = srv
	srv.ReportConfig(ctx, st)
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server run: %v", err)
		}
		if t.Failed() {
			t.Logf("server log:\n%s", ts.Logs.String())
		}
	})
	ts.Addr = srv.Addr().String()
	ts.dial(t, wantReady, dial...)
	return ts
}

// StartBinary runs the server binary (StartProc) with env on top of a fresh
// database of Cluster, as a Server without Srv, and waits until it is
// SERVING unless wantReady is false. It is stopped with SIGTERM at the end
// of the test and must exit cleanly.
func StartBinary(t *testing.T, env map[string]string, wantReady bool) *Server {
	t.Helper()
	vars := map[string]string{"DATABASE_URL": Cluster.NewDatabase(t), "LOG_LEVEL": "debug"}
	maps.Copy(vars, env)
	p := StartProc(t, vars)
	t.Cleanup(func() { // before StartProc's own cleanup, which kills
		p.Signal(t, syscall.SIGTERM)
		if err := p.Wait(t); err != nil {
			t.Errorf("server exit: %v", err)
		}
	})
	ts := &Server{Addr: p.Addr, DBURL: vars["DATABASE_URL"], Logs: p.Logs}
	ts.dial(t, wantReady, grpc.WithTransportCredentials(insecure.NewCredentials()))
	return ts
}

// dial connects the test's client to ts.Addr and, if wantReady, waits until
// ts is SERVING.
func (ts *Server) dial(t testing.TB, wantReady bool, dial ...grpc.DialOption) {
	t.Helper()
	var err error
	ts.Conn, err = grpc.NewClient(ts.Addr, dial...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ts.Conn.Close() })
	ts.Client = searchv1.NewSearchServiceClient(ts.Conn)
	if wantReady {
		ts.WaitHealth(t, healthpb.HealthCheckResponse_SERVING)
	}
}

// WaitHealth waits until ts reports want.
func (ts *Server) WaitHealth(t testing.TB, want healthpb.HealthCheckResponse_ServingStatus) {
	t.Helper()
	grpcapitest.WaitHealth(t, ts.Conn, want)
}

// RunClient runs the search-client binary against ts and returns its output
// and exit code.
func (ts *Server) RunClient(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return ts.RunClientEnv(t, nil, args...)
}

// RunClientEnv is RunClient with env (NAME=value) added to the client's
// environment.
func (ts *Server) RunClientEnv(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return RunClientAt(t, ts.Addr, env, args...)
}

// RunClientAt runs the ClientBin binary against the server at addr, with env
// (NAME=value) added to the test process's environment, and returns its
// output and exit code.
func RunClientAt(t *testing.T, addr string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(ClientBin, append([]string{"--addr", addr}, args...)...)
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

// SyncBuffer is a bytes.Buffer safe for the server's concurrent logging.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var _ io.Writer = (*SyncBuffer)(nil)

// Connect opens a connection to dbURL for the test; the caller closes it.
func Connect(t testing.TB, dbURL string) *pgx.Conn {
	t.Helper()
	return postgistest.Connect(t, dbURL)
}

// Fingerprint summarizes everything stored, to prove that bad input
// changed nothing.
func Fingerprint(t *testing.T, dbURL string) string {
	t.Helper()
	return postgistest.Fingerprint(t, dbURL)
}
