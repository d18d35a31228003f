// The compose file cannot be started where there is no Docker engine (CI
// here has none), so this test validates it with the Compose
// specification's own loader instead.
package deploy_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	project, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  root,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(root, "docker-compose.yml")}},
		Environment: types.Mapping{},
	}, loader.WithProfiles([]string{"*"}), func(o *loader.Options) { o.SetProjectName("geo-search", true) })
	if err != nil {
		t.Fatalf("docker-compose.yml does not load: %v", err)
	}
	return project
}

// oneShot reports whether a service is a job that runs once.
func oneShot(s types.ServiceConfig) bool { return s.Restart == "no" }

func TestComposeFileIsComplete(t *testing.T) {
	t.Parallel()
	p := loadCompose(t)
	want := []string{"consul", "consul-config", "postgres", "graphite", "kafka", "migrate",
		"search-server-1", "search-server-2", "import", "search-client"}
	var got []string
	for name := range p.Services {
		got = append(got, name)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("services %v, want %v", got, want)
	}
	if len(p.Volumes) < 3 {
		t.Errorf("volumes %v: want persistent ones for Postgres, Consul and Kafka", p.Volumes)
	}
}

func TestComposeDependenciesAndHealth(t *testing.T) {
	t.Parallel()
	p := loadCompose(t)
	for name, s := range p.Services {
		longRunning := !oneShot(s) && !slices.Contains(s.Profiles, "client")
		if longRunning && (s.HealthCheck == nil || s.HealthCheck.Disable || len(s.HealthCheck.Test) == 0) {
			t.Errorf("%s runs for long but has no health check", name)
		}
		for dep, d := range s.DependsOn {
			target, ok := p.Services[dep]
			if !ok {
				t.Errorf("%s depends on %s, which does not exist", name, dep)
				continue
			}
			want := types.ServiceConditionHealthy
			if oneShot(target) {
				want = types.ServiceConditionCompletedSuccessfully
			}
			if d.Condition != want {
				t.Errorf("%s waits for %s to be %q, want %q", name, dep, d.Condition, want)
			}
		}
	}
}

func TestComposeImagesArePinned(t *testing.T) {
	t.Parallel()
	p := loadCompose(t)
	tagged := regexp.MustCompile(`^[^:]+(:[^/:]+)?:[\w][\w.-]*$|@sha256:[0-9a-f]{64}$`)
	for name, s := range p.Services {
		if s.Build != nil {
			continue // built from this repository
		}
		if !tagged.MatchString(s.Image) || strings.HasSuffix(s.Image, ":latest") {
			t.Errorf("%s uses image %q: pin a version", name, s.Image)
		}
	}
}

func TestComposePublishesOnlyWhatUsersNeed(t *testing.T) {
	t.Parallel()
	p := loadCompose(t)
	allowed := map[string]bool{"consul": true, "graphite": true, "search-server-1": true}
	for name, s := range p.Services {
		if len(s.Ports) > 0 && !allowed[name] {
			t.Errorf("%s publishes ports %v; only the Consul UI/DNS, Graphite web and one gRPC server should", name, s.Ports)
		}
	}
}

// TestComposeServerEnvironmentIsDocumented checks that every variable the
// compose file sets for the servers is one the README documents, and that
// the KV keys it seeds are documented keys.
func TestComposeServerEnvironmentIsDocumented(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([A-Z][A-Z0-9_]*)` \\| `([a-z0-9_]+)` \\|").FindAllStringSubmatch(string(readme), -1) {
		documented[m[1]] = true
	}
	if len(documented) < 20 {
		t.Fatalf("found only %d documented variables in README.md", len(documented))
	}
	p := loadCompose(t)
	for _, name := range []string{"search-server-1", "search-server-2", "migrate"} {
		for v := range p.Services[name].Environment {
			if !documented[v] {
				t.Errorf("%s sets %s, which the README does not document", name, v)
			}
		}
	}
	seed := strings.Join(p.Services["consul-config"].Command, " ")
	for _, m := range regexp.MustCompile(`search-service/config/([a-z0-9_]+)`).FindAllStringSubmatch(seed, -1) {
		if !documented[strings.ToUpper(m[1])] {
			t.Errorf("consul-config seeds KV key %s, which is no documented variable", m[1])
		}
	}
}
