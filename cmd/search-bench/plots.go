package main

import (
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// sweepKinds are the paths the plots compare, in legend order.
var sweepKinds = []string{kindGRPC, kindDirect, kindLocate, kindSetSQL}

// kindLabel names a round kind in the plots.
var kindLabel = map[string]string{
	kindGRPC:   "gRPC Search (unary)",
	kindDirect: "direct SQL, one point",
	kindLocate: "gRPC Locate (stream, bulk messages)",
	kindSetSQL: "set-based SQL (Locate's)",
}

// writePlots writes the report's plots as PNG files into dir and returns
// their paths: answers per second and p99 latency against concurrency,
// CPU per answer per path, and the set-based statement's CPU per point
// against its batch size.
func (r *report) writePlots(dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	note := fmt.Sprintf("load average %s -> %s, %d CPUs", r.Machine.LoadStart, r.Machine.LoadEnd, r.Machine.CPUs)
	var written []string
	save := func(p *plot.Plot, name string) error {
		path := filepath.Join(dir, name)
		if err := p.Save(7*vg.Inch, 4.5*vg.Inch, path); err != nil {
			return fmt.Errorf("plot %s: %w", name, err)
		}
		written = append(written, path)
		return nil
	}
	if len(r.Sweep) > 0 {
		rate := sweepPlot("Answers per second against concurrency", "answers/s (points answered)", note, r.Sweep,
			func(x sweepPoint) float64 { return x.RPS }, false)
		if err := save(rate, "throughput.png"); err != nil {
			return nil, err
		}
		p99 := sweepPlot(fmt.Sprintf("p99 latency per call (Locate, set SQL: a batch of %d points)", r.LocateBatch), "p99 ms (log)", note, r.Sweep,
			func(x sweepPoint) float64 { return x.P99Ms }, true)
		if err := save(p99, "p99.png"); err != nil {
			return nil, err
		}
	}
	if cpu := r.cpuPlot(note); cpu != nil {
		if err := save(cpu, "cpu.png"); err != nil {
			return nil, err
		}
	}
	if len(r.LocateBatches) > 0 {
		p := plot.New()
		p.Title.Text = "Set-based statement: CPU per point against points per statement"
		p.X.Label.Text = "points per statement (log)\n" + note
		p.Y.Label.Text = "CPU us per point"
		p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
		db, all := make(plotter.XYs, len(r.LocateBatches)), make(plotter.XYs, len(r.LocateBatches))
		for i, x := range r.LocateBatches {
			db[i] = plotter.XY{X: float64(x.Batch), Y: x.DBUsReq}
			all[i] = plotter.XY{X: float64(x.Batch), Y: x.AllUsReq}
		}
		if err := plotutil.AddLinePoints(p, "PostgreSQL", db, "PostgreSQL + pgx client", all); err != nil {
			return nil, err
		}
		p.Y.Min = 0
		p.Legend.Top = true
		if err := save(p, "locate-batch.png"); err != nil {
			return nil, err
		}
	}
	return written, nil
}

// sweepPlot draws f of each kind of the sweep against concurrency.
func sweepPlot(title, ylabel, note string, sweep []sweepPoint, f func(sweepPoint) float64, logY bool) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "concurrency (requests or streams in flight, log)\n" + note
	p.Y.Label.Text = ylabel
	p.X.Scale = plot.LogScale{}
	var ticks []plot.Tick
	seen := map[int]bool{}
	for _, x := range sweep {
		if !seen[x.Concurrency] {
			seen[x.Concurrency] = true
			ticks = append(ticks, plot.Tick{Value: float64(x.Concurrency), Label: strconv.Itoa(x.Concurrency)})
		}
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	if logY {
		p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
	}
	var lines []any
	for _, k := range sweepKinds {
		var xys plotter.XYs
		for _, x := range sweep {
			if x.Kind == k && f(x) > 0 {
				xys = append(xys, plotter.XY{X: float64(x.Concurrency), Y: f(x)})
			}
		}
		if len(xys) > 0 {
			lines = append(lines, kindLabel[k], xys)
		}
	}
	_ = plotutil.AddLinePoints(p, lines...)
	if !logY {
		p.Y.Min = 0
	}
	p.Legend.Top, p.Legend.Left = true, true
	return p
}

// cpuPlot stacks the CPU per answer of each path (median rounds): the
// server's, PostgreSQL's and the load generator's client.
func (r *report) cpuPlot(note string) *plot.Plot {
	var names []string
	var server, db, client plotter.Values
	for _, k := range []string{kindGRPC, kindDirect, kindLocate, kindSetSQL} {
		for _, s := range r.Medians {
			if s.Kind == k {
				names = append(names, k)
				server, db, client = append(server, s.ServerUsReq), append(db, s.DBUsReq), append(client, s.BenchUsReq)
			}
		}
	}
	if len(names) == 0 {
		return nil
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("CPU per answer, by path (medians at concurrency %d)", r.Settings.Concurrency)
	p.Y.Label.Text = "CPU us per answer"
	p.X.Label.Text = note
	w := vg.Points(40)
	bars := []struct {
		name string
		v    plotter.Values
		c    color.Color
	}{
		{"PostgreSQL", db, plotutil.Color(0)},
		{"search-server", server, plotutil.Color(1)},
		{"client (search-bench)", client, plotutil.Color(2)},
	}
	var below *plotter.BarChart
	for _, b := range bars {
		bc, err := plotter.NewBarChart(b.v, w)
		if err != nil {
			return nil
		}
		bc.Color, bc.LineStyle.Width = b.c, 0
		if below != nil {
			bc.StackOn(below)
		}
		below = bc
		p.Add(bc)
		p.Legend.Add(b.name, bc)
	}
	p.Legend.Top = true
	p.NominalX(names...)
	return p
}
