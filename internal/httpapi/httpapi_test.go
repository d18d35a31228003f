package httpapi_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/geo/geotest"
	"github.com/geosearch/search/internal/httpapi"
	"github.com/geosearch/search/internal/metrics"
	"github.com/geosearch/search/internal/postgis"
	"github.com/geosearch/search/internal/postgis/postgistest"
)

var cluster *postgistest.Cluster

func TestMain(m *testing.M) { os.Exit(postgistest.Main(m, &cluster)) }

// lockedBuffer is a log destination that tests read while the server
// writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// records returns the JSON log records written so far.
func (l *lockedBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.b.String()), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, rec)
	}
	return out
}

// countingMetrics records counters, for the per-route metrics.
type countingMetrics struct {
	mu     sync.Mutex
	counts map[string]int64
	timers map[string]int
}

func (m *countingMetrics) Count(name string, n int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.counts[name] += n
}

func (m *countingMetrics) Timing(name string, _ time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.timers[name]++
}

func (m *countingMetrics) Gauge(string, int64) {}

func (m *countingMetrics) count(name string) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.counts[name]
}

var _ metrics.Metrics = (*countingMetrics)(nil)

// setup says how a test server is built.
type setup struct {
	fixture string // testdata file loaded; "" for none
	cfg     httpapi.Config
	limits  httpapi.Limits
	tokens  *geo.Tokens
	tls     *tls.Config
	// wrap, when set, wraps the store the API is given (to count calls).
	wrap func(geo.SearchService) geo.SearchService
	// wrapProperties, when set, wraps the store's PropertyLister.
	wrapProperties func(geo.PropertyLister) geo.PropertyLister
	// consistency, when set, is what Consistency-Token headers wait on.
	consistency geo.ReadYourWrites
	// dbConns is Deps.DBConns: the database slots; 0: none.
	dbConns int
}

// api is a running HTTP API on loopback over real PostGIS.
type api struct {
	base    string
	srv     *httpapi.Server
	svc     *postgis.SearchService
	pool    *pgxpool.Pool // the store's, for what the API does not do (ANALYZE)
	client  *http.Client
	access  *lockedBuffer
	metrics *countingMetrics
}

// start runs the HTTP API on a fresh database loaded with the 1:110m
// countries (177 things) unless opts say otherwise: a copy of one the
// package imported once (postgistest's NewDatabaseFrom).
func start(t testing.TB, opts ...func(*setup)) *api {
	t.Helper()
	st := setup{
		fixture: "ne_110m_countries.geojson",
		cfg: httpapi.Config{ListenAddr: "127.0.0.1:0", ServiceName: "search-service-http", MaxBodyBytes: 1 << 20,
			TileMaxBytes: 512 << 10, TileCacheBytes: 16 << 20, TileMaxAge: time.Minute},
		limits: httpapi.Limits{DefaultPageSize: 10, MaxPageSize: 50, LocateBatchSize: 50, LocateBatchWait: 2 * time.Millisecond},
	}
	for _, o := range opts {
		o(&st)
	}
	var dbURL string
	if st.fixture == "" {
		dbURL = cluster.NewDatabase(t)
	} else {
		dbURL = cluster.NewDatabaseFrom(t, st.fixture, postgistest.ImportFill(geo.ImportOptions{}, geotest.LoadRaw(t, st.fixture), func(res geo.ImportResult) error {
			if res.Rejected.Count > 0 {
				return fmt.Errorf("%d rejected: %v", res.Rejected.Count, res.Rejected.Listed)
			}
			return nil
		}))
	}
	pool, err := postgis.Open(context.Background(), postgis.Config{URL: dbURL, MaxWriteConns: 2}, "httpapi-test", postgis.NewStatementTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	svc := postgis.NewSearchService(pool)
	access := &lockedBuffer{}
	m := &countingMetrics{counts: map[string]int64{}, timers: map[string]int{}}
	logger := slog.New(slog.NewJSONHandler(io.Discard, nil))
	var served geo.SearchService = svc
	if st.wrap != nil {
		served = st.wrap(svc)
	}
	var props geo.PropertyLister = svc
	if st.wrapProperties != nil {
		props = st.wrapProperties(svc)
	}
	srv, err := httpapi.New(served, st.cfg, st.limits, httpapi.Deps{
		Logger:      logger,
		Access:      slog.New(slog.NewJSONHandler(access, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Metrics:     m,
		Tokens:      st.tokens,
		TLS:         st.tls,
		Version:     "test",
		Properties:  props,
		Tiles:       svc,
		Consistency: st.consistency,
		DBConns:     st.dbConns,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.SetReady(true)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve()
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	scheme := "http://"
	if st.tls != nil {
		scheme = "https://"
	}
	return &api{base: scheme + srv.Addr().String(), srv: srv, svc: svc, pool: pool, client: &http.Client{Timeout: time.Minute}, access: access, metrics: m}
}

// response is a finished request.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("body is not a JSON object: %v\n%s", err, r.body)
	}
	return v
}

// do sends a request; path may be a full URL (a link) or a path.
func (a *api) do(t *testing.T, method, path string, body io.Reader, header ...string) response {
	t.Helper()
	url := path
	if strings.HasPrefix(path, "/") {
		url = a.base + path
	}
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := a.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read: %v", method, path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func (a *api) get(t *testing.T, path string, header ...string) response {
	t.Helper()
	return a.do(t, http.MethodGet, path, nil, header...)
}

// wantException checks an error answer: its status and the exception body
// of OGC API – Features (code and description), whose description contains
// want.
func wantException(t *testing.T, name string, r response, status int, want string) {
	t.Helper()
	if r.status != status {
		t.Errorf("%s: status %d, want %d; body %s", name, r.status, status, r.body)
		return
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q, want application/json", name, ct)
	}
	var e struct{ Code, Description string }
	if err := json.Unmarshal(r.body, &e); err != nil || e.Code == "" {
		t.Errorf("%s: body is not an exception (code, description): %s", name, r.body)
		return
	}
	if !strings.Contains(e.Description, want) {
		t.Errorf("%s: description %q, want it to contain %q", name, e.Description, want)
	}
}
