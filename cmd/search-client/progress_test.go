package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/creack/pty"

	"github.com/geosearch/search/internal/geo/geotest"
	"github.com/geosearch/search/internal/server/servertest"
)

// locateFile writes n points (a lattice, ID,LAT,LNG with a header) to a
// file and returns its path.
func locateFile(t *testing.T, n int) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("id,lat,lng\n")
	for i := range n {
		fmt.Fprintf(&b, "p%d,%g,%g\n", i, float64(i%140)-70, float64(i%360)-180)
	}
	path := filepath.Join(t.TempDir(), "points.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// runClientOnATerminal runs the search-client binary against ts with its
// standard error on a pseudo-terminal (standard output and input are not
// one; stdin is its standard input) and returns what it wrote to each, and
// its exit code.
func runClientOnATerminal(t *testing.T, ts *servertest.Server, stdin io.Reader, args ...string) (stdout, terminal string, code int) {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatalf("open a pseudo-terminal: %v", err)
	}
	defer ptmx.Close()
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 40, Cols: 200}); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(servertest.ClientBin, append([]string{"--addr", ts.Addr}, args...)...)
	var out bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &out, tty
	if err := cmd.Start(); err != nil {
		tty.Close()
		t.Fatal(err)
	}
	tty.Close() // the child holds it; its exit hangs the terminal up
	var term bytes.Buffer
	read := make(chan error, 1)
	go func() {
		_, err := io.Copy(&term, ptmx)
		read <- err
	}()
	err = cmd.Wait()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run search-client: %v", err)
	}
	// Once the child is gone, reading the terminal's other side ends with
	// EIO (Linux) after what it wrote.
	if err := <-read; err != nil && !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "input/output error") {
		t.Fatalf("read the terminal: %v", err)
	}
	return out.String(), term.String(), code
}

// ansi matches the terminal control sequences a redrawn line uses.
var ansi = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)

