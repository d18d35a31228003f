package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/testing/protocmp"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/geo/geotest"
	"github.com/geosearch/search/internal/server/servertest"
)

// polyglotClients are the examples in other languages, as commands that take
// the server address and then a command (point, query, stream).
func polyglotClients(t *testing.T) map[string][]string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	node := filepath.Join(root, "examples", "node")
	if _, err := os.Stat(filepath.Join(node, "node_modules", "@grpc", "grpc-js")); err != nil {
		t.Fatalf("the Node.js example is not installed: run tools/install-deps.sh polyglot (make test does): %v", err)
	}
	python := filepath.Join(root, "examples", "python")
	if out, err := exec.Command(filepath.Join(python, "generate.sh")).CombinedOutput(); err != nil {
		t.Fatalf("generate the Python code (needs protobuf-compiler and protobuf-compiler-grpc; run tools/install-deps.sh polyglot): %v\n%s", err, out)
	}
	return map[string][]string{
		"node":   {"node", filepath.Join(node, "client.js")},
		"python": {"/usr/bin/python3", filepath.Join(python, "client.py")},
	}
}

// runPolyglot runs a client and returns its "ID<TAB>NAME" lines as ids, its
// stderr, and its exit code.
func runPolyglot(t *testing.T, argv []string, args ...string) ([]int64, string, int) {
	t.Helper()
	cmd := exec.Command(argv[0], append(argv[1:], args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %v: %v", argv, err)
	}
	var ids []int64
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		idText, _, _ := strings.Cut(line, "\t")
		id, err := strconv.ParseInt(idText, 10, 64)
		if err != nil {
			t.Fatalf("%v printed %q", argv, line)
		}
		ids = append(ids, id)
	}
	return ids, errOut.String(), code
}

// goAnswers gets the same answers with the Go client.
func goAnswers(t *testing.T, ts *servertest.Server) (point, paged, streamed []int64) {
	t.Helper()
	ctx := context.Background()
	resp, err := ts.Client.Search(ctx, &searchv1.SearchRequest{Point: &searchv1.Point{Lat: 48.85, Lng: 2.35}})
	if err != nil {
		t.Fatal(err)
	}
	for _, th := range resp.GetThings() {
		point = append(point, th.GetId())
	}
	req := &searchv1.SearchRequest{Query: "an", PageSize: 10}
	for {
		resp, err := ts.Client.Search(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		for _, th := range resp.GetThings() {
			paged = append(paged, th.GetId())
		}
		if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" {
			break
		}
	}
	stream, err := ts.Client.SearchStream(ctx, &searchv1.SearchRequest{Query: "an"})
	if err != nil {
		t.Fatal(err)
	}
	for {
		th, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		streamed = append(streamed, th.GetId())
	}
	return point, paged, streamed
}

func TestClientsInOtherLanguagesGetTheSameAnswers(t *testing.T) {
	t.Parallel()
	clients := polyglotClients(t)
	ts := servertest.Start(t, map[string]string{"DATABASE_URL": servertest.FixtureDB(t)}, true)
	wantPoint, wantPaged, wantStreamed := goAnswers(t, ts)
	if len(wantPoint) != 1 || len(wantPaged) < 30 {
		t.Fatalf("Go client: point %v, %d paged; the comparison would prove little", wantPoint, len(wantPaged))
	}
	_, goErr, _ := ts.RunClient(t, "search", "--lat", "91", "--lng", "0")
	wantErr := strings.TrimPrefix(strings.TrimSpace(goErr), "search-client: ")

	for name, argv := range clients {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			argv := append(slices.Clone(argv), "--addr", ts.Addr)
			if got, errOut, code := runPolyglot(t, argv, "point", "48.85", "2.35"); code != 0 || !slices.Equal(got, wantPoint) {
				t.Errorf("point: ids %v (exit %d, %s), want %v", got, code, errOut, wantPoint)
			}
			if got, errOut, code := runPolyglot(t, argv, "query", "an", "10"); code != 0 || !slices.Equal(got, wantPaged) {
				t.Errorf("paged query: ids %v (exit %d, %s), want the same ids in the same order: %v", got, code, errOut, wantPaged)
			}
			got, errOut, code := runPolyglot(t, argv, "stream", "an")
			slices.Sort(got)
			want := slices.Clone(wantStreamed)
			slices.Sort(want)
			if code != 0 || !slices.Equal(got, want) {
				t.Errorf("stream: ids %v (exit %d, %s), want the set %v", got, code, errOut, want)
			}
			_, errOut, code = runPolyglot(t, argv, "point", "91", "0")
			if code != 1 || strings.TrimSpace(errOut) != wantErr {
				t.Errorf("invalid point: exit %d, stderr %q; want 1 and %q, as the Go client", code, errOut, wantErr)
			}
		})
	}
}

