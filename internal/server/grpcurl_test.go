package server_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/geosearch/search/internal/server/servertest"
)

// TestGrpcurlUsesReflection lists and calls the service with grpcurl, which
// knows nothing of the proto but what server reflection tells it.
func TestGrpcurlUsesReflection(t *testing.T) {
	t.Parallel()
	grpcurl, err := filepath.Abs("../../bin/grpcurl")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(grpcurl); err != nil {
		t.Fatalf("no grpcurl at %s: run make grpcurl (make test builds it)", grpcurl)
	}
	ts := servertest.Start(t, map[string]string{"DATABASE_URL": servertest.FixtureDB(t)}, true)
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(grpcurl, append([]string{"-plaintext"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("grpcurl %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	list := run(ts.Addr, "list")
	for _, svc := range []string{"search.v1.SearchService", "grpc.health.v1.Health"} {
		if !strings.Contains(list, svc) {
			t.Errorf("grpcurl list lacks %s:\n%s", svc, list)
		}
	}
	out := run("-d", `{"point": {"lat": 48.85, "lng": 2.35}}`, ts.Addr, "search.v1.SearchService/Search")
	if !strings.Contains(out, `"name": "France"`) {
		t.Errorf("grpcurl Search for Paris:\n%s", out)
	}
}
