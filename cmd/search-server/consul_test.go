package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/consul"
	"github.com/geosearch/search/internal/geo/geotest"
	"github.com/geosearch/search/internal/grpcapi"
)

// consulEnv registers a server as service under the test agent, with fast
// checks.
func consulEnv(service, dbURL string) map[string]string {
	return map[string]string{
		"DATABASE_URL":          dbURL,
		"CONSUL_REGISTER":       "true",
		"CONSUL_HTTP_ADDR":      agent.HTTPAddr(),
		"SERVICE_NAME":          service,
		"CONSUL_CHECK_INTERVAL": "200ms",
		"CONSUL_CHECK_TIMEOUT":  "150ms",
	}
}

func inDNS(t *testing.T, service string) []string {
	t.Helper()
	addrs, err := consul.DNSLookup{Server: agent.DNSAddr()}.Lookup(context.Background(), service)
	if err != nil {
		t.Fatal(err)
	}
	return addrs
}

func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// discoveryClient is what search-client builds without --addr.
func discoveryClient(t *testing.T, service string) searchv1.SearchServiceClient {
	t.Helper()
	return discoveryClientVia(t, agent.DNSAddr(), service)
}

// discoveryClientVia is discoveryClient through the Consul DNS at dnsAddr.
func discoveryClientVia(t *testing.T, dnsAddr, service string) searchv1.SearchServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(consul.DNSTarget(dnsAddr, service),
		grpc.WithResolvers(consul.DNSBuilder{Interval: 500 * time.Millisecond}),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(grpcapi.ClientServiceConfig))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return searchv1.NewSearchServiceClient(conn)
}

func TestServerRegistersAndLeavesConsulOnSIGTERM(t *testing.T) {
	t.Parallel()
	const service = "search-sigterm"
	p := startProc(t, consulEnv(service, cluster.NewDatabase(t)))
	eventually(t, 30*time.Second, "the instance in DNS (its gRPC check passing)", func() bool {
		return slices.Equal(inDNS(t, service), []string{p.addr})
	})
	checks, _, err := agent.Client().Health().Checks(service, nil)
	if err != nil || len(checks) != 1 || checks[0].Type != "grpc" || checks[0].Status != "passing" {
		t.Fatalf("checks %+v, %v; want one passing grpc check", checks, err)
	}

	// The client finds it through Consul DNS, without --addr.
	ts := &testServer{addr: ""}
	discover := []string{"--consul-dns", agent.DNSAddr(), "--consul-http", agent.HTTPAddr(), "--service", service}
	run := func(args ...string) (string, string, int) { return ts.runClient(t, append(discover, args...)...) }
	if out, errOut, code := run("import", geotest.Testdata("ne_50m_countries.geojson"), "--key-property", "name"); code != 0 {
		t.Fatalf("import through discovery: %s%s", out, errOut)
	}
	if out, errOut, code := run("search", "--lat", "48.85", "--lng", "2.35"); code != 0 || !strings.Contains(out, "France") {
		t.Errorf("search through discovery: exit %d\n%s%s", code, out, errOut)
	}
	if out, _, code := run("instances"); code != 0 || !strings.Contains(out, p.addr+"  passing") {
		t.Errorf("instances: exit %d\n%s", code, out)
	}

	p.signal(t, syscall.SIGTERM)
	sent := time.Now()
	eventually(t, time.Second, "the instance to leave DNS after SIGTERM", func() bool { return len(inDNS(t, service)) == 0 })
	t.Logf("gone from DNS %s after SIGTERM", time.Since(sent).Round(time.Millisecond))
	if err := p.wait(t); err != nil {
		t.Errorf("exit: %v", err)
	}
	want := "health NOT_SERVING|deregistering from Consul|draining in-flight RPCs|closing database pool|flushing metrics and logs"
	if got := strings.Join(p.shutdownSteps(""), "|"); got != want {
		t.Errorf("shutdown steps %q, want %q", got, want)
	}

	// Nobody left: the client waits for an instance up to its deadline,
	// then says so, naming the service and the DNS server.
	_, errOut, code := run("search", "--query", "x", "--timeout", "2s")
	if code != 1 || !strings.Contains(errOut, `no healthy instance of "search-sigterm" found through Consul DNS at `+agent.DNSAddr()) {
		t.Errorf("no instances: exit %d, stderr %q", code, errOut)
	}
}

