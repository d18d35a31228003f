package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Round kinds, in the order each round runs them.
const (
	kindGRPC        = "grpc"        // point search through client, server, pool, PostGIS
	kindDirect      = "direct"      // the server's point statement sent with pgx
	kindNaive       = "naive"       // ST_Contains on whole geometries, no parts
	kindName        = "name"        // name search with paging, through gRPC
	kindHealth      = "grpc health" // the standard health check: a gRPC round trip without the database
	kindBareHealth  = "bare health" // kindHealth on a bare grpc-go server: grpc-go's own floor
	kindGRPCLogging = "grpc+logs"   // kindGRPC on a server with Kafka log shipping and StatsD on
	kindBaseline    = "baseline"    // kindGRPC on the --baseline-bin server
	kindGridGRPC    = "grid grpc"   // kindGRPC on the synthetic grid
	kindGridDirect  = "grid direct" // kindDirect on the synthetic grid
	kindLocate      = "locate"      // Locate through gRPC, a stream per worker, a batch per call
	kindSetSQL      = "set sql"     // Locate's set-based statement sent with pgx, a batch per call
	kindBaseLocate  = "base locate" // kindLocate on the --baseline-bin server

	// On the grid database after the countries are imported beside the grid
	// into collection "countries": point searches over both collections,
	// and scoped to the countries.
	kindMixedGRPC    = "mixed grpc"
	kindScopedGRPC   = "scoped grpc"
	kindMixedDirect  = "mixed direct"
	kindScopedDirect = "scoped direct"
)

// roundResult is one timed round of one kind.
type roundResult struct {
	Round       int     `json:"round"`
	Kind        string  `json:"kind"`
	Requests    int     `json:"requests"`
	RPS         float64 `json:"rps"`
	P50Ms       float64 `json:"p50_ms"`
	P99Ms       float64 `json:"p99_ms"`
	P999Ms      float64 `json:"p999_ms"`
	Errors      int     `json:"errors"`
	FirstError  string  `json:"first_error,omitempty"`
	HitRate     float64 `json:"results_per_request"`
	ServerCores float64 `json:"server_cpu_cores"` // CPU seconds per second; 0 when no server is involved
	ServerUsReq float64 `json:"server_cpu_us_per_request"`
	ServerRSSMB float64 `json:"server_rss_mb"`
	DBCores     float64 `json:"db_cpu_cores"`
	DBUsReq     float64 `json:"db_cpu_us_per_request"`
	BenchCores  float64 `json:"bench_cpu_cores"` // the load generator's own clients
	BenchUsReq  float64 `json:"bench_cpu_us_per_request"`
	// AnswersPerCall is how many answers (points) one call got: 1 for a
	// unary search, the batch for Locate and the set-based statement, whose
	// requests, rates and CPU are per answer, latencies per call.
	AnswersPerCall int `json:"answers_per_call"`
	Concurrency    int `json:"concurrency"`
}

// summary is the median of each figure over the rounds of one kind.
type summary struct {
	Kind        string  `json:"kind"`
	Rounds      int     `json:"rounds"`
	RPS         float64 `json:"rps"`
	P50Ms       float64 `json:"p50_ms"`
	P99Ms       float64 `json:"p99_ms"`
	P999Ms      float64 `json:"p999_ms"`
	Errors      int     `json:"errors"` // total
	ServerCores float64 `json:"server_cpu_cores"`
	ServerUsReq float64 `json:"server_cpu_us_per_request"`
	ServerRSSMB float64 `json:"server_rss_mb"` // maximum
	DBCores     float64 `json:"db_cpu_cores"`
	DBUsReq     float64 `json:"db_cpu_us_per_request"`
	BenchCores  float64 `json:"bench_cpu_cores"`
	BenchUsReq  float64 `json:"bench_cpu_us_per_request"`
}

// ratio compares two kinds' rates round by round (the rounds of one
// iteration run back to back); Value is the median of the per-round ratios.
type ratio struct {
	Name     string    `json:"name"`
	Value    float64   `json:"value"`
	PerRound []float64 `json:"per_round"`
}

