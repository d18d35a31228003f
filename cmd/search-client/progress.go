package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"
)

// progress shows how a streaming command (locate, import) advances, on one
// line of standard error redrawn in place while stderr is a terminal: what
// was sent, what was answered, the rate and the time elapsed, and, when the
// input's size is known (a file), a bar of how much of it has been read.
// Anywhere else (a pipe, a log file) it draws nothing and writes no escape
// codes. The counts are atomics that the stream's goroutines add to and
// the renderer (mpb, redrawing a few times a second on a goroutine of its
// own) reads: counting costs the stream an atomic add, and nothing is
// buffered.
type progress struct {
	container *mpb.Progress // nil: stderr is no terminal
	bar       *mpb.Bar
	unit      string // "points", "features"
	// answers says the server answers while the stream runs (locate);
	// otherwise it acknowledges everything at the end (import).
	answers bool
	in      *input
	start   time.Time
	end     atomic.Int64 // UnixNano when stopped, 0 before

	sent, answered atomic.Int64
	acked          atomic.Int64 // -1 until acknowledge
	stopOnce       sync.Once
}

// progressRefresh is how often the line is redrawn.
const progressRefresh = 200 * time.Millisecond

// newProgress starts the progress line of command ("locate", "import") on
// stderr, counting unit ("points", "features") read from in. It draws only
// when stderr is a terminal and output, what the command writes while it
// runs (nil: nothing), is not one: a line redrawn in place would overwrite
// the lines written meanwhile. stop ends it.
func newProgress(stderr, output io.Writer, command, unit string, answers bool, in *input) *progress {
	p := &progress{unit: unit, answers: answers, in: in, start: time.Now()}
	p.acked.Store(-1)
	f, ok := stderr.(*os.File)
	if !ok || !isTerminal(f) || output != nil && isTerminal(output) {
		return p
	}
	p.container = mpb.New(mpb.WithOutput(f), mpb.WithRefreshRate(progressRefresh))
	var filler mpb.BarFiller = mpb.SpinnerStyle().PositionLeft().Build()
	if in != nil && in.size > 0 {
		// The bar is the share of the input read: what the stream's own
		// counts cannot say, as the number of points in a file is not
		// known before its end.
		bar := mpb.BarStyle().Build()
		filler = mpb.BarFillerFunc(func(w io.Writer, st decor.Statistics) error {
			st.Total, st.Current = in.size, min(in.read.Load(), in.size)
			return bar.Fill(w, st)
		})
	}
	bar, err := p.container.Add(0, filler, mpb.BarWidth(30),
		mpb.PrependDecorators(decor.Name(command+" ")),
		mpb.AppendDecorators(decor.Any(func(decor.Statistics) string { return " " + p.line() })))
	if err != nil { // only a container already shut down fails: draw nothing
		p.container.Shutdown()
		p.container = nil
		return p
	}
	p.bar = bar
	return p
}

// line is the counts as the progress line shows them, e.g. "1200 points
// sent, 1100 answered, 5400/s, 3s elapsed, 40% of the input read".
func (p *progress) line() string {
	elapsed := p.elapsed()
	sent := p.sent.Load()
	s := fmt.Sprintf("%d %s sent", sent, p.unit)
	done := sent
	if p.answers {
		done = p.answered.Load()
		s += fmt.Sprintf(", %d answered", done)
	}
	if acked := p.acked.Load(); acked >= 0 {
		s += fmt.Sprintf(", %d acknowledged", acked)
	}
	s += fmt.Sprintf(", %.0f/s, %s elapsed", float64(done)/max(elapsed.Seconds(), 1e-9), elapsed.Round(time.Second))
	if p.in != nil && p.in.size > 0 {
		s += fmt.Sprintf(", %d%% of the input read", min(p.in.read.Load(), p.in.size)*100/p.in.size)
	}
	return s
}

// addSent counts one message sent.
func (p *progress) addSent() { p.sent.Add(1) }

// addSentN counts n points sent in one message.
func (p *progress) addSentN(n int) { p.sent.Add(int64(n)) }

// addAnswered counts one answer received.
func (p *progress) addAnswered() { p.answered.Add(1) }

// acknowledge records the server's count of what it received, at the end
// of a stream that is answered once (import).
func (p *progress) acknowledge(n int64) { p.acked.Store(n) }

// elapsed is the time since the start, until stop.
func (p *progress) elapsed() time.Duration {
	if end := p.end.Load(); end != 0 {
		return time.Unix(0, end).Sub(p.start)
	}
	return time.Since(p.start)
}

// stop draws the final counts and leaves them on their line; later calls
// do nothing. The command prints its summary after it.
func (p *progress) stop() {
	p.stopOnce.Do(func() {
		p.end.Store(time.Now().UnixNano())
		if p.container == nil {
			return
		}
		p.bar.SetTotal(-1, true)
		p.container.Wait()
	})
}

// input is an opened input file: Reader yields its content (decompressed
// when it was gzip), size is its size in bytes on disk (0 when unknown:
// a pipe, a terminal), and read counts the bytes of it read so far.
type input struct {
	io.Reader
	size  int64
	read  *atomic.Int64
	close func()
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n.Add(int64(n))
	return n, err
}

// timing is the end of a summary line: "in 1.234s, 5400 points/s" (the
// rate of answers, or of messages sent for a stream answered at the end).
func (p *progress) timing() string {
	done := p.sent.Load()
	if p.answers {
		done = p.answered.Load()
	}
	elapsed := p.elapsed()
	return fmt.Sprintf("in %s, %.0f %s/s", elapsed.Round(time.Millisecond), float64(done)/max(elapsed.Seconds(), 1e-9), p.unit)
}

// isTerminal says whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
