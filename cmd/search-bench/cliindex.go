package main

import (
	"context"
	"fmt"
	"strings"
)

// cliIndexSpeedupTarget is issue 27's: search-client locate with the
// in-memory index at least this much faster than without it ("today").
const cliIndexSpeedupTarget = 3.0

// cliIndexResult is search-client locate on the same points against the
// main server (index on) and a server on the same database with
// MEMINDEX=off, one after the other in one run.
type cliIndexResult struct {
	On      cliResult `json:"index_on"`
	Off     cliResult `json:"index_off"`
	Speedup float64   `json:"speedup"` // points/s on over off
}

// cliPhase runs search-client locate on a few points and on o.cliPoints
// against main (its peak RSS), then against a server with the index off.
func (b *bench) cliPhase(ctx context.Context, r *report, main endpoint, dbURL, dir string) error {
	if b.o.cliPoints > 0 && main.proc != nil {
		for _, n := range []int{min(cliSmallPoints, b.o.cliPoints), b.o.cliPoints} {
			b.progress("search-client locate on %d points", n)
			res, err := b.cliLocate(ctx, main, dir, n)
			if err != nil {
				return err
			}
			b.progress("search-client locate: %d points in %.1f s (%.0f/s), peak RSS %.1f MB", n, res.Seconds, res.PointsPerSec, res.PeakRSSMB)
			r.CLI = append(r.CLI, res)
			if n == b.o.cliPoints {
				break
			}
		}
	}
	return b.cliIndexPhase(ctx, r, main, dbURL, dir)
}

// cliIndexPhase runs search-client locate on o.cliPoints points against
// main and against a server started with MEMINDEX=off on dbURL.
func (b *bench) cliIndexPhase(ctx context.Context, r *report, main endpoint, dbURL, dir string) error {
	if b.o.cliPoints <= 0 || main.proc == nil || dbURL == "" {
		return nil
	}
	b.progress("starting search-server with MEMINDEX=off for search-client locate")
	env := withEnv(map[string]string{"DATABASE_URL": dbURL, "LOCATE_BATCH_SIZE": fmt.Sprint(b.batch)}, b.o.serverEnv)
	env["MEMINDEX"] = "off"
	p, err := startServer(ctx, b.o.serverBin, dir, "index-off", env)
	if err != nil {
		return err
	}
	defer p.stop()
	var res cliIndexResult
	sides := []struct {
		name string
		at   endpoint
		to   *cliResult
	}{{"index on", main, &res.On}, {"index off", endpoint{conn: p.conn, proc: p}, &res.Off}}
	if n := len(r.CLI); n > 0 && r.CLI[n-1].Points == b.o.cliPoints {
		res.On = r.CLI[n-1] // the run just before, on the same points
		sides = sides[1:]
	}
	for _, side := range sides {
		c, err := b.cliLocate(ctx, side.at, dir, b.o.cliPoints)
		if err != nil {
			return err
		}
		b.progress("search-client locate, %s: %d points in %.1f s (%.0f/s), server CPU %.1f s", side.name, c.Points, c.Seconds, c.PointsPerSec, c.ServerCPU)
		*side.to = c
	}
	if res.Off.PointsPerSec > 0 {
		res.Speedup = res.On.PointsPerSec / res.Off.PointsPerSec
	}
	r.CLIIndex = &res
	return nil
}

