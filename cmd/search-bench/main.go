// Command search-bench measures the search service against its honest
// limit: the same point query sent straight to PostgreSQL, in the same run
// on the same machine. It starts what it needs (a throwaway PostgreSQL with
// PostGIS, search-server processes, the Kafka dev broker and a StatsD
// socket), imports the 1:10m countries and a synthetic grid through the
// gRPC Import stream, checks that every path gives the same answers, then
// runs alternating timed rounds and prints each round, the medians, the
// ratios and the targets.
//
// Compare ratios within one run, never absolute numbers across runs: the
// machine is shared.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

func main() {
	if os.Getenv(bareServerEnv) != "" {
		fmt.Fprintln(os.Stderr, serveBare())
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := newRootCommand(os.Stdout, os.Stderr).ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "search-bench:", err)
		os.Exit(1)
	}
}

// options are the command's flags.
type options struct {
	rounds       int
	duration     time.Duration
	warmup       time.Duration
	concurrency  int
	seed         uint64
	points       int
	verify       int
	gridCells    int
	countries    string
	serverBin    string
	baselineBin  string
	baselineEnv  []string
	serverEnv    []string
	baselineSock bool
	databaseURL  string
	serverAddr   string
	logging      bool
	pprofAddr    string
	soak         time.Duration
	subdivide    []int
	json         bool
	keepLogs     bool
	// Locate and the plots.
	locateBatch   int
	locateBatches []int
	cliPoints     int
	clientBin     string
	sweep         []int
	sweepDuration time.Duration
	plotsDir      string
}

func newRootCommand(stdout, stderr io.Writer) *cobra.Command {
	var o options
	cmd := &cobra.Command{
		Use:   "search-bench",
		Short: "Benchmark point and name searches through gRPC against the same SQL sent straight to PostgreSQL",
		Long: `search-bench starts a throwaway PostgreSQL with PostGIS and the real
search-server binary (and a second one with Kafka log shipping and StatsD on),
imports the 1:10m countries and a synthetic grid through the gRPC Import
stream, verifies that gRPC, direct SQL and whole-geometry SQL agree, then runs
alternating rounds of each kind (grpc, direct, naive, name, grpc+logs; then
grid grpc, grid direct) and prints per-round figures, medians, ratios and the
targets. Progress goes to stderr; the report to stdout.

With --server-addr and --database-url it measures an existing stack (make up)
instead: no imports, no logging or grid rounds, no server CPU or RSS.`,
		Example: `  search-bench                              # the full run (make bench)
  search-bench --rounds 5 --duration 20s --json > run.json
  search-bench --soak 10m --rounds 1         # RSS over a 10-minute run
  search-bench --pprof-addr 127.0.0.1:6060   # then: go tool pprof http://127.0.0.1:6060/debug/pprof/profile`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			r, err := run(cmd.Context(), o, stderr)
			if err != nil {
				return err
			}
			r.Command = "search-bench " + strings.Join(os.Args[1:], " ")
			if o.json {
				return writeJSON(stdout, r)
			}
			r.print(stdout)
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.rounds, "rounds", 3, "rounds of each kind, alternating")
	f.DurationVar(&o.duration, "duration", 10*time.Second, "length of each timed round")
	f.DurationVar(&o.warmup, "warmup", 2*time.Second, "untimed run of each kind before the rounds")
	f.IntVar(&o.concurrency, "concurrency", 4, "requests in flight in every round")
	f.Uint64Var(&o.seed, "seed", 1, "seed of the random points and name queries")
	f.IntVar(&o.points, "points", 100_000, "random points, used in the same order by every point round")
	f.IntVar(&o.verify, "verify", 1000, "points checked to agree between gRPC, direct and whole-geometry SQL before the rounds")
	f.IntVar(&o.gridCells, "grid-cells", 100_000, "cells of the synthetic grid (0: no grid rounds)")
	f.StringVar(&o.countries, "countries", "testdata/ne_10m_countries.geojson.gz", "the GeoJSON to import and search")
	f.StringVar(&o.serverBin, "server-bin", "", "the search-server binary (default: beside search-bench, else on PATH)")
	f.StringVar(&o.baselineBin, "baseline-bin", "", "also run gRPC rounds on this other search-server binary (e.g. an older build) on the same database, for before/after in one run")
	f.StringArrayVar(&o.serverEnv, "server-env", nil, "KEY=VALUE for the servers with the index on or off, the grid one too (repeatable), e.g. DB_STATEMENT_TIMEOUT=60s on a loaded machine")
	f.StringArrayVar(&o.baselineEnv, "baseline-env", nil, "KEY=VALUE for the --baseline-bin server (repeatable), e.g. LOG_LEVEL=warn to measure a setting")
	f.BoolVar(&o.baselineSock, "baseline-unix-socket", false, "the --baseline-bin server reaches PostgreSQL through its Unix socket, the others through loopback TCP")
	f.StringVar(&o.databaseURL, "database-url", "", "with --server-addr: measure this existing database instead of a throwaway one")
	f.StringVar(&o.serverAddr, "server-addr", "", "with --database-url: measure this running server (host:port)")
	f.BoolVar(&o.logging, "logging-rounds", true, "also run rounds on a second server with Kafka log shipping and StatsD on")
	f.StringVar(&o.pprofAddr, "pprof-addr", "", "serve the main server's pprof here (loopback host:port) while the rounds run")
	f.IntSliceVar(&o.subdivide, "subdivide", nil, "after the rounds, rebuild the parts with each of these ST_Subdivide sizes (e.g. 32,64,128,256,512) and run direct rounds on each")
	f.DurationVar(&o.soak, "soak", 0, "after the rounds, search for this long and sample the server's RSS (e.g. 10m)")
	f.BoolVar(&o.json, "json", false, "print the report as JSON")
	f.BoolVar(&o.keepLogs, "keep-logs", false, "keep the servers' log files (their directory is printed)")
	f.IntVar(&o.locateBatch, "locate-batch", 0, "points per Locate batch: the servers' LOCATE_BATCH_SIZE and the set-based statement's size (0: the server's default)")
	f.IntSliceVar(&o.locateBatches, "locate-batches", []int{1, 10, 100, 250, 500, 1000}, "batch sizes of the set-based statement's curve (0: skip it)")
	f.IntVar(&o.cliPoints, "cli-points", 1_000_000, "run search-client locate on this many points and report its peak RSS (0: skip)")
	f.StringVar(&o.clientBin, "client-bin", "", "the search-client binary (default: beside search-bench, else on PATH)")
	f.IntSliceVar(&o.sweep, "sweep", nil, "concurrencies of the sweep of gRPC Search, Locate, direct and set-based SQL (e.g. "+defaultSweepConcurrent+"; none: skip it)")
	f.DurationVar(&o.sweepDuration, "sweep-duration", 3*time.Second, "length of each sweep and batch-curve round")
	f.StringVar(&o.plotsDir, "plots-dir", "", "write the plots (PNG) into this directory; needs --sweep")
	return cmd
}

