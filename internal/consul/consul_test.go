package consul_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/geosearch/search/internal/consul"
	"github.com/geosearch/search/internal/consul/consultest"
	"github.com/geosearch/search/internal/grpcapi"
)

var agent *consultest.Agent

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	var err error
	agent, err = consultest.Start(ctx)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "consultest: %v\n", err)
		os.Exit(1)
	}
	code := m.Run()
	agent.Close()
	os.Exit(code)
}

// instance is a real gRPC server with the health service, registered in
// Consul through a Registrar.
type instance struct {
	addr   string
	server *grpc.Server
	health *health.Server
	reg    *consul.Registrar
	stop   context.CancelFunc
}

func startInstance(t *testing.T, cfg consul.Config, id string) *instance {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	in := &instance{addr: lis.Addr().String(), server: grpc.NewServer(), health: health.NewServer()}
	healthpb.RegisterHealthServer(in.server, in.health)
	go func() { _ = in.server.Serve(lis) }()
	t.Cleanup(in.server.Stop)
	host, port, err := consul.AdvertiseHostPort(cfg, lis.Addr())
	if err != nil {
		t.Fatal(err)
	}
	in.reg, err = consul.NewRegistrar(cfg, consul.Instance{ID: id, Version: "test", Host: host, Port: port}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	in.stop = cancel
	done := make(chan struct{})
	go func() { in.reg.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		_ = in.reg.Deregister(context.Background())
	})
	return in
}

func testConfig(service string) consul.Config {
	return consul.Config{
		Register: true, HTTPAddr: agent.HTTPAddr(), ServiceName: service,
		CheckInterval: 200 * time.Millisecond, CheckTimeout: 100 * time.Millisecond,
		DeregisterAfter: time.Minute, ResyncInterval: 200 * time.Millisecond,
	}
}

// eventually polls cond every 50ms for up to 30s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func dnsSees(t *testing.T, service string) []string {
	t.Helper()
	addrs, err := consul.DNSLookup{Server: agent.DNSAddr()}.Lookup(context.Background(), service)
	if err != nil {
		t.Fatal(err)
	}
	return addrs
}

func sortedAddrs(ins ...*instance) []string {
	var out []string
	for _, in := range ins {
		out = append(out, in.addr)
	}
	slices.Sort(out)
	return out
}

