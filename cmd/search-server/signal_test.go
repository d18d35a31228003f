package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/geo/geotest"
)

// TestSIGTERMDrainsAndExitsCleanly runs the real binary, starts a large
// SearchStream, sends SIGTERM while the stream is in flight, and checks that
// the stream is still delivered whole, that the shutdown steps run in their
// documented order, and that the process exits 0.
func TestSIGTERMDrainsAndExitsCleanly(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "search-server")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	db := cluster.NewDatabase(t)
	cmd := exec.Command(bin, "--listen-addr", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+db, "HEALTH_CHECK_INTERVAL=100ms")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	// The first log line with an address tells where the server listens.
	lines := make(chan map[string]any, 1000)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var rec map[string]any
			if json.Unmarshal(sc.Bytes(), &rec) == nil {
				lines <- rec
			}
		}
		close(lines)
	}()
	var addr string
	for rec := range lines {
		if a, ok := rec["addr"].(string); ok {
			addr = a
			break
		}
	}
	if addr == "" {
		t.Fatal("server never logged its address")
	}
	ts := &testServer{addr: addr, dbURL: db}
	// Fixed 64 KiB windows (which turn off gRPC's BDP window growth) keep
	// the server at most that far ahead of this client's reads.
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(1<<16), grpc.WithInitialConnWindowSize(1<<16))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ts.conn, ts.client = conn, searchv1.NewSearchServiceClient(conn)
	ts.waitHealth(t, 1) // SERVING
	out, errOut, code := ts.runClient(t, "import", geotest.Testdata("ne_50m_countries.geojson"))
	if code != 0 {
		t.Fatalf("import: %s%s", out, errOut)
	}

	// Geometry makes the stream megabytes long: flow control holds the
	// server mid-stream until this client reads on.
	stream, err := ts.client.SearchStream(context.Background(), &searchv1.SearchRequest{Query: "a", IncludeGeometry: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
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

	var steps []string
	for rec := range lines {
		if s, ok := rec["step"].(string); ok {
			steps = append(steps, s)
		}
		// The stream's own log record comes when it ends: after the drain
		// began, or the test proved nothing about draining.
		if rec["method"] == "/search.v1.SearchService/SearchStream" {
			steps = append(steps, "stream ended "+rec["code"].(string))
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit after SIGTERM: %v, want status 0", err)
	}
	want := "health NOT_SERVING|draining in-flight RPCs|stream ended OK|closing database pool"
	if got := strings.Join(steps, "|"); got != want {
		t.Errorf("shutdown steps %q, want %q", got, want)
	}
}
