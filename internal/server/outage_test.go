package server_test

import (
	"context"
	"slices"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/geosearch/search/internal/consul"
	"github.com/geosearch/search/internal/kafka/kafkatest"
	"github.com/geosearch/search/internal/server/servertest"
	"github.com/geosearch/search/internal/statsd/statsdtest"
	searchv1 "github.com/geosearch/search/proto/search/v1"
)

// longOutage is how long the outages of the fault tests under load last.
const longOutage = time.Minute

// TestConsulAndKafkaDownForAMinuteUnderLoad stops the server's Consul agent
// and its Kafka broker for a minute, together (one minute of CI time for
// both), while clients search in a loop:
//   - a client with the server's address sees no failed search, throughout;
//   - a client that found the server through Consul DNS before the outage
//     keeps the instance it knew and sees no failed search while Consul is
//     down;
//   - the server stays SERVING;
//   - log records that cannot be shipped are dropped and counted
//     (logs.dropped), and shipping resumes once the broker is back;
//   - the agent comes back empty (a dev agent keeps no state, like a lost
//     node), and the server registers again and passes its check, so DNS
//     names it again; and again after one more restart of the servertest.Agent.
func TestConsulAndKafkaDownForAMinuteUnderLoad(t *testing.T) {
	t.Parallel()
	const service = "search-long-outage"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	own := servertest.OwnAgent(t)
	b := kafkatest.Start(t)
	l := statsdtest.Listen(t)
	env := servertest.ConsulEnv(service, "")
	env["CONSUL_HTTP_ADDR"] = own.HTTPAddr()
	env["KAFKA_BROKERS"] = b.Addr()
	env["LOG_QUEUE_SIZE"] = "100"
	env["STATSD_ADDR"] = l.Addr()
	env["STATSD_FLUSH_INTERVAL"] = "20ms"
	env["STATSD_GAUGE_INTERVAL"] = "100ms"
	ts := servertest.Start(t, env, true)
	servertest.ImportFixture(t, ts)

	inOwnDNS := func() bool {
		addrs, err := consul.DNSLookup{Server: own.DNSAddr()}.Lookup(ctx, service)
		return err == nil && slices.Equal(addrs, []string{ts.Addr})
	}
	servertest.Eventually(t, 30*time.Second, "the instance in DNS", inOwnDNS)
	servertest.Eventually(t, 30*time.Second, "logs flowing", func() bool { return len(logsOf(t, b.Addr())) > 0 })
	discovering := servertest.DiscoveryClientVia(t, own.DNSAddr(), service)
	servertest.Eventually(t, 30*time.Second, "a search through discovery", func() bool {
		resp, err := discovering.Search(ctx, paris)
		return err == nil && len(resp.GetThings()) == 1
	})
	// A search every 10 ms per loop (about 80 a second each) through the
	// outage: every search must succeed. StartSearchLoop's 2 ms pause made
	// 30,000 searches and cost 64 s of CPU under -race, for the same
	// question.
	searchParis := func(c searchv1.SearchServiceClient) func() error {
		return func() error { return servertest.SearchParis(c, 10*time.Second) }
	}
	direct := servertest.StartLoop(10*time.Millisecond, searchParis(ts.Client))
	discovered := servertest.StartLoop(10*time.Millisecond, searchParis(discovering))

	own.Stop()
	b.Stop()
	down := time.Now()
	dropped := func() float64 {
		ms, _ := l.All()
		var last float64
		for _, m := range ms {
			if m.Name == "search-service.logs.dropped" {
				last = m.Value
			}
		}
		return last
	}
	// The outage lasts its minute and, counted rather than timed, until
	// each loop has made 100 searches in it.
	during := func(l *servertest.CallLoop) int64 { return l.OK.Load() + l.Failed.Load() }
	directAtDown, discoveredAtDown := during(direct), during(discovered)
	// Bounded: loops that stop making searches fail the test here rather
	// than hang it until go test's timeout.
	giveUp := down.Add(longOutage + 2*time.Minute)
	for time.Since(down) < longOutage || during(direct) < directAtDown+100 || during(discovered) < discoveredAtDown+100 {
		if time.Now().After(giveUp) {
			t.Fatalf("%s into the outage, %d direct and %d discovered searches made in it; want 100 each",
				time.Since(down).Round(time.Second), during(direct)-directAtDown, during(discovered)-discoveredAtDown)
		}
		ts.WaitHealth(t, healthpb.HealthCheckResponse_SERVING)
		time.Sleep(time.Second)
	}
	// A dev agent comes back empty: until the server has registered again,
	// DNS names nobody, so the discovering client is checked up to here.
	ok, failed, firstErr := discovered.Stop()
	t.Logf("searches through discovery during the %s Consul outage: %d ok, %d failed", longOutage, ok, failed)
	if failed != 0 {
		t.Errorf("%d searches through discovery failed (first: %v), %d ok; want none failed", failed, firstErr, ok)
	}
	droppedDuringOutage := dropped()
	if droppedDuringOutage == 0 {
		t.Error("no drops counted in logs.dropped during the broker outage")
	}

	if err := own.Start(ctx); err != nil {
		t.Fatal(err)
	}
	b.Restart(t) // empty: anything in it now was shipped after the outage
	back := time.Now()
	servertest.Eventually(t, 90*time.Second, "the instance registered and passing again after the outage", inOwnDNS)
	t.Logf("registered and passing again %s after Consul came back", time.Since(back).Round(100*time.Millisecond))
	servertest.Eventually(t, 60*time.Second, "searches logged to the restarted broker", func() bool {
		for _, r := range logsOf(t, b.Addr()) {
			if servertest.CountRecords(servertest.LogRecords(string(r.Value)), map[string]any{"method": "/search.v1.SearchService/Search"}) > 0 {
				return true
			}
		}
		return false
	})
	t.Logf("shipping resumed %s after the broker came back; %.0f records dropped during the outage",
		time.Since(back).Round(100*time.Millisecond), droppedDuringOutage)
	servertest.Eventually(t, 30*time.Second, "a search through discovery after the outage", func() bool {
		resp, err := discovering.Search(ctx, paris)
		return err == nil && len(resp.GetThings()) == 1
	})

	// The agent restarted under load, once more.
	if err := own.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	servertest.Eventually(t, 60*time.Second, "the instance registered again after an agent restart", inOwnDNS)
	t.Logf("registered again %s after the agent restarted", time.Since(restarted).Round(100*time.Millisecond))

	ok, failed, firstErr = direct.Stop()
	t.Logf("searches by address during the outage and recovery: %d ok, %d failed", ok, failed)
	if failed != 0 {
		t.Errorf("%d searches failed (first: %v), %d ok; want none failed", failed, firstErr, ok)
	}
}