func TestNodeClientFindsTheServerThroughConsulDNS(t *testing.T) {
	t.Parallel()
	clients := polyglotClients(t)
	const service = "search-polyglot"
	ts := servertest.Start(t, servertest.ConsulEnv(service, servertest.FixtureDB(t)), true)
	servertest.Eventually(t, 30*time.Second, "the instance in DNS", func() bool { return len(servertest.InDNS(t, service)) == 1 })
	want, _, _ := goAnswers(t, ts)
	argv := append(slices.Clone(clients["node"]), "--consul-dns", servertest.Agent.DNSAddr(), "--service", service)
	if got, errOut, code := runPolyglot(t, argv, "point", "48.85", "2.35"); code != 0 || !slices.Equal(got, want) {
		t.Errorf("through Consul DNS: ids %v (exit %d, %s), want %v", got, code, errOut, want)
	}
	_, errOut, code := runPolyglot(t, append(slices.Clone(clients["node"]), "--consul-dns", servertest.Agent.DNSAddr(), "--service", "nobody"), "point", "1", "1")
	if code != 1 || !strings.Contains(errOut, `no healthy instance of "nobody" found through Consul DNS`) {
		t.Errorf("no instance: exit %d, stderr %q", code, errOut)
	}
}

// locatePoints are what the examples' Locate calls send, as ID,LAT,LNG: a
// lattice over the world, in countries and in the sea, more points than
// the examples' window of points sent ahead of the answers (so their flow
// control waits), and bad points, which get errors in their own answers.
func locatePoints() []string {
	var points []string
	for lat := -55.0; lat <= 70; lat += 5 {
		for lng := -175.0; lng < 180; lng += 25 {
			points = append(points, fmt.Sprintf("p%g_%g,%g,%g", lat, lng, lat, lng))
		}
	}
	return append(points, "paris,48.85,2.35", "nan,NaN,0", "north,91,0", "east,0,181", "paris-again,48.85,2.35")
}

// goLocate answers points (ID,LAT,LNG) through the Go client's Locate
// stream, scoped by opts.
func goLocate(t *testing.T, ts *servertest.Server, opts *searchv1.LocateOptions, points []string) []*searchv1.LocateResponse {
	t.Helper()
	stream, err := ts.Client.Locate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	reqs := []*searchv1.LocateRequest{{Options: opts}}
	for _, p := range points {
		f := strings.Split(p, ",")
		lat, err1 := strconv.ParseFloat(f[1], 64)
		lng, err2 := strconv.ParseFloat(f[2], 64)
		if err := errors.Join(err1, err2); err != nil {
			t.Fatal(err)
		}
		reqs = append(reqs, &searchv1.LocateRequest{Id: f[0], Point: &searchv1.Point{Lat: lat, Lng: lng}})
	}
	sendErr := make(chan error, 1)
	go func() {
		for _, r := range reqs {
			if err := stream.Send(r); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- stream.CloseSend()
	}()
	var answers []*searchv1.LocateResponse
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		answers = append(answers, resp)
	}
	if err := <-sendErr; err != nil {
		t.Fatal(err)
	}
	return answers
}