func TestRegisteredInstancesAppearInDNSOnlyWhilePassing(t *testing.T) {
	t.Parallel()
	cfg := testConfig("dns-health")
	a, b := startInstance(t, cfg, "a"), startInstance(t, cfg, "b")
	want := sortedAddrs(a, b)
	eventually(t, "both instances in DNS", func() bool { return slices.Equal(dnsSees(t, cfg.ServiceName), want) })

	a.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	eventually(t, "the NOT_SERVING instance to leave DNS", func() bool { return slices.Equal(dnsSees(t, cfg.ServiceName), []string{b.addr}) })
	a.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	eventually(t, "it to come back", func() bool { return slices.Equal(dnsSees(t, cfg.ServiceName), want) })

	start := time.Now()
	if err := b.reg.Deregister(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := dnsSees(t, cfg.ServiceName); !slices.Equal(got, []string{a.addr}) {
		t.Errorf("right after deregistering: DNS has %v, want only %s", got, a.addr)
	}
	t.Logf("deregistered and gone from DNS in %s", time.Since(start))
}

func TestTwoInstancesOnOneHostHaveDistinctIDs(t *testing.T) {
	t.Parallel()
	cfg := testConfig("distinct-ids")
	a, b := startInstance(t, cfg, "host-1111"), startInstance(t, cfg, "host-2222")
	if a.reg.ServiceID() == b.reg.ServiceID() {
		t.Fatalf("both registered as %s", a.reg.ServiceID())
	}
	var eps []consul.Endpoint
	eventually(t, "both listed", func() bool {
		var err error
		eps, err = consul.ListEndpoints(context.Background(), agent.Client(), cfg.ServiceName)
		return err == nil && len(eps) == 2
	})
	got := []string{eps[0].ServiceID + " " + eps[0].Instance, eps[1].ServiceID + " " + eps[1].Instance}
	want := []string{"distinct-ids-host-1111 host-1111", "distinct-ids-host-2222 host-2222"}
	if !slices.Equal(got, want) {
		t.Errorf("listed %v, want %v", got, want)
	}
}

func TestResolversSpreadCallsAndFollowChanges(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		builder func() grpc.DialOption
		target  func(service string) string
	}{
		{"dns", func() grpc.DialOption { return grpc.WithResolvers(consul.DNSBuilder{Interval: 200 * time.Millisecond}) },
			func(s string) string { return consul.DNSTarget(agent.DNSAddr(), s) }},
		{"http", func() grpc.DialOption { return grpc.WithResolvers(consul.HTTPBuilder{}) },
			func(s string) string { return consul.HTTPTarget(agent.HTTPAddr(), s) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig("spread-" + tt.name)
			ins := []*instance{startInstance(t, cfg, "1"), startInstance(t, cfg, "2"), startInstance(t, cfg, "3")}
			eventually(t, "three instances in DNS", func() bool { return len(dnsSees(t, cfg.ServiceName)) == 3 })

			conn, err := grpc.NewClient(tt.target(cfg.ServiceName), tt.builder(),
				grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultServiceConfig(grpcapi.ClientServiceConfig))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			client := healthpb.NewHealthClient(conn)
			peers := func(calls int) map[string]int {
				seen := map[string]int{}
				for range calls {
					var p peer.Peer
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					_, err := client.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Peer(&p))
					cancel()
					if err != nil {
						t.Fatalf("call failed: %v", err)
					}
					seen[p.Addr.String()]++
				}
				return seen
			}
			eventually(t, "calls to reach all three", func() bool { return len(peers(30)) == 3 })

			// One instance dies: calls keep succeeding (retries on
			// UNAVAILABLE), and once discovery drops it, nobody calls it.
			ins[0].server.Stop()
			eventually(t, "the dead instance to drop out", func() bool {
				seen := peers(30)
				_, dead := seen[ins[0].addr]
				return !dead && len(seen) == 2
			})

			// A new instance joins without restarting the client.
			ins = append(ins, startInstance(t, cfg, "4"))
			eventually(t, "the new instance to get calls", func() bool { return peers(30)[ins[3].addr] > 0 })

			// Every instance turns unhealthy but stays up: discovery
			// publishes the empty list, so the client stops calling them
			// (their Check would still answer): calls wait for an instance
			// (waitForReady) until their deadline.
			for _, in := range ins[1:] {
				in.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
			}
			eventually(t, "calls to stop reaching unhealthy instances", func() bool {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				_, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
				return status.Code(err) == codes.DeadlineExceeded
			})
		})
	}
}

func TestNoInstancesIsAClearError(t *testing.T) {
	t.Parallel()
	conn, err := grpc.NewClient(consul.DNSTarget(agent.DNSAddr(), "nobody-here"), grpc.WithResolvers(consul.DNSBuilder{}),
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultServiceConfig(grpcapi.ClientServiceConfig))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// The call waits for an instance (waitForReady) until its deadline,
	// then fails with the resolver's reason.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err == nil || !strings.Contains(err.Error(), `no healthy instance of "nobody-here" found through Consul DNS at `+agent.DNSAddr()) {
		t.Errorf("error %v, want one naming the service and the DNS server", err)
	}
}

// TestRegistrarOutlivesTheAgent stops and restarts a dedicated agent: an
// instance started while Consul is down registers once it is up, and an
// agent that restarts (forgetting everything) gets the registration back.
func TestRegistrarOutlivesTheAgent(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	own, err := consultest.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close()
	own.Stop()

	cfg := testConfig("outage")
	cfg.HTTPAddr = own.HTTPAddr()
	in := startInstance(t, cfg, "x")
	registered := func() bool {
		svc, _, err := own.Client().Agent().Service(in.reg.ServiceID(), nil)
		return err == nil && svc != nil
	}
	time.Sleep(500 * time.Millisecond) // a few failed attempts while the agent is down
	if err := own.Start(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "registration after Consul came up", registered)
	if err := own.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "registration after the agent restarted", registered)
}