// cliTargets adds search-client locate's targets when it was measured:
// its peak RSS, and issue 27's speed-up with the index; and the index's
// size (memory.go).
func (r *report) cliTargets(add func(name, want, got string, met bool)) {
	r.memoryTarget(add)
	r.indexTargets(add)
	if n := len(r.CLI); n > 0 {
		c := r.CLI[n-1]
		got := fmt.Sprintf("%.1f MB", c.PeakRSSMB)
		if n > 1 {
			got += fmt.Sprintf(" (%.1f MB on %d points)", r.CLI[0].PeakRSSMB, r.CLI[0].Points)
		}
		// Bounded: under the limit, and no more than a quarter above the
		// run on few points, whatever the input's size.
		flat := n == 1 || c.PeakRSSMB <= 1.25*r.CLI[0].PeakRSSMB
		add(fmt.Sprintf("search-client locate, %d points: peak RSS", c.Points), fmt.Sprintf("< %d MB, <= 1.25x on %d points", cliRSSTargetMB, r.CLI[0].Points),
			got, c.PeakRSSMB > 0 && c.PeakRSSMB < cliRSSTargetMB && flat)
	}
	c := r.CLIIndex
	if c == nil {
		return
	}
	add(fmt.Sprintf("search-client locate, %d points: index on vs off (rate)", c.On.Points), fmt.Sprintf(">= %.0fx", cliIndexSpeedupTarget),
		fmt.Sprintf("%.2fx (%.1f s vs %.1f s)", c.Speedup, c.On.Seconds, c.Off.Seconds), c.Speedup >= cliIndexSpeedupTarget)
}

// withEnv adds kvs (KEY=VALUE each, --server-env) to env.
func withEnv(env map[string]string, kvs []string) map[string]string {
	for _, kv := range kvs {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	return env
}

// Issue 27's targets for the in-memory index, in the same run.
const (
	indexLocateUsTarget  = 3.0 // server CPU per located point, us
	indexLocateCeiling   = 3.0 // Locate's rate over the set-based statement's
	indexUnaryOverDirect = 1.5 // unary point Search's rate over the direct SQL's
	indexUnaryOverBare   = 1.3 // server CPU per unary Search over a bare grpc-go call's
)

// indexTargets adds issue 27's targets from the medians.
func (r *report) indexTargets(add func(name, want, got string, met bool)) {
	m := map[string]summary{}
	for _, s := range r.Medians {
		m[s.Kind] = s
	}
	l, set, g, d, bare := m[kindLocate], m[kindSetSQL], m[kindGRPC], m[kindDirect], m[kindBareHealth]
	if l.ServerUsReq > 0 {
		add("issue 27: server CPU per located point", fmt.Sprintf("<= %.0f us", indexLocateUsTarget),
			fmt.Sprintf("%.1f us", l.ServerUsReq), l.ServerUsReq <= indexLocateUsTarget)
	}
	if set.RPS > 0 && l.RPS > 0 {
		v := l.RPS / set.RPS
		add("issue 27: Locate vs the set-based SQL ceiling (rate)", fmt.Sprintf(">= %.0fx", indexLocateCeiling), fmt.Sprintf("%.2fx", v), v >= indexLocateCeiling)
	}
	if d.RPS > 0 && g.RPS > 0 {
		v := g.RPS / d.RPS
		add("issue 27: gRPC point search vs direct SQL (rate)", fmt.Sprintf(">= %.1fx", indexUnaryOverDirect), fmt.Sprintf("%.2fx", v), v >= indexUnaryOverDirect)
		// Not a target: the load generator shares the cores with the
		// server and the database, so with every core busy the rates
		// follow the CPU each call costs on the whole machine, the
		// bench's own client (grpc-go's or pgx's) included.
		add("issue 27: CPU per call, gRPC (server + db + bench client) vs direct (db + bench client)", "reported",
			fmt.Sprintf("%.0f + %.0f + %.0f = %.0f us vs %.0f + %.0f = %.0f us", g.ServerUsReq, g.DBUsReq, g.BenchUsReq,
				g.ServerUsReq+g.DBUsReq+g.BenchUsReq, d.DBUsReq, d.BenchUsReq, d.DBUsReq+d.BenchUsReq), true)
	}
	if bare.ServerUsReq > 0 && g.ServerUsReq > 0 {
		v := g.ServerUsReq / bare.ServerUsReq
		add("issue 27: server CPU per point Search / bare grpc-go call", fmt.Sprintf("<= %.1fx", indexUnaryOverBare),
			fmt.Sprintf("%.2fx (%.0f / %.0f us)", v, g.ServerUsReq, bare.ServerUsReq), v <= indexUnaryOverBare)
	}
}