func (o *options) validate() error {
	var errs []error
	if o.rounds < 1 {
		errs = append(errs, errors.New("--rounds must be at least 1"))
	}
	if o.duration <= 0 {
		errs = append(errs, errors.New("--duration must be positive"))
	}
	if o.concurrency < 1 {
		errs = append(errs, errors.New("--concurrency must be at least 1"))
	}
	if o.points < 1 || o.verify < 0 || o.verify > o.points {
		errs = append(errs, errors.New("--points must be at least 1 and --verify between 0 and --points"))
	}
	for _, n := range o.subdivide {
		if n < 5 {
			errs = append(errs, fmt.Errorf("--subdivide: %d: ST_Subdivide needs at least 5 vertices", n))
		}
	}
	if len(o.subdivide) > 0 && o.serverAddr != "" {
		errs = append(errs, errors.New("--subdivide rewrites the parts table: only on the throwaway database"))
	}
	if o.gridCells < 0 {
		errs = append(errs, errors.New("--grid-cells must not be negative"))
	}
	if o.baselineBin != "" && o.serverAddr != "" {
		errs = append(errs, errors.New("--baseline-bin needs a server started by search-bench, not --server-addr"))
	}
	if o.serverAddr == "" && o.serverBin == "" {
		bin, err := findBin("search-server", "--server-bin")
		if err != nil {
			errs = append(errs, err)
		}
		o.serverBin = bin
	}
	if o.cliPoints < 0 || o.locateBatch < 0 || o.sweepDuration <= 0 {
		errs = append(errs, errors.New("--cli-points and --locate-batch must not be negative, --sweep-duration must be positive"))
	}
	if o.cliPoints > 0 && o.serverAddr != "" {
		errs = append(errs, errors.New("--cli-points needs a server started by search-bench (its address and CPU): give --cli-points 0 with --server-addr"))
	}
	if o.cliPoints > 0 && o.clientBin == "" {
		bin, err := findBin("search-client", "--client-bin")
		if err != nil {
			errs = append(errs, err)
		}
		o.clientBin = bin
	}
	if slices.Equal(o.locateBatches, []int{0}) {
		o.locateBatches = nil
	}
	for _, n := range append(slices.Clone(o.sweep), o.locateBatches...) {
		if n < 1 {
			errs = append(errs, fmt.Errorf("--sweep and --locate-batches take positive numbers, got %d", n))
		}
	}
	if o.plotsDir != "" && len(o.sweep) == 0 {
		errs = append(errs, errors.New("--plots-dir needs --sweep (e.g. --sweep "+defaultSweepConcurrent+")"))
	}
	for _, kv := range o.baselineEnv {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			errs = append(errs, fmt.Errorf("--baseline-env %q: want KEY=VALUE", kv))
		}
	}
	if (len(o.baselineEnv) > 0 || o.baselineSock) && o.baselineBin == "" {
		o.baselineBin = o.serverBin // the same binary, other settings
	}
	if o.baselineSock && o.serverAddr != "" {
		errs = append(errs, errors.New("--baseline-unix-socket needs the benchmark's own database (no --server-addr)"))
	}
	if (o.serverAddr == "") != (o.databaseURL == "") {
		errs = append(errs, errors.New("--server-addr and --database-url go together"))
	}
	return errors.Join(errs...)
}

// findBin looks for the command name beside this binary (make build puts
// them all in bin/), then on PATH.
func findBin(name, flag string) (string, error) {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("no %s binary beside search-bench or on PATH: run make build, or give %s", name, flag)
}
