package main

import (
	"context"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/consul"
	"github.com/geosearch/search/internal/geo/geotest"
	"github.com/geosearch/search/internal/server"
	"github.com/geosearch/search/internal/server/servertest"
)

func TestServerRegistersAndLeavesConsulOnSIGTERM(t *testing.T) {
	t.Parallel()
	const service = "search-sigterm"
	p := servertest.StartProc(t, servertest.ConsulEnv(service, servertest.Cluster.NewDatabase(t)))
	servertest.Eventually(t, 30*time.Second, "the instance in DNS (its gRPC check passing)", func() bool {
		return slices.Equal(servertest.InDNS(t, service), []string{p.Addr})
	})
	checks, _, err := servertest.Agent.Client().Health().Checks(service, nil)
	if err != nil || len(checks) != 1 || checks[0].Type != "grpc" || checks[0].Status != "passing" {
		t.Fatalf("checks %+v, %v; want one passing grpc check", checks, err)
	}

	// The client finds it through Consul DNS, without --addr.
	ts := &servertest.Server{Addr: ""}
	discover := []string{"--consul-dns", servertest.Agent.DNSAddr(), "--consul-http", servertest.Agent.HTTPAddr(), "--service", service}
	run := func(args ...string) (string, string, int) { return ts.RunClient(t, append(discover, args...)...) }
	if out, errOut, code := run("import", geotest.Testdata("ne_50m_countries.geojson"), "--key-property", "name"); code != 0 {
		t.Fatalf("import through discovery: %s%s", out, errOut)
	}
	if out, errOut, code := run("search", "--lat", "48.85", "--lng", "2.35"); code != 0 || !strings.Contains(out, "France") {
		t.Errorf("search through discovery: exit %d\n%s%s", code, out, errOut)
	}
	if out, _, code := run("instances"); code != 0 || !strings.Contains(out, p.Addr+"  passing") {
		t.Errorf("instances: exit %d\n%s", code, out)
	}

	p.Signal(t, syscall.SIGTERM)
	sent := time.Now()
	servertest.Eventually(t, time.Second, "the instance to leave DNS after SIGTERM", func() bool { return len(servertest.InDNS(t, service)) == 0 })
	t.Logf("gone from DNS %s after SIGTERM", time.Since(sent).Round(time.Millisecond))
	if err := p.Wait(t); err != nil {
		t.Errorf("exit: %v", err)
	}
	want := "health NOT_SERVING|deregistering from Consul|draining in-flight RPCs|closing database pool|flushing metrics and logs"
	if got := strings.Join(p.ShutdownSteps(""), "|"); got != want {
		t.Errorf("shutdown steps %q, want %q", got, want)
	}

	// Nobody left: the client waits for an instance up to its deadline,
	// then says so, naming the service and the DNS server.
	_, errOut, code := run("search", "--query", "x", "--timeout", "2s")
	if code != 1 || !strings.Contains(errOut, `no healthy instance of "search-sigterm" found through Consul DNS at `+servertest.Agent.DNSAddr()) {
		t.Errorf("no instances: exit %d, stderr %q", code, errOut)
	}
}

// TestThreeInstancesShareTheLoadAndSurviveKill9 runs three server processes
// on one database, spreads calls over them, kills one with SIGKILL under a
// steady stream of searches, and follows its removal from discovery.
func TestThreeInstancesShareTheLoadAndSurviveKill9(t *testing.T) {
	t.Parallel()
	const service = "search-three"
	db := servertest.Cluster.NewDatabase(t)
	env := servertest.ConsulEnv(service, db)
	env["CONSUL_DEREGISTER_CRITICAL_AFTER"] = "1m" // Consul's minimum
	procs := []*servertest.Proc{servertest.StartProc(t, env), servertest.StartProc(t, env), servertest.StartProc(t, env)}
	servertest.Eventually(t, 30*time.Second, "three instances in DNS", func() bool { return len(servertest.InDNS(t, service)) == 3 })
	ts := &servertest.Server{Addr: procs[0].Addr}
	if out, errOut, code := ts.RunClient(t, "import", geotest.Testdata("ne_50m_countries.geojson")); code != 0 {
		t.Fatalf("import: %s%s", out, errOut)
	}

	client := servertest.DiscoveryClient(t, service)
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
	loop := servertest.StartSearchLoop(client)
	time.Sleep(500 * time.Millisecond)
	procs[0].Signal(t, syscall.SIGKILL)
	servertest.Eventually(t, 30*time.Second, "the killed instance to leave DNS", func() bool {
		return len(servertest.InDNS(t, service)) == 2 && !slices.Contains(servertest.InDNS(t, service), procs[0].Addr)
	})
	// Counted, not timed: the loop goes on until it has made 50 more
	// searches after the instance left DNS.
	afterKill := loop.OK.Load() + loop.Failed.Load()
	servertest.Eventually(t, time.Minute, "50 searches after the kill", func() bool { return loop.OK.Load()+loop.Failed.Load() >= afterKill+50 })
	ok, failed, firstErr := loop.Stop()
	t.Logf("searches during the kill: %d ok, %d failed", ok, failed)
	if failed != 0 {
		t.Errorf("%d failed searches (first: %v), %d ok; want none failed", failed, firstErr, ok)
	}

	// With DeregisterCriticalServiceAfter at Consul's minimum of a minute
	// (and its reaper running every 30s), the dead instance is removed.
	servertest.Eventually(t, 3*time.Minute, "the dead instance to be deregistered by Consul", func() bool {
		eps, err := consul.ListEndpoints(context.Background(), servertest.Agent.Client(), service)
		return err == nil && len(eps) == 2
	})
}

