package main

import (
	"context"
	"errors"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/geo/geotest"
	"github.com/geosearch/search/internal/kafka/kafkatest"
	"github.com/geosearch/search/internal/server/servertest"
	"github.com/geosearch/search/internal/statsd/statsdtest"
)

// TestSIGTERMDrainsAndExitsCleanly runs the real binary with metrics and log
// shipping on, starts a large SearchStream, sends SIGTERM while the stream
// is in flight, and checks that the stream is still delivered whole, that
// the shutdown steps run in their documented order, and that the process
// exits 0.
func TestSIGTERMDrainsAndExitsCleanly(t *testing.T) {
	t.Parallel()
	db := servertest.Cluster.NewDatabase(t)
	statsd := statsdtest.Listen(t)
	broker := kafkatest.Start(t)
	p := servertest.StartProc(t, map[string]string{"DATABASE_URL": db, "STATSD_ADDR": statsd.Addr(), "KAFKA_BROKERS": broker.Addr()})
	// Fixed 64 KiB windows (which turn off gRPC's BDP window growth) keep
	// the server at most that far ahead of this client's reads.
	conn, err := grpc.NewClient(p.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(1<<16), grpc.WithInitialConnWindowSize(1<<16))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ts := &servertest.Server{Addr: p.Addr, DBURL: db, Conn: conn, Client: searchv1.NewSearchServiceClient(conn)}
	ts.WaitHealth(t, healthpb.HealthCheckResponse_SERVING)
	if out, errOut, code := ts.RunClient(t, "import", geotest.Testdata("ne_50m_countries.geojson")); code != 0 {
		t.Fatalf("import: %s%s", out, errOut)
	}

	// Geometry makes the stream megabytes long: flow control holds the
	// server mid-stream until this client reads on.
	stream, err := ts.Client.SearchStream(context.Background(), &searchv1.SearchRequest{Query: "a", IncludeGeometry: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	p.Signal(t, syscall.SIGTERM)
	time.Sleep(200 * time.Millisecond) // let shutdown begin while the stream waits
	n := 1
	for {
		_, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("stream broken by shutdown after %d things: %v", n, err)
		}
		n++
	}
	if n < 100 {
		t.Errorf("stream delivered %d things, want every name with an a", n)
	}
	if err := p.Wait(t); err != nil {
		t.Errorf("exit after SIGTERM: %v, want status 0", err)
	}
	// The stream's own log record comes when it ends: after the drain
	// began, or the test proved nothing about draining.
	want := "health NOT_SERVING|draining in-flight RPCs|rpc ended OK|closing database pool|flushing metrics and logs"
	if got := strings.Join(p.ShutdownSteps("/search.v1.SearchService/SearchStream"), "|"); got != want {
		t.Errorf("shutdown steps %q, want %q", got, want)
	}
}
