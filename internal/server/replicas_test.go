package server_test

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/geo/geotest"
	"github.com/geosearch/search/internal/postgis/postgistest"
	"github.com/geosearch/search/internal/server/servertest"
)

// parisOn searches Paris in collection through client with token, with a
// deadline of its own.
func parisOn(client searchv1.SearchServiceClient, collection, token string) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := client.Search(ctx, &searchv1.SearchRequest{Point: &searchv1.Point{Lat: 48.85, Lng: 2.35}, Collections: []string{collection}, ConsistencyToken: token})
	if err != nil {
		return nil, err
	}
	var names []string
	for _, th := range resp.GetThings() {
		names = append(names, th.GetName())
	}
	return names, nil
}

var tokenLine = regexp.MustCompile(`(?m)^consistency token: ([A-Za-z0-9_-]+)$`)

// TestReadsOnAHotStandby runs a server reading from a hot standby
// (DATABASE_URL) and writing to its primary (DATABASE_WRITE_URL):
//   - migrate runs on the primary; the server starts and serves from the
//     read-only standby;
//   - what search-client imports and deletes on the primary, a read with
//     the write's consistency token finds through the standby;
//   - the standby lagging beyond MAX_REPLICA_LAG (its replay paused while
//     the primary writes) makes health NOT_SERVING, /readyz 503 and takes
//     the instance out of Consul DNS; a read waiting for a write it has not
//     replayed fails UNAVAILABLE; all of it recovers when it catches up;
//   - the standby restarted, then promoted: the server recovers without a
//     restart.
func TestReadsOnAHotStandby(t *testing.T) {
	t.Parallel()
	const service = "search-replica"
	dbs := postgistest.StartReplicatedT(t)
	primaryURL, standbyURL := dbs.NewDatabase(t)
	ctx := context.Background()

	// The schema is the template's; migrate must find it up to date on
	// the primary and never touch the standby.
	out, err := runServerCmd(t, map[string]string{"DATABASE_URL": standbyURL, "DATABASE_WRITE_URL": primaryURL}, "migrate", "up")
	if err != nil {
		t.Fatalf("migrate up with DATABASE_URL on the standby: %v\n%s", err, out)
	}

	env := servertest.ConsulEnv(service, standbyURL)
	env["DATABASE_WRITE_URL"] = primaryURL
	env["MAX_REPLICA_LAG"] = "1s"
	env["HTTP_LISTEN_ADDR"] = "127.0.0.1:0"
	env["HTTP_SERVICE_NAME"] = service + "-http"
	ts := servertest.Start(t, env, true)
	servertest.Eventually(t, 30*time.Second, "the instance in DNS", func() bool { return len(servertest.InDNS(t, service)) == 1 })

	// Read your writes through the standby, with the CLI.
	stdout, stderr, code := ts.RunClient(t, "import", geotest.Testdata("ne_50m_countries.geojson"), "--collection", "countries", "--key-property", "name")
	m := tokenLine.FindStringSubmatch(stdout)
	if code != 0 || m == nil {
		t.Fatalf("import: exit %d, no token in:\n%s%s", code, stdout, stderr)
	}
	stdout, stderr, code = ts.RunClient(t, "search", "--lat", "48.85", "--lng", "2.35", "--collection", "countries", "--consistency-token", m[1])
	if code != 0 || !strings.Contains(stdout, "France") {
		t.Fatalf("search with the import's token: exit %d:\n%s%s", code, stdout, stderr)
	}
	// Everything else reads, and works on the read-only standby.
	if mon, err := ts.Client.Monitor(ctx, &searchv1.MonitorRequest{}); err != nil || mon.GetNThings() != 241 {
		t.Fatalf("monitor on the standby: %v, %v", mon, err)
	}
	if cs, err := ts.Client.ListCollections(ctx, &searchv1.ListCollectionsRequest{}); err != nil || len(cs.GetCollections()) == 0 {
		t.Fatalf("collections on the standby: %v, %v", cs, err)
	}
	if resp, err := http.Get("http://" + ts.Srv.HTTPAddr().String() + "/collections/countries/items?limit=5"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP items on the standby: %v, %v", resp, err)
	} else {
		resp.Body.Close()
	}
	stdout, stderr, code = ts.RunClient(t, "delete", "--collection", "countries", "--key", "France")
	if m = tokenLine.FindStringSubmatch(stdout); code != 0 || m == nil {
		t.Fatalf("delete: exit %d, no token in:\n%s%s", code, stdout, stderr)
	}
	if _, _, code = ts.RunClient(t, "get", "--collection", "countries", "--key", "France", "--consistency-token", m[1]); code == 0 {
		t.Fatal("get with the delete's token still finds France")
	}
	if _, stderr, code = ts.RunClient(t, "search", "--query", "a", "--consistency-token", "not-a-token"); code == 0 || !strings.Contains(stderr, "InvalidArgument") && !strings.Contains(stderr, "consistency token") {
		t.Fatalf("a garbage token: exit %d, %s", code, stderr)
	}

	// Lag: the standby stops replaying while the primary writes.
	if err := dbs.PauseReplay(ctx); err != nil {
		t.Fatal(err)
	}
	stdout, _, code = ts.RunClient(t, "import", geotest.Testdata("ne_50m_countries.geojson"), "--collection", "lagging", "--key-property", "name")
	if m = tokenLine.FindStringSubmatch(stdout); code != 0 || m == nil {
		t.Fatalf("import while paused: exit %d:\n%s", code, stdout)
	}
	ts.WaitHealth(t, healthpb.HealthCheckResponse_NOT_SERVING)
	servertest.Eventually(t, 30*time.Second, "/readyz 503 while the standby lags", func() bool { return servertest.Readyz(ts) == http.StatusServiceUnavailable })
	servertest.Eventually(t, 30*time.Second, "the instance out of DNS while the standby lags", func() bool { return len(servertest.InDNS(t, service)) == 0 })
	if _, err := parisOn(ts.Client, "lagging", m[1]); status.Code(err) != codes.Unavailable {
		t.Fatalf("a read waiting for a write the standby has not replayed: %v, want UNAVAILABLE", err)
	}
	if err := dbs.ResumeReplay(ctx); err != nil {
		t.Fatal(err)
	}
	ts.WaitHealth(t, healthpb.HealthCheckResponse_SERVING)
	servertest.Eventually(t, 30*time.Second, "/readyz 200 once caught up", func() bool { return servertest.Readyz(ts) == http.StatusOK })
	servertest.Eventually(t, 30*time.Second, "the instance back in DNS", func() bool { return slices.Equal(servertest.InDNS(t, service), []string{ts.Addr}) })
	if got, err := parisOn(ts.Client, "lagging", m[1]); err != nil || !slices.Equal(got, []string{"France"}) {
		t.Fatalf("after catching up: %v, %v", got, err)
	}

	// The standby restarted: reads fail UNAVAILABLE while it is down and
	// work again on the same pools.
	dbs.Standby.Stop()
	ts.WaitHealth(t, healthpb.HealthCheckResponse_NOT_SERVING)
	if _, err := parisOn(ts.Client, "lagging", ""); status.Code(err) != codes.Unavailable {
		t.Fatalf("search with the standby down: %v, want UNAVAILABLE", err)
	}
	startCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := dbs.Standby.Start(startCtx); err != nil {
		t.Fatal(err)
	}
	ts.WaitHealth(t, healthpb.HealthCheckResponse_SERVING)
	searchesSucceed(t, ts.Client, 50)

	// Promoted: no longer a standby, nothing to wait for.
	if err := dbs.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	ts.WaitHealth(t, healthpb.HealthCheckResponse_SERVING)
	searchesSucceed(t, ts.Client, 50)
	if got, err := parisOn(ts.Client, "lagging", m[1]); err != nil || !slices.Equal(got, []string{"France"}) {
		t.Fatalf("after promotion, with a token: %v, %v", got, err)
	}
}

// searchesSucceed makes n searches in a row, each of which must succeed:
// no call may fail on a connection the pool kept from before.
func searchesSucceed(t *testing.T, client searchv1.SearchServiceClient, n int) {
	t.Helper()
	for i := range n {
		if _, err := parisOn(client, "lagging", ""); err != nil {
			t.Fatalf("search %d of %d in a row: %v", i+1, n, err)
		}
	}
}

// runServerCmd runs the search-server binary with args and env added to
// the environment, and returns its combined output.
func runServerCmd(t *testing.T, env map[string]string, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command(servertest.ServerBin, args...)
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	return cmd.CombinedOutput()
}
