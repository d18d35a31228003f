package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// serverBin and clientBin are the search-server and search-client
// binaries the smoke test runs, built once.
var serverBin, clientBin string

func TestMain(m *testing.M) {
	if os.Getenv(bareServerEnv) != "" { // the benchmark re-runs its executable, this test binary, as the bare server
		fmt.Fprintln(os.Stderr, serveBare())
		os.Exit(1)
	}
	os.Exit(func() int {
		dir, err := os.MkdirTemp("", "search-bench-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		serverBin = filepath.Join(dir, "search-server")
		clientBin = filepath.Join(dir, "search-client")
		build := exec.Command("go", "build", "-o", dir, "./cmd/search-server", "./cmd/search-client")
		build.Dir = "../.." // the service's module, which this one replaces onto
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build search-server and search-client: %v\n%s", err, out)
			return 1
		}
		return m.Run()
	}())
}

// TestBenchmarkSmoke runs every part of the benchmark for a moment: the
// stack it starts, both imports, the verification, each kind of round
// (Locate's too), the subdivision curve, the soak, the concurrency sweep,
// the Locate batch curve, search-client locate and the plots. It checks only that they work and agree,
// never how fast: timings belong to make bench.
func TestBenchmarkSmoke(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	cmd := newRootCommand(&stdout, &stderr)
	plots := t.TempDir()
	cmd.SetArgs([]string{
		"--server-bin", serverBin, "--client-bin", clientBin,
		"--locate-batch", "50", "--locate-batches", "1,50", "--cli-points", "3000",
		"--sweep", "1,2", "--sweep-duration", "200ms", "--plots-dir", plots,
		"--countries", "../../testdata/ne_110m_countries.geojson",
		"--rounds", "1", "--duration", "200ms", "--warmup", "50ms", "--concurrency", "2",
		"--points", "2000", "--verify", "200", "--grid-cells", "400",
		"--subdivide", "32,128", "--soak", "2s", "--json",
		"--baseline-unix-socket", // the baseline: the same server, PostgreSQL through its socket
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := cmd.ExecuteContext(ctx); err != nil {
		t.Fatalf("search-bench: %v\nprogress:\n%s", err, stderr.String())
	}
	var r report
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("--json output does not parse: %v\n%s", err, stdout.String())
	}

	kinds := map[string]bool{}
	for _, rr := range r.Rounds {
		kinds[rr.Kind] = true
		if rr.Requests == 0 || rr.Errors != 0 || rr.RPS <= 0 {
			t.Errorf("round %d %s: %d requests, %d errors (%s)", rr.Round, rr.Kind, rr.Requests, rr.Errors, rr.FirstError)
		}
		if (rr.Kind == kindLocate || rr.Kind == kindSetSQL) && (rr.AnswersPerCall != 50 || rr.Requests%50 != 0) {
			t.Errorf("round %d %s: %d answers, %d per call; want whole batches of 50", rr.Round, rr.Kind, rr.Requests, rr.AnswersPerCall)
		}
		if rr.Kind != kindDirect && rr.Kind != kindNaive && rr.Kind != kindSetSQL && rr.Kind != kindGridDirect && rr.Kind != kindMixedDirect && rr.Kind != kindScopedDirect && rr.ServerRSSMB == 0 {
			t.Errorf("round %d %s: no server RSS", rr.Round, rr.Kind)
		}
	}
	for _, k := range []string{kindGRPC, kindDirect, kindNaive, kindName, kindHealth, kindBareHealth, kindBaseline, kindGRPCLogging, kindGridGRPC, kindGridDirect,
		kindMixedGRPC, kindScopedGRPC, kindMixedDirect, kindScopedDirect, kindLocate, kindSetSQL} {
		if !kinds[k] {
			t.Errorf("no %s round", k)
		}
	}
	if len(r.Medians) != len(kinds) || len(r.Ratios) == 0 || len(r.Targets) == 0 {
		t.Errorf("%d medians for %d kinds, %d ratios, %d targets", len(r.Medians), len(kinds), len(r.Ratios), len(r.Targets))
	}

	wantImports := map[string]int64{"ne_110m_countries": 177, "grid 30x15": 450, "ne_110m_countries beside the grid": 177}
	for _, imp := range r.Imports {
		if want, ok := wantImports[imp.Dataset]; !ok || imp.Imported != want || imp.Rejected != 0 || imp.VerticesPerSec <= 0 {
			t.Errorf("import %+v, want %d imported", imp, want)
		}
		delete(wantImports, imp.Dataset)
	}
	if len(wantImports) > 0 {
		t.Errorf("imports missing: %v", wantImports)
	}
	if len(r.Plans) != 3 || !strings.Contains(r.Plans[1].Text, "thing_part_geom_idx") {
		t.Errorf("plans: %+v, want three, the scoped point search through the parts' GiST index", r.Plans)
	}
	if r.Verified.Points != 200 || r.Verified.PointHits == 0 || r.Verified.GridPoints == 0 || r.Verified.ScopedPoints == 0 || r.Verified.NameQueries == 0 {
		t.Errorf("verified: %+v", r.Verified)
	}
	if len(r.Subdivide) != 2 || r.Subdivide[0].Parts <= r.Subdivide[1].Parts || r.Subdivide[1].RPS <= 0 || r.Subdivide[1].LandRPS <= 0 {
		t.Errorf("subdivide: %+v (smaller pieces must mean more parts)", r.Subdivide)
	}
	if r.Soak == nil || r.Soak.Requests == 0 || r.Soak.Errors != 0 || len(r.Soak.Samples) == 0 || r.Soak.RSSLastMB <= 0 {
		t.Errorf("soak: %+v", r.Soak)
	}

	if r.LocateBatch != 50 || len(r.LocateBatches) != 2 || r.LocateBatches[1].Batch != 50 || r.LocateBatches[1].RPS <= 0 || r.LocateBatches[1].DBUsReq < 0 {
		t.Errorf("locate batch %d, curve %+v", r.LocateBatch, r.LocateBatches)
	}
	sweep := map[string]int{}
	for _, x := range r.Sweep {
		if x.RPS <= 0 || x.Errors != 0 {
			t.Errorf("sweep %+v", x)
		}
		sweep[x.Kind]++
	}
	if want := map[string]int{kindGRPC: 2, kindDirect: 2, kindLocate: 2, kindSetSQL: 2}; !maps.Equal(sweep, want) {
		t.Errorf("sweep rounds by kind: %v, want %v", sweep, want)
	}
	if len(r.CLI) != 1 || r.CLI[0].Points != 3000 || r.CLI[0].PeakRSSMB <= 0 || r.CLI[0].OutputMB <= 0 {
		t.Errorf("search-client locate: %+v", r.CLI)
	}
	if len(r.Plots) != 4 {
		t.Errorf("plots: %v, want throughput, p99, cpu and locate-batch", r.Plots)
	}
	for _, p := range r.Plots {
		if b, err := os.ReadFile(p); err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) {
			t.Errorf("plot %s is not a PNG (%v)", p, err)
		}
	}
	targets := map[string]bool{}
	for _, tg := range r.Targets {
		targets[tg.Name] = true
	}
	for _, want := range []string{"server CPU per unary point Search, " + kindGRPCLogging, "direct db CPU / gRPC total CPU per search, " + kindGRPCLogging,
		"server CPU per call of a bare grpc-go server (health)", "Locate vs direct single-point SQL (rate)",
		"server CPU per located point", "Locate vs the set-based SQL ceiling (rate)", "search-client locate, 3000 points: peak RSS",
		"issue 27: gRPC point search vs direct SQL (rate)", "issue 27: peak gRPC point Search rate vs peak direct SQL rate over the sweep"} {
		if !targets[want] {
			t.Errorf("no target %q in %v", want, targets)
		}
	}

	var text bytes.Buffer
	r.print(&text)
	for _, want := range []string{"median", "gRPC / direct SQL", "parts / naive", "target", "Locate / set-based SQL", "concurrency sweep", "points/statement"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("the table lacks %q:\n%s", want, text.String())
		}
	}
}

func TestGridCellsTileTheWorld(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 400, 100_000} {
		ds := gridCells(n)
		if len(ds.requests) < n || ds.vertices != 5*len(ds.requests) {
			t.Errorf("gridCells(%d): %d cells, %d vertices", n, len(ds.requests), ds.vertices)
		}
		last := ds.requests[len(ds.requests)-1].GetGeometryGeojson()
		if !strings.Contains(last, "[180,90]") {
			t.Errorf("gridCells(%d): the last cell %s does not reach (180, 90)", n, last)
		}
	}
}

func TestPercentile(t *testing.T) {
	t.Parallel()
	var lat []time.Duration
	for i := 1; i <= 1000; i++ {
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	for q, want := range map[float64]time.Duration{0.5: 500 * time.Millisecond, 0.99: 990 * time.Millisecond, 0.999: 999 * time.Millisecond, 1: time.Second} {
		if got := percentile(lat, q); got != want {
			t.Errorf("percentile(%v) = %v, want %v", q, got, want)
		}
	}
	if percentile(nil, 0.5) != 0 {
		t.Error("percentile of nothing is not 0")
	}
}
