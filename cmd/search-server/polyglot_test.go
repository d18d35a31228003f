package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	searchv1 "github.com/geosearch/search/proto/search/v1"
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
func goAnswers(t *testing.T, ts *testServer) (point, paged, streamed []int64) {
	t.Helper()
	ctx := context.Background()
	resp, err := ts.client.Search(ctx, &searchv1.SearchRequest{Point: &searchv1.Point{Lat: 48.85, Lng: 2.35}})
	if err != nil {
		t.Fatal(err)
	}
	for _, th := range resp.GetThings() {
		point = append(point, th.GetId())
	}
	req := &searchv1.SearchRequest{Query: "an", PageSize: 10}
	for {
		resp, err := ts.client.Search(ctx, req)
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
	stream, err := ts.client.SearchStream(ctx, &searchv1.SearchRequest{Query: "an"})
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
	ts := startServer(t, nil, true)
	importFixture(t, ts)
	wantPoint, wantPaged, wantStreamed := goAnswers(t, ts)
	if len(wantPoint) != 1 || len(wantPaged) < 30 {
		t.Fatalf("Go client: point %v, %d paged; the comparison would prove little", wantPoint, len(wantPaged))
	}
	_, goErr, _ := ts.runClient(t, "search", "--lat", "91", "--lng", "0")
	wantErr := strings.TrimPrefix(strings.TrimSpace(goErr), "search-client: ")

	for name, argv := range clients {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			argv := append(slices.Clone(argv), "--addr", ts.addr)
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
	ts := startServer(t, consulEnv(service, ""), true)
	importFixture(t, ts)
	eventually(t, 30*time.Second, "the instance in DNS", func() bool { return len(inDNS(t, service)) == 1 })
	want, _, _ := goAnswers(t, ts)
	argv := append(slices.Clone(clients["node"]), "--consul-dns", agent.DNSAddr(), "--service", service)
	if got, errOut, code := runPolyglot(t, argv, "point", "48.85", "2.35"); code != 0 || !slices.Equal(got, want) {
		t.Errorf("through Consul DNS: ids %v (exit %d, %s), want %v", got, code, errOut, want)
	}
	_, errOut, code := runPolyglot(t, append(slices.Clone(clients["node"]), "--consul-dns", agent.DNSAddr(), "--service", "nobody"), "point", "1", "1")
	if code != 1 || !strings.Contains(errOut, `no healthy instance of "nobody" found through Consul DNS`) {
		t.Errorf("no instance: exit %d, stderr %q", code, errOut)
	}
}