// TestThreeInstancesShareTheLoadAndSurviveKill9 runs three server processes
// on one database, spreads calls over them, kills one with SIGKILL under a
// steady stream of searches, and follows its removal from discovery.
func TestThreeInstancesShareTheLoadAndSurviveKill9(t *testing.T) {
	t.Parallel()
	const service = "search-three"
	db := cluster.NewDatabase(t)
	env := consulEnv(service, db)
	env["CONSUL_DEREGISTER_CRITICAL_AFTER"] = "1m" // Consul's minimum
	procs := []*proc{startProc(t, env), startProc(t, env), startProc(t, env)}
	eventually(t, 30*time.Second, "three instances in DNS", func() bool { return len(inDNS(t, service)) == 3 })
	ts := &testServer{addr: procs[0].addr}
	if out, errOut, code := ts.runClient(t, "import", geotest.Testdata("ne_50m_countries.geojson")); code != 0 {
		t.Fatalf("import: %s%s", out, errOut)
	}

	client := discoveryClient(t, service)
	ids := map[string]int{}
	for range 30 {
		resp, err := client.Monitor(context.Background(), &searchv1.MonitorRequest{})
		if err != nil {
			t.Fatal(err)
		}
		ids[resp.GetInstanceId()]++
	}
	if len(ids) != 3 {
		t.Fatalf("30 calls reached instances %v, want three distinct ones", ids)
	}

	// Search steadily while one instance is killed.
	loop := startSearchLoop(client)
	time.Sleep(500 * time.Millisecond)
	procs[0].signal(t, syscall.SIGKILL)
	eventually(t, 30*time.Second, "the killed instance to leave DNS", func() bool {
		return len(inDNS(t, service)) == 2 && !slices.Contains(inDNS(t, service), procs[0].addr)
	})
	// Counted, not timed: the loop goes on until it has made 50 more
	// searches after the instance left DNS.
	afterKill := loop.ok.Load() + loop.failed.Load()
	eventually(t, time.Minute, "50 searches after the kill", func() bool { return loop.ok.Load()+loop.failed.Load() >= afterKill+50 })
	ok, failed, firstErr := loop.stop()
	t.Logf("searches during the kill: %d ok, %d failed", ok, failed)
	if failed != 0 {
		t.Errorf("%d failed searches (first: %v), %d ok; want none failed", failed, firstErr, ok)
	}

	// With DeregisterCriticalServiceAfter at Consul's minimum of a minute
	// (and its reaper running every 30s), the dead instance is removed.
	eventually(t, 3*time.Minute, "the dead instance to be deregistered by Consul", func() bool {
		eps, err := consul.ListEndpoints(context.Background(), agent.Client(), service)
		return err == nil && len(eps) == 2
	})
}

func TestDatabaseOutageTakesTheInstanceOutOfDNS(t *testing.T) {
	t.Parallel()
	const service = "search-db-outage"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	own := ownCluster(t) // stopped below: not the shared cluster
	p := startProc(t, consulEnv(service, own.NewDatabase(t)))
	eventually(t, 30*time.Second, "the instance in DNS", func() bool { return len(inDNS(t, service)) == 1 })

	own.Stop()
	eventually(t, 30*time.Second, "the instance to leave DNS while the database is down", func() bool { return len(inDNS(t, service)) == 0 })
	if err := own.Start(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the instance back in DNS with the database", func() bool {
		return slices.Equal(inDNS(t, service), []string{p.addr})
	})
}