// target is one of the targets, checked against this run.
type target struct {
	Name string `json:"name"`
	Want string `json:"want"`
	Got  string `json:"got"`
	Met  bool   `json:"met"`
}

type machine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model"`
	MemoryGB  string `json:"memory"`
	Go        string `json:"go"`
	Postgres  string `json:"postgres"`
	PostGIS   string `json:"postgis"`
	LoadStart string `json:"loadavg_start"`
	LoadEnd   string `json:"loadavg_end"`
}

type settingsReport struct {
	Rounds      int    `json:"rounds"`
	Duration    string `json:"round_duration"`
	Concurrency int    `json:"concurrency"`
	Seed        uint64 `json:"seed"`
	Points      int    `json:"points"`
	GridCells   int    `json:"grid_cells"`
	Countries   string `json:"countries"`
}

type verifyReport struct {
	Points     int `json:"points"`
	PointHits  int `json:"points_inside_a_country"`
	GridPoints int `json:"grid_points,omitempty"`
	// ScopedPoints agree scoped to the countries beside the grid.
	ScopedPoints int `json:"scoped_points,omitempty"`
	NameQueries  int `json:"name_queries"`
}

type soakSample struct {
	Seconds float64 `json:"seconds"`
	RSSMB   float64 `json:"rss_mb"`
	RPS     float64 `json:"rps"`
}

type soakResult struct {
	Duration         string       `json:"duration"`
	Requests         int          `json:"requests"`
	Errors           int          `json:"errors"`
	RPS              float64      `json:"rps"`
	P99Ms            float64      `json:"p99_ms"`
	WarmupSeconds    float64      `json:"warmup_seconds"`
	RSSAfterWarmupMB float64      `json:"rss_after_warmup_mb"`
	RSSMaxMB         float64      `json:"rss_max_after_warmup_mb"`
	RSSLastMB        float64      `json:"rss_last_mb"`
	GrowthPct        float64      `json:"rss_growth_pct"`
	Samples          []soakSample `json:"samples"`
}

// subdivideResult is the direct point query on parts cut at one size.
type subdivideResult struct {
	MaxVertices int       `json:"max_vertices"`
	Parts       int64     `json:"parts"`
	RPS         float64   `json:"rps"` // median over the rounds
	P50Ms       float64   `json:"p50_ms"`
	P99Ms       float64   `json:"p99_ms"`
	DBUsReq     float64   `json:"db_cpu_us_per_request"`
	PerRound    []float64 `json:"rps_per_round"`
	// The same on land points only (points inside a country), where the
	// parts are actually tested.
	LandRPS      float64   `json:"land_rps"`
	LandP99Ms    float64   `json:"land_p99_ms"`
	LandDBUsReq  float64   `json:"land_db_cpu_us_per_request"`
	LandPerRound []float64 `json:"land_rps_per_round"`
}

type report struct {
	Machine   machine           `json:"machine"`
	Command   string            `json:"command"`
	Settings  settingsReport    `json:"settings"`
	Imports   []importResult    `json:"imports,omitempty"`
	Verified  verifyReport      `json:"verified"`
	Rounds    []roundResult     `json:"rounds"`
	Medians   []summary         `json:"medians"`
	Ratios    []ratio           `json:"ratios"`
	Targets   []target          `json:"targets"`
	Soak      *soakResult       `json:"soak,omitempty"`
	Subdivide []subdivideResult `json:"subdivide,omitempty"`
	// Plans are EXPLAIN ANALYZE outputs of the statements measured.
	Plans []plan `json:"plans,omitempty"`
	// LocateBatch is the points per Locate batch of the locate and set sql
	// rounds.
	LocateBatch   int          `json:"locate_batch"`
	LocateBatches []batchPoint `json:"locate_batches,omitempty"`
	Sweep         []sweepPoint `json:"sweep,omitempty"`
	CLI           []cliResult  `json:"cli_locate,omitempty"`
	// CLIIndex: search-client locate with the in-memory index on and off.
	CLIIndex *cliIndexResult `json:"cli_locate_index,omitempty"`
	// Memory: the grid server's in-memory index (grid + countries).
	Memory *memoryResult `json:"memory_index,omitempty"`
	Plots  []string      `json:"plots,omitempty"`
}