// frames splits what a terminal received into the lines and redrawn
// states it showed, control sequences removed.
func frames(terminal string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(ansi.ReplaceAllString(terminal, "\n"), func(r rune) bool { return r == '\r' || r == '\n' }) {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// lastMatch returns the submatches of the last frame re matches.
func lastMatch(t *testing.T, fs []string, re *regexp.Regexp) []int64 {
	t.Helper()
	for i := len(fs) - 1; i >= 0; i-- {
		if m := re.FindStringSubmatch(fs[i]); m != nil {
			var ns []int64
			for _, s := range m[1:] {
				n, err := strconv.ParseInt(s, 10, 64)
				if err != nil {
					t.Fatal(err)
				}
				ns = append(ns, n)
			}
			return ns
		}
	}
	t.Fatalf("no frame matches %s in:\n%s", re, strings.Join(fs, "\n"))
	return nil
}

// TestCLIProgressOnATerminal runs search-client import and locate with
// standard error on a pseudo-terminal: the progress line's counts reach the
// totals (every feature sent and acknowledged, every point sent and
// answered, the whole file read), and the summary follows it.
func TestCLIProgressOnATerminal(t *testing.T) {
	t.Parallel()
	ts := servertest.StartBinary(t, nil, true)

	out, terminal, code := runClientOnATerminal(t, ts, nil, "import", geotest.Testdata("ne_110m_countries.geojson"), "--collection", "countries")
	if code != 0 || !strings.Contains(out, "imported 177 features into countries") {
		t.Fatalf("import: exit %d\n%s\n%q", code, out, terminal)
	}
	if !ansi.MatchString(terminal) {
		t.Errorf("import drew no progress line on the terminal: %q", terminal)
	}
	fs := frames(terminal)
	if last := fs[len(fs)-1]; !strings.HasPrefix(last, "sent 177 features (177 acknowledged) in ") {
		t.Errorf("import's summary is not the last line on the terminal: %q", last)
	}
	got := lastMatch(t, fs, regexp.MustCompile(`^import .*?(\d+) features sent, (\d+) acknowledged, .*, (\d+)% of the input read$`))
	if got[0] != 177 || got[1] != 177 || got[2] != 100 {
		t.Errorf("import's last progress line: %d sent, %d acknowledged, %d%% read; want 177, 177, 100%%", got[0], got[1], got[2])
	}

	const n = 4000
	path := locateFile(t, n)
	out, terminal, code = runClientOnATerminal(t, ts, nil, "locate", "--collection", "countries", path)
	if code != 0 {
		t.Fatalf("locate: exit %d\n%q", code, terminal)
	}
	if lines := strings.Count(out, "\n"); lines != n {
		t.Errorf("locate wrote %d answers, want %d", lines, n)
	}
	if strings.Contains(out, "\x1b") {
		t.Errorf("escape codes in locate's standard output")
	}
	fs = frames(terminal)
	got = lastMatch(t, fs, regexp.MustCompile(`^locate .*?(\d+) points sent, (\d+) answered, .*, (\d+)% of the input read$`))
	if got[0] != n || got[1] != n || got[2] != 100 {
		t.Errorf("locate's last progress line: %d sent, %d answered, %d%% read; want %d, %d, 100%%", got[0], got[1], got[2], n, n)
	}
	if last := fs[len(fs)-1]; !strings.HasPrefix(last, fmt.Sprintf("located %d points (", n)) {
		t.Errorf("locate's summary is not the last line on the terminal: %q", last)
	}

	// From a pipe, whose size is not known: the counts, and no share read.
	in, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	pr, pw := io.Pipe()
	go func() { _, err := io.Copy(pw, in); pw.CloseWithError(err) }()
	out, terminal, code = runClientOnATerminal(t, ts, pr, "locate", "--collection", "countries", "-")
	if code != 0 || strings.Count(out, "\n") != n {
		t.Fatalf("locate -: exit %d, %d answers\n%q", code, strings.Count(out, "\n"), terminal)
	}
	fs = frames(terminal)
	got = lastMatch(t, fs, regexp.MustCompile(`^locate .*?(\d+) points sent, (\d+) answered, [^,]*, [^,]* elapsed$`))
	if got[0] != n || got[1] != n {
		t.Errorf("locate -: last progress line: %d sent, %d answered; want %d, %d", got[0], got[1], n, n)
	}
}

// TestCLIProgressNotOnATerminal runs search-client import and locate with
// standard error on a pipe: no progress line and no control characters,
// only each command's one-line summary (import's report on standard output
// is its report and the write's consistency token).
func TestCLIProgressNotOnATerminal(t *testing.T) {
	t.Parallel()
	ts := servertest.StartBinary(t, nil, true)
	out, errOut, code := ts.RunClient(t, "import", geotest.Testdata("ne_110m_countries.geojson"), "--collection", "countries")
	if code != 0 || !regexp.MustCompile(`^imported 177 features into countries \(5 repaired\), rejected 0\nconsistency token: [A-Za-z0-9_-]{12}\n$`).MatchString(out) {
		t.Fatalf("import: exit %d, standard output %q", code, out)
	}
	if !regexp.MustCompile(`^sent 177 features \(177 acknowledged\) in [0-9.hmµs]+, \d+ features/s\n$`).MatchString(errOut) {
		t.Errorf("import's standard error is not its one-line summary: %q", errOut)
	}
	path := locateFile(t, 2000)
	_, errOut, code = ts.RunClient(t, "locate", path)
	if code != 0 {
		t.Fatalf("locate: exit %d\n%s", code, errOut)
	}
	if !regexp.MustCompile(`^located 2000 points \(\d+ inside something, 0 errors\) in [0-9.hmµs]+, \d+ points/s\n$`).MatchString(errOut) {
		t.Errorf("locate's standard error is not its one-line summary: %q", errOut)
	}
}
