package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/geosearch/search/internal/geo/geotest"
	"github.com/geosearch/search/internal/server/servertest"
)

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestHTTPAPIServedRegisteredAndShutDownInOrder: with HTTP_LISTEN_ADDR the
// server answers HTTP from the same data as gRPC, registers the HTTP API
// as its own Consul service with a passing HTTP check on /readyz, and at
// SIGTERM turns /readyz to 503 and leaves Consul with both services before
// draining both servers.
func TestHTTPAPIServedRegisteredAndShutDownInOrder(t *testing.T) {
	t.Parallel()
	const service = "search-http-api"
	env := servertest.ConsulEnv(service, servertest.Cluster.NewDatabase(t))
	env["HTTP_LISTEN_ADDR"] = "127.0.0.1:0"
	env["HTTP_SERVICE_NAME"] = service + "-http"
	p := servertest.StartProc(t, env)
	base := "http://" + p.HTTPAddr(t)

	ts := &servertest.Server{Addr: p.Addr}
	if out, errOut, code := ts.RunClient(t, "import", geotest.Testdata("ne_110m_countries.geojson"), "--key-property", "name"); code != 0 {
		t.Fatalf("import over gRPC: %s%s", out, errOut)
	}
	code, body := httpGet(t, base+"/locate?lat=48.85&lng=2.35")
	if code != http.StatusOK || !strings.Contains(body, `"name":"France"`) {
		t.Errorf("GET /locate: %d %s", code, body)
	}
	code, body = httpGet(t, base+"/collections/default/items?limit=1000")
	var page struct{ NumberReturned int }
	if code != http.StatusOK || json.Unmarshal([]byte(body), &page) != nil || page.NumberReturned != 177 {
		t.Errorf("items: %d, numberReturned %d, want the 177 imported", code, page.NumberReturned)
	}

	servertest.Eventually(t, 30*time.Second, "a passing HTTP check of "+service+"-http in Consul", func() bool {
		checks, _, err := servertest.Agent.Client().Health().Checks(service+"-http", nil)
		return err == nil && len(checks) == 1 && checks[0].Type == "http" && checks[0].Status == "passing"
	})
	entries, _, err := servertest.Agent.Client().Health().Service(service+"-http", "", true, nil)
	if err != nil || len(entries) != 1 || entries[0].Service.Port == 0 || !strings.HasSuffix(base, ":"+strconv.Itoa(entries[0].Service.Port)) || entries[0].Service.Tags[0] != "http" {
		t.Fatalf("catalog entry of %s-http: %+v, %v", service, entries, err)
	}

	p.Signal(t, syscall.SIGTERM)
	if err := p.Wait(t); err != nil {
		t.Errorf("exit: %v", err)
	}
	want := "health NOT_SERVING|deregistering from Consul|draining in-flight RPCs and HTTP requests|closing database pool|flushing metrics and logs"
	if got := strings.Join(p.ShutdownSteps(""), "|"); got != want {
		t.Errorf("shutdown steps %q, want %q", got, want)
	}
	for _, name := range []string{service, service + "-http"} {
		if checks, _, err := servertest.Agent.Client().Health().Checks(name, nil); err != nil || len(checks) != 0 {
			t.Errorf("%s still in Consul after shutdown: %+v, %v", name, checks, err)
		}
	}
}