// plan is the EXPLAIN (ANALYZE, BUFFERS) of one statement.
type plan struct {
	Name string `json:"name"`
	Text string `json:"text"`
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// summarize computes the medians, the ratios and the targets from the rounds.
func (r *report) summarize() {
	byKind := r.summarizeKinds()
	k := r.summarizeRatios(byKind)
	r.Targets = nil
	r.speedTargets(k)
	r.otherTargets(k)
}

// keyRatios are the ratios the targets are checked on, and the kind of
// unary rounds they are measured with.
type keyRatios struct {
	grpcDirect, partsNaive, logging, locateDirect, locateCeiling, cpuShare *ratio
	unary                                                                  string
}

// summarizeKinds sets r.Medians, per kind in the order the rounds ran,
// and returns the rounds by kind.
func (r *report) summarizeKinds() map[string][]roundResult {
	byKind := map[string][]roundResult{}
	var kinds []string
	for _, rr := range r.Rounds {
		if _, ok := byKind[rr.Kind]; !ok {
			kinds = append(kinds, rr.Kind)
		}
		byKind[rr.Kind] = append(byKind[rr.Kind], rr)
	}
	r.Medians = nil
	for _, k := range kinds {
		rs := byKind[k]
		pick := func(f func(roundResult) float64) float64 {
			v := make([]float64, len(rs))
			for i, x := range rs {
				v[i] = f(x)
			}
			return median(v)
		}
		s := summary{Kind: k, Rounds: len(rs),
			RPS:         pick(func(x roundResult) float64 { return x.RPS }),
			P50Ms:       pick(func(x roundResult) float64 { return x.P50Ms }),
			P99Ms:       pick(func(x roundResult) float64 { return x.P99Ms }),
			P999Ms:      pick(func(x roundResult) float64 { return x.P999Ms }),
			ServerCores: pick(func(x roundResult) float64 { return x.ServerCores }),
			ServerUsReq: pick(func(x roundResult) float64 { return x.ServerUsReq }),
			DBCores:     pick(func(x roundResult) float64 { return x.DBCores }),
			DBUsReq:     pick(func(x roundResult) float64 { return x.DBUsReq }),
			BenchCores:  pick(func(x roundResult) float64 { return x.BenchCores }),
			BenchUsReq:  pick(func(x roundResult) float64 { return x.BenchUsReq }),
		}
		for _, x := range rs {
			s.Errors += x.Errors
			s.ServerRSSMB = max(s.ServerRSSMB, x.ServerRSSMB)
		}
		r.Medians = append(r.Medians, s)
	}
	return byKind
}

// summarizeRatios sets r.Ratios, each the median of the round-by-round
// ratios of two kinds.
func (r *report) summarizeRatios(byKind map[string][]roundResult) keyRatios {
	var k keyRatios
	// pairOf compares f of two kinds' rounds, round by round.
	pairOf := func(name, num, den string, f func(a, b roundResult) (float64, bool)) *ratio {
		a, b := byKind[num], byKind[den]
		if len(a) == 0 || len(b) == 0 {
			return nil
		}
		rt := ratio{Name: name}
		for i := range min(len(a), len(b)) {
			if v, ok := f(a[i], b[i]); ok {
				rt.PerRound = append(rt.PerRound, v)
			}
		}
		rt.Value = median(rt.PerRound)
		r.Ratios = append(r.Ratios, rt)
		return &r.Ratios[len(r.Ratios)-1]
	}
	pair := func(name, num, den string) *ratio {
		return pairOf(name, num, den, func(a, b roundResult) (float64, bool) { return a.RPS / b.RPS, b.RPS > 0 })
	}
	r.Ratios = nil
	k.grpcDirect = pair("gRPC / direct SQL (rate)", kindGRPC, kindDirect)
	k.partsNaive = pair("parts / naive whole-geometry SQL (rate)", kindDirect, kindNaive)
	k.logging = pair("logging+StatsD on / off, gRPC (rate)", kindGRPCLogging, kindGRPC)
	pair("gRPC / gRPC on --baseline-bin (rate)", kindGRPC, kindBaseline)
	pair("gRPC search / gRPC health check (rate)", kindGRPC, kindHealth)
	pair("gRPC health check / bare grpc-go health check (rate)", kindHealth, kindBareHealth)
	pair("grid gRPC / grid direct SQL (rate)", kindGridGRPC, kindGridDirect)
	pair("grid direct / countries direct (rate)", kindGridDirect, kindDirect)
	pair("scoped / unscoped, gRPC (rate)", kindScopedGRPC, kindMixedGRPC)
	pair("scoped / unscoped, direct SQL (rate)", kindScopedDirect, kindMixedDirect)
	k.locateDirect = pair("Locate / direct single-point SQL (rate)", kindLocate, kindDirect)
	k.locateCeiling = pair("Locate / set-based SQL, its ceiling (rate)", kindLocate, kindSetSQL)
	pair("Locate / unary gRPC Search (rate)", kindLocate, kindGRPC)
	pair("Locate / Locate on --baseline-bin (rate)", kindLocate, kindBaseLocate)
	// Issue 15: the database's own work for a point (the direct statement's
	// CPU in PostgreSQL) over all the CPU a point Search costs through gRPC
	// (the server's and PostgreSQL's behind it), per answer.
	// Both are measured on the server with everything on (access log,
	// Kafka shipping, StatsD: the terms) when the run has one.
	k.unary = kindGRPC
	if slices.ContainsFunc(r.Rounds, func(rr roundResult) bool { return rr.Kind == kindGRPCLogging }) {
		k.unary = kindGRPCLogging
	}
	k.cpuShare = pairOf("direct db CPU / gRPC (server + db) CPU per search, "+k.unary, kindDirect, k.unary, func(d, g roundResult) (float64, bool) {
		total := g.ServerUsReq + g.DBUsReq
		return d.DBUsReq / total, total > 0 && g.ServerUsReq > 0
	})
	return k
}

func (r *report) addTarget(name, want, got string, met bool) {
	r.Targets = append(r.Targets, target{Name: name, Want: want, Got: got, Met: met})
}

// speedTargets checks the targets on rates and CPU.
func (r *report) speedTargets(k keyRatios) {
	add := r.addTarget
	if k.grpcDirect != nil {
		add("gRPC point search vs direct SQL", ">= 0.80", fmt.Sprintf("%.2f", k.grpcDirect.Value), k.grpcDirect.Value >= 0.80)
		add("vs raw parts SQL (pg_featureserv: ~0.25)", ">= 0.75", fmt.Sprintf("%.2f", k.grpcDirect.Value), k.grpcDirect.Value >= 0.75)
	}
	medians := map[string]summary{}
	for _, s := range r.Medians {
		medians[s.Kind] = s
		if s.Kind == kindGRPC {
			add(fmt.Sprintf("gRPC point search p99, concurrency %d", r.Settings.Concurrency), "< 5 ms at concurrency 4",
				fmt.Sprintf("%.2f ms", s.P99Ms), s.P99Ms < 5 && r.Settings.Concurrency == 4)
		}
	}
	if g, ok := medians[k.unary]; ok && g.ServerUsReq > 0 {
		add("server CPU per unary point Search, "+k.unary, fmt.Sprintf("<= %d us", unaryServerUsTarget), fmt.Sprintf("%.0f us", g.ServerUsReq), g.ServerUsReq <= unaryServerUsTarget)
	}
	if b, ok := medians[kindBareHealth]; ok && b.ServerUsReq > 0 {
		// Not a target: the floor under it, a call through grpc-go alone.
		add("server CPU per call of a bare grpc-go server (health)", "reported", fmt.Sprintf("%.0f us", b.ServerUsReq), true)
	}
	if d, ok := medians[kindDirect]; ok && k.cpuShare != nil {
		// With the server at its 40 us budget and PostgreSQL doing behind it
		// what it does for the direct statement, the share would be D/(D+40).
		want := d.DBUsReq / (d.DBUsReq + unaryServerUsTarget)
		add("direct db CPU / gRPC total CPU per search, "+k.unary, fmt.Sprintf(">= %.2f (= D/(D+%d), D = %.0f us)", want, unaryServerUsTarget, d.DBUsReq),
			fmt.Sprintf("%.2f", k.cpuShare.Value), k.cpuShare.Value >= want)
	}
	if k.locateDirect != nil {
		add("Locate vs direct single-point SQL (rate)", fmt.Sprintf(">= %.0fx", locateDirectTarget), fmt.Sprintf("%.2fx", k.locateDirect.Value), k.locateDirect.Value >= locateDirectTarget)
	}
	if l, ok := medians[kindLocate]; ok && l.ServerUsReq > 0 {
		add("server CPU per located point", fmt.Sprintf("<= %.0f us", locateServerUsTarget), fmt.Sprintf("%.1f us", l.ServerUsReq), l.ServerUsReq <= locateServerUsTarget)
	}
	if k.locateCeiling != nil {
		add("Locate vs the set-based SQL ceiling (rate)", "reported", fmt.Sprintf("%.2f", k.locateCeiling.Value), true)
	}
}

// otherTargets checks the targets on the client's memory, the parts, the
// logging's cost, the imports and the soak.
func (r *report) otherTargets(k keyRatios) {
	add := r.addTarget
	r.cliTargets(add)
	if k.partsNaive != nil {
		add("parts vs naive, 1:10m countries", ">= 4x", fmt.Sprintf("%.1fx", k.partsNaive.Value), k.partsNaive.Value >= 4)
	}
	if k.logging != nil {
		add("Kafka logging + StatsD on vs off", ">= 0.90", fmt.Sprintf("%.2f", k.logging.Value), k.logging.Value >= 0.90)
	}
	for _, imp := range r.Imports {
		add(fmt.Sprintf("import %s (%d features)", imp.Dataset, imp.Imported), fmt.Sprintf("< %.0f s", imp.TargetSeconds),
			fmt.Sprintf("%.1f s", imp.Seconds), imp.Seconds < imp.TargetSeconds)
	}
	if r.Soak != nil {
		add("server RSS flat over the soak (after warm-up)", "growth < 5%",
			fmt.Sprintf("%+.1f%% (%.1f -> %.1f MB, max %.1f)", r.Soak.GrowthPct, r.Soak.RSSAfterWarmupMB, r.Soak.RSSLastMB, r.Soak.RSSMaxMB),
			r.Soak.GrowthPct < 5)
	}
}

// print writes the report as tables.
func (r *report) print(w io.Writer) {
	m := r.Machine
	fmt.Fprintf(w, "machine: %d CPUs (%s), %s memory; %s; %s; %s\n", m.CPUs, m.CPUModel, m.MemoryGB, m.Go, m.Postgres, m.PostGIS)
	fmt.Fprintf(w, "load average: %s at start, %s at end\n", m.LoadStart, m.LoadEnd)
	s := r.Settings
	fmt.Fprintf(w, "%d rounds of %s per kind, concurrency %d, %d random points (seed %d), grid of %d cells\n\n",
		s.Rounds, s.Duration, s.Concurrency, s.Points, s.Seed, s.GridCells)
	if len(r.Imports) > 0 {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "import\tfeatures\tvertices\tseconds\tfeatures/s\tvertices/s\tserver cpu s\tdb cpu s\tbench cpu s\t")
		for _, imp := range r.Imports {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%.2f\t%.0f\t%.0f\t%.2f\t%.2f\t%.2f\t\n", imp.Dataset, imp.Imported, imp.Vertices,
				imp.Seconds, imp.FeaturesPerSec, imp.VerticesPerSec, imp.ServerCPUSeconds, imp.DBCPUSeconds, imp.BenchCPUSeconds)
		}
		tw.Flush()
		fmt.Fprintln(w)
	}
	v := r.Verified
	fmt.Fprintf(w, "verified: %d points agree between gRPC, direct SQL and whole geometries (%d inside a country)", v.Points, v.PointHits)
	if v.GridPoints > 0 {
		fmt.Fprintf(w, ", %d on the grid", v.GridPoints)
	}
	if v.ScopedPoints > 0 {
		fmt.Fprintf(w, ", %d scoped to the countries beside the grid", v.ScopedPoints)
	}
	fmt.Fprintf(w, "; %d paged name searches agree with direct SQL\n\n", v.NameQueries)

	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "round\tkind\trequests\treq/s\tp50 ms\tp99 ms\tp99.9 ms\terrors\tserver cores\tserver us/req\tserver RSS MB\tdb cores\tdb us/req\tbench cores\tbench us/req\t")
	for _, x := range r.Rounds {
		fmt.Fprintf(tw, "%d\t%s\t%d\t%.0f\t%.2f\t%.2f\t%.2f\t%d\t%s\t%s\t%s\t%.2f\t%.0f\t%.2f\t%.1f\t\n", x.Round, x.Kind, x.Requests, x.RPS,
			x.P50Ms, x.P99Ms, x.P999Ms, x.Errors, dash(x.ServerCores, "%.2f"), dash(x.ServerUsReq, "%.0f"), dash(x.ServerRSSMB, "%.1f"),
			x.DBCores, x.DBUsReq, x.BenchCores, x.BenchUsReq)
	}
	fmt.Fprintln(tw, "\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t")
	for _, x := range r.Medians {
		fmt.Fprintf(tw, "median\t%s\t\t%.0f\t%.2f\t%.2f\t%.2f\t%d\t%s\t%s\t%s\t%.2f\t%.0f\t%.2f\t%.1f\t\n", x.Kind, x.RPS,
			x.P50Ms, x.P99Ms, x.P999Ms, x.Errors, dash(x.ServerCores, "%.2f"), dash(x.ServerUsReq, "%.0f"), dash(x.ServerRSSMB, "%.1f"),
			x.DBCores, x.DBUsReq, x.BenchCores, x.BenchUsReq)
	}
	tw.Flush()
	for _, x := range r.Rounds {
		if x.FirstError != "" {
			fmt.Fprintf(w, "round %d %s: first error: %s\n", x.Round, x.Kind, x.FirstError)
		}
	}
	fmt.Fprintln(w)
	for _, rt := range r.Ratios {
		per := make([]string, len(rt.PerRound))
		for i, p := range rt.PerRound {
			per[i] = fmt.Sprintf("%.2f", p)
		}
		fmt.Fprintf(w, "%-42s %6.2f   (rounds: %s)\n", rt.Name, rt.Value, strings.Join(per, " "))
	}
	for _, p := range r.Plans {
		fmt.Fprintf(w, "\nplan, %s:\n%s\n", p.Name, p.Text)
	}
	r.printLocate(w)
	if len(r.Subdivide) > 0 {
		fmt.Fprintln(w, "\nsubdivision size, direct point query on the countries (medians):")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "max vertices\tparts\treq/s\tp50 ms\tp99 ms\tdb us/req\tland req/s\tland p99 ms\tland db us/req\t")
		for _, sd := range r.Subdivide {
			fmt.Fprintf(tw, "%d\t%d\t%.0f\t%.2f\t%.2f\t%.0f\t%.0f\t%.2f\t%.0f\t\n", sd.MaxVertices, sd.Parts, sd.RPS, sd.P50Ms, sd.P99Ms, sd.DBUsReq,
				sd.LandRPS, sd.LandP99Ms, sd.LandDBUsReq)
		}
		tw.Flush()
	}
	if sk := r.Soak; sk != nil {
		fmt.Fprintf(w, "\nsoak: %s of gRPC point searches, %d requests (%.0f/s), %d errors, p99 %.2f ms\n", sk.Duration, sk.Requests, sk.RPS, sk.Errors, sk.P99Ms)
		fmt.Fprintf(w, "server RSS: %.1f MB after %.0f s warm-up, max %.1f MB after it, %.1f MB at the end (%+.1f%%)\n",
			sk.RSSAfterWarmupMB, sk.WarmupSeconds, sk.RSSMaxMB, sk.RSSLastMB, sk.GrowthPct)
		// About ten samples, evenly spaced, show the trend.
		step := max(1, len(sk.Samples)/10)
		var trend []string
		for i := 0; i < len(sk.Samples); i += step {
			s := sk.Samples[i]
			trend = append(trend, fmt.Sprintf("%.0fs %.1fMB %.0f/s", s.Seconds, s.RSSMB, s.RPS))
		}
		fmt.Fprintf(w, "samples: %s\n", strings.Join(trend, ", "))
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "target\twant\tgot\t")
	for _, t := range r.Targets {
		mark := "met"
		if !t.Met {
			mark = "NOT MET"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.Name, t.Want, t.Got, mark)
	}
	tw.Flush()
}

