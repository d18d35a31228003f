package main

import (
	"fmt"
	"os"
	"syscall"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/grpcapi/grpcapitest"
	"github.com/geosearch/search/internal/postgis/postgistest"
	"github.com/geosearch/search/internal/server/servertest"
)

// The CLI's tests run the search-client binary against a search-server
// process on a database of the shared test cluster: what a user runs.
// The binaries are servertest's, built with -race when the tests are.

var cluster *postgistest.Cluster

func TestMain(m *testing.M) {
	os.Exit(func() int {
		dir, err := servertest.BuildBinaries(raceEnabled)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		return postgistest.Main(m, &cluster)
	}())
}

// testServer is a search-server process on a free port.
type testServer struct {
	addr   string
	dbURL  string
	conn   *grpc.ClientConn
	client searchv1.SearchServiceClient
	logs   *servertest.SyncBuffer
}

// startServer runs search-server with env on top of a fresh database (and
// the test process's environment, so MEMINDEX as make test-memindex-on sets
// it), and waits until it is SERVING unless wantReady is false. It is
// stopped with SIGTERM at the end of the test and must exit cleanly.
func startServer(t *testing.T, env map[string]string, wantReady bool) *testServer {
	t.Helper()
	vars := map[string]string{"DATABASE_URL": cluster.NewDatabase(t), "LOG_LEVEL": "debug"}
	for k, v := range env {
		vars[k] = v
	}
	p := servertest.StartProc(t, vars)
	t.Cleanup(func() { // before StartProc's own cleanup, which kills
		p.Signal(t, syscall.SIGTERM)
		if err := p.Wait(t); err != nil {
			t.Errorf("server exit: %v", err)
		}
	})
	ts := &testServer{addr: p.Addr, dbURL: vars["DATABASE_URL"], logs: p.Logs}
	var err error
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
	return servertest.RunClientAt(t, ts.addr, env, args...)
}
