package server_test

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/server/servertest"
)

// importCircles imports n things into collection, each a 32-vertex circle
// of 0.04 degrees, on a grid of 0.1 degree steps from (40, 0).
func importCircles(t testing.TB, client searchv1.SearchServiceClient, collection string, n int) {
	t.Helper()
	stream, err := client.Import(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	side := int(math.Ceil(math.Sqrt(float64(n))))
	for i := range n {
		lat, lng := 40+float64(i/side)*0.1, float64(i%side)*0.1
		var b strings.Builder
		b.WriteString(`{"type":"Polygon","coordinates":[[`)
		for v := 0; v <= 32; v++ {
			a := 2 * math.Pi * float64(v%32) / 32
			if v > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "[%.5f,%.5f]", lng+0.04*math.Cos(a), lat+0.04*math.Sin(a))
		}
		b.WriteString(`]]}`)
		req := &searchv1.ImportRequest{Name: fmt.Sprintf("circle %06d", i), GeometryGeojson: b.String()}
		if i == 0 {
			req.Options = &searchv1.ImportOptions{Collection: collection}
		}
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil || resp.GetImported() != int64(n) {
		t.Fatalf("import %d circles: %v, %v", n, resp.GetImported(), err)
	}
}

// TestHTTPLoadLeavesGRPCAnsweredAndHealthTruthful is the HTTP edge's bound:
// 400 concurrent HTTP requests, half of them slow readers of large items
// pages and half nearest searches over a large collection, leave unary gRPC
// searches on another connection answered (none fails) and health
// SERVING, which is the truth since they are answered; the requests beyond
// HTTP_MAX_IN_FLIGHT, or beyond the database slots (DB_HTTP_MAX_CONNS) for
// HTTP_QUEUE_TIMEOUT, get 503 with Retry-After instead of waiting, and every
// admitted one ends with its answer: none waits for a connection, so none
// passes HTTP_REQUEST_TIMEOUT (504). Everything is counted; nothing is
// timed (the slowest answers are logged).
func TestHTTPLoadLeavesGRPCAnsweredAndHealthTruthful(t *testing.T) {
	t.Parallel()
	const things, readers, nearest = 20000, 200, 200
	ts := servertest.Start(t, map[string]string{"HTTP_LISTEN_ADDR": "127.0.0.1:0", "HTTP_REQUEST_TIMEOUT": "30s"}, true)
	importCircles(t, ts.Client, "big", things)
	base := "http://" + ts.Srv.HTTPAddr().String()

	conn, err := grpc.NewClient(ts.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	grpcClient := searchv1.NewSearchServiceClient(conn)
	health := healthpb.NewHealthClient(conn)

	var ok200, busy503, late504, other atomic.Int64
	var otherSeen sync.Map
	var noRetryAfter atomic.Int64
	// The slowest answer of each kind, headers only: reported, not
	// asserted (the machine's load decides them).
	var slowestMu sync.Mutex
	slowest := map[string]time.Duration{}
	record := func(resp *http.Response, err error, took time.Duration) {
		if err == nil {
			slowestMu.Lock()
			slowest[resp.Status] = max(slowest[resp.Status], took)
			slowestMu.Unlock()
		}
		switch {
		case err != nil:
			other.Add(1)
			otherSeen.Store(err.Error(), true)
		case resp.StatusCode == http.StatusOK:
			ok200.Add(1)
		case resp.StatusCode == http.StatusGatewayTimeout:
			late504.Add(1)
		case resp.StatusCode == http.StatusServiceUnavailable:
			busy503.Add(1)
			if resp.Header.Get("Retry-After") == "" {
				noRetryAfter.Add(1)
			}
		default:
			other.Add(1)
			otherSeen.Store(resp.Status, true)
		}
	}
	httpClient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: readers + nearest, MaxConnsPerHost: 0}}
	defer httpClient.CloseIdleConnections()
	slowRead := func(body io.Reader) error {
		buf := make([]byte, 32<<10)
		for {
			_, err := body.Read(buf)
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	go_ := make(chan struct{})
	var load sync.WaitGroup
	for i := range readers + nearest {
		load.Add(1)
		go func() {
			defer load.Done()
			<-go_
			url := base + "/collections/big/items?limit=1000"
			if i >= readers {
				url = fmt.Sprintf("%s/locate?lat=%g&lng=%g&max_distance_m=1000000&collections=big&limit=100", base, 47+float64(i%7)*0.1, 7+float64(i%5)*0.1)
			}
			start := time.Now()
			resp, err := httpClient.Get(url)
			took := time.Since(start)
			if err == nil {
				if i < readers && resp.StatusCode == http.StatusOK {
					err = slowRead(resp.Body)
				} else {
					_, err = io.Copy(io.Discard, resp.Body)
				}
				resp.Body.Close()
			}
			record(resp, err, took)
		}()
	}
	loadDone := make(chan struct{})
	go func() {
		load.Wait()
		close(loadDone)
	}()

	var searched, failed, serving, notServing int
	var failures []string
	close(go_)
	for running := true; running; {
		select {
		case <-loadDone:
			running = false
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := grpcClient.Search(ctx, &searchv1.SearchRequest{Collections: []string{"big"}, Point: &searchv1.Point{Lat: 47, Lng: 7}})
		cancel()
		searched++
		if err != nil || len(resp.GetThings()) != 1 {
			failed++
			failures = append(failures, fmt.Sprintf("%v things, %v", len(resp.GetThings()), err))
		}
		hc, err := health.Check(context.Background(), &healthpb.HealthCheckRequest{})
		if err == nil && hc.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			serving++
		} else {
			notServing++
		}
	}

	t.Logf("HTTP: %d answered 200, %d refused 503, %d past their deadline 504, %d other; gRPC: %d searches, %d failed; health: %d SERVING, %d not",
		ok200.Load(), busy503.Load(), late504.Load(), other.Load(), searched, failed, serving, notServing)
	t.Logf("HTTP: the slowest answer of each status, to its headers: %v", slowest)
	if failed > 0 {
		t.Errorf("%d of %d gRPC searches failed during the HTTP load: %v", failed, searched, failures)
	}
	if searched < 2 {
		t.Errorf("only %d gRPC searches ran during the HTTP load", searched)
	}
	if notServing > 0 {
		t.Errorf("health was not SERVING %d times of %d while every gRPC search was answered", notServing, serving+notServing)
	}
	if got := ok200.Load() + busy503.Load() + late504.Load(); got != readers+nearest {
		var seen []string
		otherSeen.Range(func(k, _ any) bool { seen = append(seen, k.(string)); return true })
		t.Errorf("%d of %d HTTP requests ended with 200, 503 or 504; the others: %v", got, readers+nearest, seen)
	}

	if n := late504.Load(); n > 0 {
		t.Errorf("%d admitted HTTP requests passed HTTP_REQUEST_TIMEOUT (504) instead of being answered", n)
	}
	if busy503.Load() == 0 {
		t.Error("no HTTP request was refused: the load never reached HTTP_MAX_IN_FLIGHT")
	}
	if ok200.Load() == 0 {
		t.Error("no HTTP request was answered")
	}
	if n := noRetryAfter.Load(); n > 0 {
		t.Errorf("%d 503 answers had no Retry-After", n)
	}
}