func dash(v float64, format string) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf(format, v)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// describeMachine reads what the report names of the machine.
func describeMachine() machine {
	m := machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), LoadStart: loadAverage()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				m.CPUModel = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				var kb float64
				fmt.Sscanf(strings.TrimSpace(v), "%f", &kb)
				m.MemoryGB = fmt.Sprintf("%.1f GiB", kb/(1<<20))
			}
		}
	}
	return m
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// printLocate writes the Locate parts: the batch curve, the sweep, the
// client runs and the plots.
func (r *report) printLocate(w io.Writer) {
	fmt.Fprintf(w, "\nlocate and set sql rounds: one request is one point answered; latencies are per batch of %d points\n", r.LocateBatch)
	if len(r.LocateBatches) > 0 {
		fmt.Fprintln(w, "\nset-based statement by batch size, straight to PostgreSQL (medians):")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "points/statement\tpoints/s\tp50 ms\tp99 ms\tdb us/point\tdb+client us/point\trounds points/s\t")
		for _, x := range r.LocateBatches {
			per := make([]string, len(x.PerRound))
			for i, v := range x.PerRound {
				per[i] = fmt.Sprintf("%.0f", v)
			}
			fmt.Fprintf(tw, "%d\t%.0f\t%.2f\t%.2f\t%.1f\t%.1f\t%s\t\n", x.Batch, x.RPS, x.P50Ms, x.P99Ms, x.DBUsReq, x.AllUsReq, strings.Join(per, " "))
		}
		tw.Flush()
	}
	if len(r.Sweep) > 0 {
		fmt.Fprintln(w, "\nconcurrency sweep (answers/s; p99 per call: a batch for locate and set sql; CPU us per answer):")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "kind\tconcurrency\tanswers/s\tp50 ms\tp99 ms\tserver us\tdb us\tbench us\terrors\t")
		for _, x := range r.Sweep {
			fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.2f\t%.2f\t%s\t%.1f\t%.1f\t%d\t\n", x.Kind, x.Concurrency, x.RPS, x.P50Ms, x.P99Ms,
				dash(x.ServerUsReq, "%.1f"), x.DBUsReq, x.BenchUsReq, x.Errors)
		}
		tw.Flush()
	}
	for _, c := range r.CLI {
		fmt.Fprintf(w, "\nsearch-client locate, %d points: %.1f s (%.0f points/s), peak RSS %.1f MB, client CPU %.1f s, server CPU %.1f s, %.0f MB of NDJSON",
			c.Points, c.Seconds, c.PointsPerSec, c.PeakRSSMB, c.ClientCPU, c.ServerCPU, c.OutputMB)
	}
	if len(r.CLI) > 0 {
		fmt.Fprintln(w)
	}
	if len(r.Plots) > 0 {
		fmt.Fprintf(w, "\nplots: %s\n", strings.Join(r.Plots, ", "))
	}
}