func TestDatabaseOutageTakesTheInstanceOutOfDNS(t *testing.T) {
	t.Parallel()
	const service = "search-db-outage"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	own := servertest.OwnCluster(t) // stopped below: not the shared cluster
	p := servertest.StartProc(t, servertest.ConsulEnv(service, own.NewDatabase(t)))
	servertest.Eventually(t, 30*time.Second, "the instance in DNS", func() bool { return len(servertest.InDNS(t, service)) == 1 })

	own.Stop()
	servertest.Eventually(t, 30*time.Second, "the instance to leave DNS while the database is down", func() bool { return len(servertest.InDNS(t, service)) == 0 })
	if err := own.Start(ctx); err != nil {
		t.Fatal(err)
	}
	servertest.Eventually(t, 30*time.Second, "the instance back in DNS with the database", func() bool {
		return slices.Equal(servertest.InDNS(t, service), []string{p.Addr})
	})
}

// TestRegistrationOutlivesConsul starts a server while its Consul agent is
// down, then brings the agent up, then restarts it (a dev agent forgets all
// registrations when it restarts).
func TestRegistrationOutlivesConsul(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	own := servertest.OwnAgent(t)
	own.Stop()

	env := servertest.ConsulEnv("search-outage", "")
	env["CONSUL_HTTP_ADDR"] = own.HTTPAddr()
	env["CONSUL_RESYNC_INTERVAL"] = "200ms"
	ts := servertest.Start(t, env, true) // serves with Consul down
	cfg, _ := server.LoadConfig(ctx, envconfig.MapLookuper(env))
	registered := func() bool {
		eps, err := consul.ListEndpoints(ctx, own.Client(), cfg.Consul.ServiceName)
		return err == nil && len(eps) == 1 && eps[0].Addr() == ts.Addr
	}
	if _, err := ts.Client.Monitor(ctx, &searchv1.MonitorRequest{}); err != nil {
		t.Fatalf("serving without Consul: %v", err)
	}
	time.Sleep(500 * time.Millisecond) // some failed attempts
	if err := own.Start(ctx); err != nil {
		t.Fatal(err)
	}
	servertest.Eventually(t, 30*time.Second, "registration once Consul is up", registered)
	if err := own.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	servertest.Eventually(t, 30*time.Second, "registration again after the agent restarted", registered)
	ts.WaitHealth(t, healthpb.HealthCheckResponse_SERVING)
}

// TestCLIWaitsForAnInstance: a search-client run through Consul DNS while no
// instance is passing (all restarting, say) waits, within --timeout, for one
// to be listed instead of failing at once.
func TestCLIWaitsForAnInstance(t *testing.T) {
	t.Parallel()
	const service = "search-cli-waits"
	if got := servertest.InDNS(t, service); len(got) != 0 {
		t.Fatalf("instances %v before the test", got)
	}
	type result struct {
		out, errOut string
		code        int
	}
	done := make(chan result, 1)
	ts := &servertest.Server{Addr: ""}
	go func() {
		out, errOut, code := ts.RunClient(t, "--consul-dns", servertest.Agent.DNSAddr(), "--service", service, "--timeout", "60s", "monitor")
		done <- result{out, errOut, code}
	}()
	servertest.Start(t, servertest.ConsulEnv(service, ""), true)
	r := <-done
	if r.code != 0 || !strings.Contains(r.out, "instance:") {
		t.Errorf("monitor through DNS, started before any instance: exit %d\n%s%s", r.code, r.out, r.errOut)
	}
}
