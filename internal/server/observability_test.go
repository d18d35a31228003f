package server_test

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/kafka"
	"github.com/geosearch/search/internal/kafka/kafkatest"
	"github.com/geosearch/search/internal/server/servertest"
	"github.com/geosearch/search/internal/statsd/statsdtest"
)

var paris = &searchv1.SearchRequest{Point: &searchv1.Point{Lat: 48.85, Lng: 2.35}}

func TestMetricsAfterAKnownSequence(t *testing.T) {
	t.Parallel()
	l := statsdtest.Listen(t)
	ts := servertest.Start(t, map[string]string{
		"STATSD_ADDR":           l.Addr(),
		"STATSD_FLUSH_INTERVAL": "20ms",
		"STATSD_GAUGE_INTERVAL": "100ms",
	}, true)
	servertest.ImportFixture(t, ts) // 177 features, 5 of them repaired, none rejected
	for range 3 {
		if _, err := ts.Client.Search(context.Background(), paris); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ts.Client.Search(context.Background(), &searchv1.SearchRequest{}); err == nil {
		t.Fatal("empty search succeeded")
	}
	stream, err := ts.Client.Import(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []string{
		`{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}`,
		`{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1]]]}`, // open ring: repaired
		`{"type":"Point","coordinates":[0,0]}`,                   // rejected
	} {
		if err := stream.Send(&searchv1.ImportRequest{Name: "n", GeometryGeojson: g}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := stream.CloseAndRecv(); err != nil {
		t.Fatal(err)
	}

	const p = "search-service."
	l.WaitSum(t, p+"grpc.SearchService.Search.requests", "c", 4)
	l.WaitSum(t, p+"grpc.SearchService.Search.errors.InvalidArgument", "c", 1)
	l.WaitSum(t, p+"grpc.SearchService.Import.requests", "c", 2)
	l.WaitSum(t, p+"search.results", "c", 3) // France, three times
	l.WaitSum(t, p+"import.imported", "c", 177+2)
	l.WaitSum(t, p+"import.repaired", "c", 5+1)
	l.WaitSum(t, p+"import.rejected", "c", 1)
	if _, n := l.Sum(p+"grpc.SearchService.Search.latency", "ms"); n != 4 {
		t.Errorf("%d Search latency timings, want 4", n)
	}
	for _, g := range []string{"db.pool.in_use", "db.pool.idle", "db.pool.total"} {
		l.WaitSeen(t, p+g, "g")
	}
	if _, n := l.Sum(p+"grpc.SearchService.Search.errors.OK", "c"); n != 0 {
		t.Error("successful calls counted as errors")
	}
}

// logsOf reads the topic and returns the records' keys (instance IDs) and
// messages.
func logsOf(t *testing.T, broker string) []kafka.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var recs []kafka.Record
	err := kafka.Tail(ctx, kafka.TailOptions{Brokers: []string{broker}, Topic: "search-service-logs"}, func(r kafka.Record) error {
		recs = append(recs, r)
		return nil
	})
	if err != nil && !strings.Contains(err.Error(), "no partitions") {
		t.Fatal(err)
	}
	return recs
}

func TestLogsOfTwoInstancesReachOneTopic(t *testing.T) {
	t.Parallel()
	b := kafkatest.Start(t)
	db := servertest.Cluster.NewDatabase(t)
	a := servertest.Start(t, map[string]string{"DATABASE_URL": db, "KAFKA_BROKERS": b.Addr(), "INSTANCE_ID": "inst-a"}, true)
	c := servertest.Start(t, map[string]string{"DATABASE_URL": db, "KAFKA_BROKERS": b.Addr(), "INSTANCE_ID": "inst-b"}, true)
	for _, ts := range []*servertest.Server{a, c} {
		if _, err := ts.Client.Search(context.Background(), &searchv1.SearchRequest{Query: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	servertest.Eventually(t, 30*time.Second, "both instances' search logs in the topic", func() bool {
		seen := map[string]bool{}
		for _, r := range logsOf(t, b.Addr()) {
			if servertest.CountRecords(servertest.LogRecords(string(r.Value)), map[string]any{"method": "/search.v1.SearchService/Search"}) > 0 {
				seen[r.Key] = true
			}
		}
		return seen["inst-a"] && seen["inst-b"]
	})

	out, errOut, code := a.RunClient(t, "logs", "--brokers", b.Addr())
	if code != 0 || !strings.Contains(out, " INFO  inst-a rpc ") || !strings.Contains(out, " INFO  inst-b rpc ") {
		t.Errorf("search-client logs: exit %d\n%s%s", code, out, errOut)
	}
	out, _, code = a.RunClient(t, "logs", "--brokers", b.Addr(), "--instance", "inst-b", "--json")
	if code != 0 || strings.Contains(out, `"instance":"inst-a"`) || !strings.Contains(out, `"instance":"inst-b"`) {
		t.Errorf("logs --instance inst-b --json: exit %d\n%s", code, out)
	}
	out, _, code = a.RunClient(t, "logs", "--brokers", b.Addr(), "--since", "1h")
	if code != 0 || !strings.Contains(out, "inst-a") {
		t.Errorf("logs --since 1h: exit %d\n%s", code, out)
	}

	// --follow prints records that arrive after it started.
	follow := exec.Command(servertest.ClientBin, "logs", "--follow", "--brokers", b.Addr(), "--since", "1s")
	stdout, err := follow.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = follow.Process.Kill(); _ = follow.Wait() }()
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	deadline := time.After(30 * time.Second)
	for {
		if _, err := c.Client.Monitor(context.Background(), &searchv1.MonitorRequest{}); err != nil {
			t.Fatal(err)
		}
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatal("logs --follow ended")
			}
			if strings.Contains(line, "inst-b rpc") && strings.Contains(line, "SearchService/Monitor") {
				return
			}
		case <-time.After(500 * time.Millisecond):
		case <-deadline:
			t.Fatal("logs --follow never showed the live Monitor call")
		}
	}
}

func TestBrokerOutageNeverFailsASearch(t *testing.T) {
	t.Parallel()
	b := kafkatest.Start(t)
	l := statsdtest.Listen(t)
	ts := servertest.Start(t, map[string]string{
		"KAFKA_BROKERS":         b.Addr(),
		"LOG_QUEUE_SIZE":        "50",
		"STATSD_ADDR":           l.Addr(),
		"STATSD_FLUSH_INTERVAL": "20ms",
		"STATSD_GAUGE_INTERVAL": "100ms",
	}, true)
	servertest.ImportFixture(t, ts)
	servertest.Eventually(t, 30*time.Second, "logs flowing", func() bool { return len(logsOf(t, b.Addr())) > 0 })

	b.Stop()
	for i := range 300 {
		resp, err := ts.Client.Search(context.Background(), paris)
		if err != nil || len(resp.GetThings()) != 1 {
			t.Fatalf("search %d during the broker outage: %v", i, err)
		}
	}
	ts.WaitHealth(t, healthpb.HealthCheckResponse_SERVING)
	servertest.Eventually(t, 30*time.Second, "drops reported in the logs.dropped gauge", func() bool {
		ms, _ := l.All()
		for _, m := range ms {
			if m.Name == "search-service.logs.dropped" && m.Value > 0 {
				return true
			}
		}
		return false
	})

	b.Restart(t) // empty: anything in it now was shipped after the outage
	servertest.Eventually(t, 60*time.Second, "records to flow again", func() bool {
		if _, err := ts.Client.Search(context.Background(), paris); err != nil {
			t.Fatal(err)
		}
		return len(logsOf(t, b.Addr())) > 0
	})
}

func TestServesWithoutKafkaOrStatsD(t *testing.T) {
	t.Parallel()
	for name, env := range map[string]map[string]string{
		"broker never existed":  {"KAFKA_BROKERS": "127.0.0.1:1"},
		"statsd unresolvable":   {"STATSD_ADDR": "statsd.invalid:8125"},
		"statsd unreachable":    {"STATSD_ADDR": "127.0.0.1:1"},
		"kafka broker name bad": {"KAFKA_BROKERS": "kafka.invalid:9092"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ts := servertest.Start(t, env, true)
			for range 20 {
				if _, err := ts.Client.Search(context.Background(), &searchv1.SearchRequest{Query: "x"}); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// TestPprofIsOptInOnItsOwnMux checks that PPROF_ADDR serves the profiles and
// nothing else registered on http.DefaultServeMux.
func TestPprofIsOptInOnItsOwnMux(t *testing.T) {
	t.Parallel()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	http.HandleFunc("/pprof-test-default-mux", func(http.ResponseWriter, *http.Request) {})
	servertest.Start(t, map[string]string{"PPROF_ADDR": addr}, true)
	for path, want := range map[string]int{
		"/debug/pprof/cmdline":         http.StatusOK,
		"/debug/pprof/heap?debug=1":    http.StatusOK,
		"/pprof-test-default-mux":      http.StatusNotFound,
		"/debug/pprof/no-such-profile": http.StatusNotFound,
	} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %s, want %d", path, resp.Status, want)
		}
	}
}