// TestRegistrationOutlivesConsul starts a server while its Consul agent is
// down, then brings the agent up, then restarts it (a dev agent forgets all
// registrations when it restarts).
func TestRegistrationOutlivesConsul(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	own := ownAgent(t)
	own.Stop()

	env := consulEnv("search-outage", "")
	env["CONSUL_HTTP_ADDR"] = own.HTTPAddr()
	env["CONSUL_RESYNC_INTERVAL"] = "200ms"
	ts := startServer(t, env, true) // serves with Consul down
	cfg, _ := loadConfig(ctx, envconfig.MapLookuper(env))
	registered := func() bool {
		eps, err := consul.ListEndpoints(ctx, own.Client(), cfg.Consul.ServiceName)
		return err == nil && len(eps) == 1 && eps[0].Addr() == ts.addr
	}
	if _, err := ts.client.Monitor(ctx, &searchv1.MonitorRequest{}); err != nil {
		t.Fatalf("serving without Consul: %v", err)
	}
	time.Sleep(500 * time.Millisecond) // some failed attempts
	if err := own.Start(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "registration once Consul is up", registered)
	if err := own.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "registration again after the agent restarted", registered)
	ts.waitHealth(t, healthpb.HealthCheckResponse_SERVING)
}

// callLoop makes one call after another until stopped, pausing between
// calls, and counts what succeeded and what failed.
type callLoop struct {
	ok, failed atomic.Int64
	firstErr   atomic.Value
	done       chan struct{}
	wg         sync.WaitGroup
}

func startLoop(pause time.Duration, call func() error) *callLoop {
	l := &callLoop{done: make(chan struct{})}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for {
			select {
			case <-l.done:
				return
			default:
			}
			if err := call(); err != nil {
				l.failed.Add(1)
				l.firstErr.CompareAndSwap(nil, err.Error())
			} else {
				l.ok.Add(1)
			}
			time.Sleep(pause)
		}
	}()
	return l
}

// stop ends the loop and returns its counts and first failure.
func (l *callLoop) stop() (ok, failed int64, firstErr any) {
	close(l.done)
	l.wg.Wait()
	return l.ok.Load(), l.failed.Load(), l.firstErr.Load()
}

// searchParis searches for Paris within timeout; anything but France alone
// is an error.
func searchParis(client searchv1.SearchServiceClient, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	resp, err := client.Search(ctx, &searchv1.SearchRequest{Point: &searchv1.Point{Lat: 48.85, Lng: 2.35}})
	if err != nil {
		return err
	}
	if n := len(resp.GetThings()); n != 1 {
		return fmt.Errorf("Paris is in %d things, want 1", n)
	}
	return nil
}

// startSearchLoop searches for Paris through client until stopped.
func startSearchLoop(client searchv1.SearchServiceClient) *callLoop {
	return startLoop(2*time.Millisecond, func() error { return searchParis(client, 10*time.Second) })
}

// TestCLIWaitsForAnInstance: a search-client run through Consul DNS while no
// instance is passing (all restarting, say) waits, within --timeout, for one
// to be listed instead of failing at once.
func TestCLIWaitsForAnInstance(t *testing.T) {
	t.Parallel()
	const service = "search-cli-waits"
	if got := inDNS(t, service); len(got) != 0 {
		t.Fatalf("instances %v before the test", got)
	}
	type result struct {
		out, errOut string
		code        int
	}
	done := make(chan result, 1)
	ts := &testServer{addr: ""}
	go func() {
		out, errOut, code := ts.runClient(t, "--consul-dns", agent.DNSAddr(), "--service", service, "--timeout", "60s", "monitor")
		done <- result{out, errOut, code}
	}()
	startServer(t, consulEnv(service, ""), true)
	r := <-done
	if r.code != 0 || !strings.Contains(r.out, "instance:") {
		t.Errorf("monitor through DNS, started before any instance: exit %d\n%s%s", r.code, r.out, r.errOut)
	}
}