// runPolyglotLocate runs a client's locate command and reads its answers,
// one protojson LocateResponse per line.
func runPolyglotLocate(t *testing.T, argv []string, args ...string) ([]*searchv1.LocateResponse, string, int) {
	t.Helper()
	cmd := exec.Command(argv[0], append(append(slices.Clone(argv[1:]), "locate"), args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return nil, errOut.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %v: %v", argv, err)
	}
	var answers []*searchv1.LocateResponse
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		resp := &searchv1.LocateResponse{}
		if err := protojson.Unmarshal([]byte(line), resp); err != nil {
			t.Fatalf("%v printed %q: %v", argv, line, err)
		}
		answers = append(answers, resp)
	}
	return answers, errOut.String(), 0
}

// TestClientsInOtherLanguagesLocateAsTheGoClient runs the examples' Locate
// calls (one bidirectional stream, the scope in the first message, a window
// of points sent ahead of the answers) and compares their answers, whole
// (ids, things with their properties, errors) and in order, with the Go
// client's for the same points and scope.
func TestClientsInOtherLanguagesLocateAsTheGoClient(t *testing.T) {
	t.Parallel()
	clients := polyglotClients(t)
	ts := servertest.Start(t, map[string]string{"DATABASE_URL": servertest.FixtureDB(t)}, true) // collection "default": out of the scope below
	if _, errOut, code := ts.RunClient(t, "import", geotest.Testdata("ne_110m_countries.geojson"), "--collection", "countries", "--key-property", "name"); code != 0 {
		t.Fatalf("import: exit %d\n%s", code, errOut)
	}
	points := locatePoints()
	want := goLocate(t, ts, &searchv1.LocateOptions{Collections: []string{"countries"}}, points)
	inside, failed := 0, 0
	for _, a := range want {
		if len(a.GetThings()) > 0 {
			inside++
			if len(a.GetThings()[0].GetProperties().GetFields()) == 0 {
				t.Fatalf("Go client: %v has no properties; the comparison would prove little", a)
			}
		}
		if a.GetError() != nil {
			failed++
		}
	}
	if len(want) != len(points) || inside < 30 || failed != 3 {
		t.Fatalf("Go client: %d answers for %d points, %d inside a country, %d errors; want one each, 30 or more inside, 3 errors",
			len(want), len(points), inside, failed)
	}
	// A bad scope ends the whole stream: the same status as search-client's.
	one := filepath.Join(t.TempDir(), "one.csv")
	if err := os.WriteFile(one, []byte("a,1,1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, goErr, code := ts.RunClient(t, "locate", "--limit", "-1", one)
	lines := strings.Split(strings.TrimSpace(goErr), "\n") // the summary, then the error
	wantErr := strings.TrimPrefix(lines[len(lines)-1], "search-client: ")
	if code != 1 || !strings.HasPrefix(wantErr, "InvalidArgument: ") {
		t.Fatalf("search-client locate --limit -1: exit %d, %s", code, goErr)
	}
	args := append([]string{"--collection", "countries"}, points...)
	for name, argv := range clients {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			argv := append(slices.Clone(argv), "--addr", ts.Addr)
			got, errOut, code := runPolyglotLocate(t, argv, args...)
			if code != 0 {
				t.Fatalf("locate: exit %d\n%s", code, errOut)
			}
			if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
				t.Errorf("locate: answers differ from the Go client's (-want +got):\n%s", diff)
			}
			if _, errOut, code := runPolyglotLocate(t, argv, "--limit", "-1", "a,1,1"); code != 1 || strings.TrimSpace(errOut) != wantErr {
				t.Errorf("locate --limit -1: exit %d, stderr %q; want 1 and %q, as search-client", code, errOut, wantErr)
			}
		})
	}
}
