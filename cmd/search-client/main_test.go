package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/grpcapi/grpcapitest"
	"github.com/geosearch/search/internal/postgis/postgistest"
)

// The CLI's tests run the search-client binary against a search-server
// process on a database of the shared test cluster: what a user runs.
// The server is built with -race when the tests are.

var (
	cluster   *postgistest.Cluster
	clientBin string // the search-client binary, built once
	serverBin string // the search-server binary, built once
)

func TestMain(m *testing.M) {
	os.Exit(func() int {
		dir, err := os.MkdirTemp("", "search-client-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		clientBin, serverBin = filepath.Join(dir, "search-client"), filepath.Join(dir, "search-server")
		for bin, pkg := range map[string]string{clientBin: ".", serverBin: "../search-server"} {
			args := []string{"build", "-o", bin}
			if raceEnabled {
				args = append(args, "-race")
			}
			if out, err := exec.Command("go", append(args, pkg)...).CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "build %s: %v\n%s", pkg, err, out)
				return 1
			}
		}
		return postgistest.Main(m, &cluster)
	}())
}

// testServer is a search-server process on a free port.
type testServer struct {
	addr   string
	dbURL  string
	conn   *grpc.ClientConn
	client searchv1.SearchServiceClient
	logs   *syncBuffer
}

// startServer runs search-server with env on top of a fresh database (and
// MEMINDEX as the test process has it, for make test-memindex-on), and
// waits until it is SERVING unless wantReady is false. It is stopped with
// SIGTERM at the end of the test and must exit cleanly.
func startServer(t *testing.T, env map[string]string, wantReady bool) *testServer {
	t.Helper()
	ts := &testServer{logs: &syncBuffer{}}
	vars := map[string]string{
		"DATABASE_URL":          cluster.NewDatabase(t),
		"LISTEN_ADDR":           "127.0.0.1:0",
		"HEALTH_CHECK_INTERVAL": "100ms",
		"LOG_LEVEL":             "debug",
		"CONSUL_REGISTER":       "false",
	}
	if m, ok := os.LookupEnv("MEMINDEX"); ok {
		vars["MEMINDEX"] = m
	}
	for k, v := range env {
		vars[k] = v
	}
	ts.dbURL = vars["DATABASE_URL"]
	cmd := exec.Command(serverBin)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = ts.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	copied := make(chan struct{})
	go func() { // the log, and the address from its "serving" record
		defer close(copied)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			fmt.Fprintln(ts.logs, sc.Text())
			var rec struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "serving" {
				addr <- rec.Addr
			}
		}
		_, _ = io.Copy(ts.logs, stdout)
	}()
	exited := make(chan error, 1)
	go func() { <-copied; exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("server exit: %v", err)
			}
		case <-time.After(time.Minute):
			_ = cmd.Process.Kill()
			t.Errorf("server still running a minute after SIGTERM")
		}
		if t.Failed() {
			t.Logf("server log:\n%s", ts.logs.String())
		}
	})
	select {
	case ts.addr = <-addr:
	case err := <-exited:
		t.Fatalf("server exited at start: %v\n%s", err, ts.logs.String())
	case <-time.After(2 * time.Minute):
		t.Fatalf("server not listening after 2 minutes:\n%s", ts.logs.String())
	}
	ts.conn, err = grpc.NewClient(ts.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
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

// syncBuffer is a bytes.Buffer safe for concurrent writes.
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
