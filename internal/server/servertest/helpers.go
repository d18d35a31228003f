package servertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/consul"
	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/geo/geotest"
	"github.com/geosearch/search/internal/grpcapi"
	"github.com/geosearch/search/internal/postgis/postgistest"
)

// ConsulEnv registers a server as service under the test agent, with fast
// checks.
func ConsulEnv(service, dbURL string) map[string]string {
	return map[string]string{
		"DATABASE_URL":          dbURL,
		"CONSUL_REGISTER":       "true",
		"CONSUL_HTTP_ADDR":      Agent.HTTPAddr(),
		"SERVICE_NAME":          service,
		"CONSUL_CHECK_INTERVAL": "500ms",
		// A -race server on a loaded machine answered a check in over
		// 150ms (the timeout was that) and fell out of DNS.
		"CONSUL_CHECK_TIMEOUT": "500ms",
	}
}

// InDNS lists the addresses Consul DNS gives for service.
func InDNS(t *testing.T, service string) []string {
	t.Helper()
	addrs, err := consul.DNSLookup{Server: Agent.DNSAddr()}.Lookup(context.Background(), service)
	if err != nil {
		t.Fatal(err)
	}
	return addrs
}

// Eventually waits, polling, until cond holds, and fails the test after
// within.
func Eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// DiscoveryClient is what search-client builds without --addr.
func DiscoveryClient(t *testing.T, service string) searchv1.SearchServiceClient {
	t.Helper()
	return DiscoveryClientVia(t, Agent.DNSAddr(), service)
}

// DiscoveryClientVia is DiscoveryClient through the Consul DNS at dnsAddr.
func DiscoveryClientVia(t *testing.T, dnsAddr, service string) searchv1.SearchServiceClient {
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

// CallLoop makes one call after another until stopped, pausing between
// calls, and counts what succeeded and what failed.
type CallLoop struct {
	OK, Failed atomic.Int64
	firstErr   atomic.Value
	done       chan struct{}
	wg         sync.WaitGroup
}

// StartLoop calls call until stopped, pausing between calls.
func StartLoop(pause time.Duration, call func() error) *CallLoop {
	l := &CallLoop{done: make(chan struct{})}
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
				l.Failed.Add(1)
				l.firstErr.CompareAndSwap(nil, err.Error())
			} else {
				l.OK.Add(1)
			}
			time.Sleep(pause)
		}
	}()
	return l
}

// Stop ends the loop and returns its counts and first failure.
func (l *CallLoop) Stop() (ok, failed int64, firstErr any) {
	close(l.done)
	l.wg.Wait()
	return l.OK.Load(), l.Failed.Load(), l.firstErr.Load()
}

// SearchParis searches for Paris within timeout; anything but France alone
// is an error.
func SearchParis(client searchv1.SearchServiceClient, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	resp, err := client.Search(ctx, &searchv1.SearchRequest{Point: &searchv1.Point{Lat: 48.85, Lng: 2.35}})
	if err != nil {
		return err
	}
	if n := len(resp.GetThings()); n != 1 {
		return fmt.Errorf("the search for Paris found %d things, want 1", n)
	}
	return nil
}

// StartSearchLoop searches for Paris through client until stopped.
func StartSearchLoop(client searchv1.SearchServiceClient) *CallLoop {
	return StartLoop(2*time.Millisecond, func() error { return SearchParis(client, 10*time.Second) })
}

// ImportFixture imports the 1:110m countries (177) through ts, for the
// tests in which the import is part of what they check; the others start
// on FixtureDB.
func ImportFixture(t testing.TB, ts *Server) {
	t.Helper()
	stream, err := ts.Client.Import(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, rf := range geotest.LoadRaw(t, "ne_110m_countries.geojson") {
		if err := stream.Send(&searchv1.ImportRequest{Name: rf.Name, Key: rf.Key, GeometryGeojson: string(rf.GeometryJSON)}); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil || resp.GetImported() != 177 {
		t.Fatalf("import fixture: %v, %v", resp, err)
	}
}

// FixtureDB is a new database of Cluster holding what ImportFixture leaves
// (the 1:110m countries, 177 things, in collection default): a copy of one
// imported once per cluster through the store, for the tests to which the
// import is only a starting point. Pass it as DATABASE_URL to Start.
func FixtureDB(t testing.TB) string {
	t.Helper()
	raws := geotest.LoadRaw(t, "ne_110m_countries.geojson")
	return Cluster.NewDatabaseFrom(t, "ne_110m_countries", postgistest.ImportFill(geo.ImportOptions{}, raws, func(res geo.ImportResult) error {
		if res.Imported != 177 {
			return fmt.Errorf("imported %d, want 177 (rejected %v)", res.Imported, res.Rejected.Listed)
		}
		return nil
	}))
}

// readyz answers the HTTP readiness route's status code (0 when it does
// not answer).
// Readyz is the status of ts's HTTP readiness route, 0 when it does not
// answer.
func Readyz(ts *Server) int {
	resp, err := http.Get("http://" + ts.Srv.HTTPAddr().String() + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// secret returns a random string that stands out in a log: what tests grep
// for to prove a secret never leaks.
// Secret is a random value named kind, to look for in outputs.
func Secret(kind string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return kind + "-" + hex.EncodeToString(b[:])
}

// PutKV sets key to value in Consul KV.
func PutKV(t *testing.T, kv *api.KV, key, value string) {
	t.Helper()
	if _, err := kv.Put(&api.KVPair{Key: key, Value: []byte(value)}, nil); err != nil {
		t.Fatal(err)
	}
}
