// These tests read the compose file, with the Compose specification's own
// loader and Compose v2, without an engine; make test-docker
// (deploy/standins/test-docker.sh) starts it for real on a Docker Engine of
// its own.
package deploy_test

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/hashicorp/consul/api"

	"github.com/geosearch/search/internal/consul/consultest"
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
	want := []string{"consul", "consul-config", "postgres", "graphite", "graphite-dashboard", "kafka", "migrate",
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

// repoFile reads a file of the repository.
func repoFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", path))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestComposeDatabaseCheckUsesTCP: while the postgres image initialises a
// new volume it runs a temporary server on the Unix socket only, so a
// socket check passes before the servers (which connect over TCP) can
// connect. pg_isready must name a host. migrate must also wait for the
// database rather than fail on its first connection.
func TestComposeDatabaseCheckUsesTCP(t *testing.T) {
	t.Parallel()
	p := loadCompose(t)
	checked := 0
	for name, s := range p.Services {
		if s.HealthCheck == nil {
			continue
		}
		test := strings.Join(s.HealthCheck.Test, " ")
		if !strings.Contains(test, "pg_isready") {
			continue
		}
		checked++
		if !regexp.MustCompile(`(^|\s)(-h|--host)[ =](127\.0\.0\.1|localhost)(\s|$)`).MatchString(test) {
			t.Errorf("%s: health check %q probes the Unix socket; add -h 127.0.0.1 to check over TCP", name, test)
		}
	}
	if checked == 0 {
		t.Error("no service checks PostgreSQL with pg_isready")
	}
	migrate := strings.Join(p.Services["migrate"].Command, " ")
	if m := regexp.MustCompile(`--wait[ =](\S+)`).FindStringSubmatch(migrate); m == nil || m[1] == "0" || m[1] == "0s" {
		t.Errorf("migrate runs %q: give it --wait so that it retries while the database starts", migrate)
	}
}

// TestComposeOneShotJobsAreAdoptedOrRunOnDemand: `up --wait` treats a job
// that exits as a failure ("exited (0)") unless a service it starts waits
// for the job with service_completed_successfully; a job nobody adopts must
// be in a profile and run with `docker compose run`. And a service meant
// for `run` must depend on no job: `run` starts every dependency that is
// not running, and a job never is.
func TestComposeOneShotJobsAreAdoptedOrRunOnDemand(t *testing.T) {
	t.Parallel()
	p := loadCompose(t)
	adopted := map[string]bool{}
	for _, s := range p.Services {
		if len(s.Profiles) > 0 || oneShot(s) {
			continue
		}
		for dep, d := range s.DependsOn {
			if d.Condition == types.ServiceConditionCompletedSuccessfully {
				adopted[dep] = true
			}
		}
	}
	for name, s := range p.Services {
		if oneShot(s) && len(s.Profiles) == 0 && !adopted[name] {
			t.Errorf("one-shot %s starts with `up` but no long-running service waits for it to complete: `up --wait` fails when it exits", name)
		}
		if len(s.Profiles) == 0 {
			continue
		}
		for dep := range s.DependsOn {
			if oneShot(p.Services[dep]) {
				t.Errorf("%s (run on demand) depends on the one-shot %s, which every `docker compose run` would run again", name, dep)
			}
		}
	}
}

// TestDockerComposeRunAlwaysHasNoDeps checks every `docker compose run`
// the repository tells users or scripts to type.
func TestDockerComposeRunAlwaysHasNoDeps(t *testing.T) {
	t.Parallel()
	files := []string{"Makefile", "README.md", "docker-compose.yml", "deploy/docker-stack.sh"}
	seen := 0
	for _, f := range files {
		for i, line := range strings.Split(repoFile(t, f), "\n") {
			if !strings.Contains(line, "docker compose run") {
				continue
			}
			seen++
			if !strings.Contains(line, "--no-deps") || !strings.Contains(line, "--rm") {
				t.Errorf("%s:%d: %q: use `docker compose run --rm --no-deps`", f, i+1, strings.TrimSpace(line))
			}
		}
	}
	if seen == 0 {
		t.Error("found no `docker compose run` at all")
	}
}

// dockerfiles returns the Dockerfiles the compose file builds.
func dockerfiles(t *testing.T, p *types.Project) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, s := range p.Services {
		if s.Build == nil {
			continue
		}
		df := s.Build.Dockerfile
		if df == "" {
			df = "Dockerfile"
		}
		if !filepath.IsAbs(df) {
			df = filepath.Join(s.Build.Context, df)
		}
		b, err := os.ReadFile(df)
		if err != nil {
			t.Fatal(err)
		}
		out[df] = string(b)
	}
	if len(out) == 0 {
		t.Fatal("the compose file builds no image")
	}
	return out
}

// TestDockerfilesLeaveBuildKitPlatformArgsAlone: BuildKit sets TARGETARCH
// and its kin for each --platform; a default in the ARG line wins over it
// and builds the wrong architecture's binaries into an arm64 image.
func TestDockerfilesLeaveBuildKitPlatformArgsAlone(t *testing.T) {
	t.Parallel()
	re := regexp.MustCompile(`(?m)^\s*ARG\s+((TARGET|BUILD)(PLATFORM|OS|ARCH|VARIANT))=`)
	for path, text := range dockerfiles(t, loadCompose(t)) {
		for _, m := range re.FindAllStringSubmatch(text, -1) {
			t.Errorf("%s: ARG %s has a default, which overrides BuildKit's per-platform value", path, m[1])
		}
	}
}

// multiArch lists the outside images this stack uses, each published for
// (at least) linux/amd64 and linux/arm64, as their projects' release
// workflows show. An image used without being listed here fails the test:
// check its platforms first. notMultiArch names images known not to be.
var (
	multiArch = map[string]bool{
		"hashicorp/consul":                  true,
		"graphiteapp/graphite-statsd":       true, // release workflow: arm/v7, arm64/v8, s390x, amd64
		"apache/kafka":                      true,
		"postgres":                          true, // Docker Official Image
		"golang":                            true, // Docker Official Image
		"debian":                            true, // Docker Official Image
		"gcr.io/distroless/static-debian12": true,
	}
	notMultiArch = map[string]string{
		"postgis/postgis": "published for linux/amd64 only; build deploy/postgis instead",
	}
)

func TestComposeImagesAreMultiArch(t *testing.T) {
	t.Parallel()
	p := loadCompose(t)
	repo := func(image string) string {
		image, _, _ = strings.Cut(image, "@")
		if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
			image = image[:i]
		}
		return strings.TrimPrefix(image, "docker.io/")
	}
	check := func(where, image string) {
		r := repo(image)
		if why, bad := notMultiArch[r]; bad {
			t.Errorf("%s uses %s: %s", where, image, why)
		} else if !multiArch[r] {
			t.Errorf("%s uses %s, which is not in the list of images checked to be multi-arch", where, image)
		}
	}
	for image, where := range outsideImages(t, p) {
		check(where, image)
	}
}

// outsideImages returns every image the stack takes from outside (a
// registry), with where it is used: the services' images that are not
// built here, and the Dockerfiles' FROM lines with their ARG defaults
// expanded, leaving out references to the Dockerfiles' own stages.
func outsideImages(t *testing.T, p *types.Project) map[string]string {
	t.Helper()
	out := map[string]string{}
	built := map[string]bool{}
	for _, s := range p.Services {
		if s.Build != nil {
			built[s.Image] = true
		}
	}
	for name, s := range p.Services {
		if !built[s.Image] {
			out[s.Image] = name
		}
	}
	from := regexp.MustCompile(`(?m)^FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?`)
	for path, text := range dockerfiles(t, p) {
		args := map[string]string{}
		for _, m := range regexp.MustCompile(`(?m)^ARG\s+(\w+)=(\S+)`).FindAllStringSubmatch(text, -1) {
			args[m[1]] = m[2]
		}
		stages := map[string]bool{}
		for _, m := range from.FindAllStringSubmatch(text, -1) {
			stages[m[2]] = m[2] != ""
		}
		for _, m := range from.FindAllStringSubmatch(text, -1) {
			image := os.Expand(m[1], func(k string) string { return args[k] })
			if !stages[image] && image != "scratch" {
				out[image] = path
			}
		}
	}
	return out
}

// envconsulDuration reads a duration setting of deploy/envconsul.hcl.
func envconsulDuration(t *testing.T, key string) time.Duration {
	t.Helper()
	m := regexp.MustCompile(`(?m)^\s*` + key + `\s*=\s*"([^"]+)"`).FindStringSubmatch(repoFile(t, "deploy/envconsul.hcl"))
	if m == nil {
		t.Fatalf("deploy/envconsul.hcl sets no %s", key)
	}
	d, err := time.ParseDuration(m[1])
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// readmeDefault returns the documented default of a server variable.
func readmeDefault(t *testing.T, name string) time.Duration {
	t.Helper()
	m := regexp.MustCompile("(?m)^\\| `" + name + "` \\| `[a-z0-9_]+` \\| `([^`]+)` \\|").FindStringSubmatch(repoFile(t, "README.md"))
	if m == nil {
		t.Fatalf("README.md documents no default for %s", name)
	}
	d, err := time.ParseDuration(m[1])
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestStopGracePeriodCoversSplayAndDrain: on SIGTERM envconsul waits its
// splay, passes SIGTERM on and gives the server kill_timeout, which must
// cover the server's drain and final log flush. Docker must wait for all
// of it before SIGKILL, or the instance stays registered in Consul.
func TestStopGracePeriodCoversSplayAndDrain(t *testing.T) {
	t.Parallel()
	splay, kill := envconsulDuration(t, "splay"), envconsulDuration(t, "kill_timeout")
	p := loadCompose(t)
	servers := 0
	for name, s := range p.Services {
		if !slices.ContainsFunc(s.Entrypoint, func(a string) bool { return strings.HasSuffix(a, "/envconsul") }) {
			continue
		}
		servers++
		drain := readmeDefault(t, "SHUTDOWN_TIMEOUT") + readmeDefault(t, "LOG_FLUSH_TIMEOUT")
		for _, k := range []string{"SHUTDOWN_TIMEOUT", "LOG_FLUSH_TIMEOUT"} {
			if set, ok := s.Environment[k]; ok && set != nil {
				t.Errorf("%s sets %s; this test reads the default from the README: update it", name, k)
			}
		}
		if kill < drain {
			t.Errorf("envconsul kill_timeout %s is shorter than the server's drain and flush %s", kill, drain)
		}
		var grace time.Duration
		if s.StopGracePeriod != nil {
			grace = time.Duration(*s.StopGracePeriod)
		}
		if grace < splay+kill {
			t.Errorf("%s: stop_grace_period %s, want at least splay %s + kill_timeout %s", name, grace, splay, kill)
		}
	}
	if servers == 0 {
		t.Error("no service runs under envconsul")
	}
}

// TestComposeConsulLoadsItsConfigOnce: the image's entrypoint adds
// -config-dir=/consul/config to `agent`; naming a file in it again loads it
// twice. The node name must not follow the container's hostname.
func TestComposeConsulLoadsItsConfigOnce(t *testing.T) {
	t.Parallel()
	s := loadCompose(t).Services["consul"]
	mounted := slices.ContainsFunc(s.Volumes, func(v types.ServiceVolumeConfig) bool {
		return strings.HasPrefix(v.Target, "/consul/config")
	})
	if !mounted {
		t.Error("consul: server.hcl is not mounted into /consul/config")
	}
	for _, a := range s.Command {
		if strings.Contains(a, "/consul/config") {
			t.Errorf("consul: command %v names /consul/config, which the image's entrypoint loads already", s.Command)
		}
	}
	if !regexp.MustCompile(`(?m)^node_name\s*=`).MatchString(repoFile(t, "deploy/consul/server.hcl")) {
		t.Error("deploy/consul/server.hcl sets no node_name: the node would change name with each container")
	}
}

// TestImageIsStampedWithItsVersion: the build context has no .git, so the
// Go tool cannot stamp the revision; the Dockerfile links VERSION into
// main.stampedVersion, which must exist, and labels the image with it.
func TestImageIsStampedWithItsVersion(t *testing.T) {
	t.Parallel()
	p := loadCompose(t)
	server := p.Services["search-server-1"]
	if server.Build == nil || server.Build.Args["VERSION"] == nil {
		t.Fatal("search-server-1's build passes no VERSION")
	}
	df := repoFile(t, "deploy/Dockerfile")
	for _, want := range []string{"-X main.stampedVersion=${VERSION}", `org.opencontainers.image.version="${VERSION}"`} {
		if !strings.Contains(df, want) {
			t.Errorf("deploy/Dockerfile lacks %s", want)
		}
	}
	fset := token.NewFileSet()
	files, err := filepath.Glob("../cmd/search-server/*.go")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		if obj := f.Scope.Lookup("stampedVersion"); obj != nil && obj.Kind == ast.Var {
			found = true
		}
	}
	if !found {
		t.Error("cmd/search-server has no package-level var stampedVersion for -X to set")
	}
}

// TestDockerContextLeavesOutWhatGitIgnores: what .gitignore names (build
// output, installed packages such as node_modules) is not needed by the
// image build and must not be sent to the engine with every build.
func TestDockerContextLeavesOutWhatGitIgnores(t *testing.T) {
	t.Parallel()
	ignored := map[string]bool{}
	for _, l := range strings.Split(repoFile(t, ".dockerignore"), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			ignored[strings.Trim(l, "/")] = true
		}
	}
	covered := func(p string) bool {
		p = strings.Trim(p, "/")
		for q := p; q != "." && q != ""; q = filepath.Dir(q) {
			if ignored[q] || ignored["**/"+filepath.Base(q)] {
				return true
			}
		}
		return false
	}
	for _, l := range strings.Split(repoFile(t, ".gitignore"), "\n") {
		if l = strings.TrimSpace(l); l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, "!") {
			continue
		}
		if !covered(l) {
			t.Errorf(".gitignore names %s, which .dockerignore lets into the build context", l)
		}
	}
}

// TestMakeUpWithDockerBuildsNothing: the Docker path of `make up` must need
// only Docker and Compose: no Go toolchain, no Consul build.
func TestMakeUpWithDockerBuildsNothing(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("make", "-C", "..", "-n", "-B", "--no-print-directory", "up-docker").CombinedOutput()
	if err != nil {
		t.Fatalf("make -n up-docker: %v\n%s", err, out)
	}
	script := repoFile(t, "deploy/docker-stack.sh")
	tool := regexp.MustCompile(`(?m)(^\s*|[;&|(]\s*)(go|make|bin/\S+|\$BIN/\S+)\s`)
	for _, text := range []string{string(out), script} {
		for _, line := range strings.Split(text, "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "#") || strings.HasPrefix(strings.TrimSpace(line), "echo") {
				continue
			}
			if m := tool.FindStringSubmatch(line); m != nil {
				t.Errorf("the Docker path runs %q: %q", m[2], strings.TrimSpace(line))
			}
		}
	}
}

// composePlugin returns a DOCKER_CONFIG directory whose cli-plugins holds
// the pinned Compose v2 (bin/docker-compose, built by make compose), so
// that the docker client here runs `docker compose`; no engine is needed
// for config and version.
func composePlugin(t *testing.T) string {
	t.Helper()
	bin, err := filepath.Abs("../bin/docker-compose")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("Compose v2 is not built: run make compose (%v)", err)
	}
	if _, err := exec.LookPath("docker"); err != nil {
		t.Fatalf("the docker client is needed to run Compose as its plugin: %v", err)
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "cli-plugins"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(bin, filepath.Join(dir, "cli-plugins", "docker-compose")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestComposeV2AcceptsTheFile validates the file with Compose itself, as
// `make up` will run it, with every profile.
func TestComposeV2AcceptsTheFile(t *testing.T) {
	t.Parallel()
	cmd := exec.Command("docker", "compose", "--profile", "*", "config", "--quiet")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+composePlugin(t))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("docker compose config: %v\n%s", err, out)
	}
}

// TestMakeUpRequiresComposeV2 runs make up's Compose check: it passes with
// Compose v2 and, without it, fails with a message that says what is
// needed (Compose v1 cannot read the file).
func TestMakeUpRequiresComposeV2(t *testing.T) {
	t.Parallel()
	check := func(env ...string) (string, error) {
		cmd := exec.Command("deploy/docker-stack.sh", "check")
		cmd.Dir = ".."
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := check("DOCKER_CONFIG=" + composePlugin(t)); err != nil {
		t.Errorf("with Compose v2: %v\n%s", err, out)
	}
	// No docker command at all: only the tools the script itself needs.
	path := t.TempDir()
	for _, tool := range []string{"bash", "dirname", "cat"} {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(p, filepath.Join(path, tool)); err != nil {
			t.Fatal(err)
		}
	}
	out, err := check("PATH=" + path)
	if err == nil || !strings.Contains(out, "Compose v2") || !strings.Contains(out, "make up-native") {
		t.Errorf("without Compose: %v, %q; want a failure saying Compose v2 is needed and the way without Docker", err, out)
	}
}

// TestConsulSeedKeepsChangedSettings runs the consul-config job's command
// (as Compose hands it to sh) twice against a real Consul agent, with a
// setting changed in between: `up` runs the job on every start, and
// overwriting would undo the change and restart the servers.
func TestConsulSeedKeepsChangedSettings(t *testing.T) {
	t.Parallel()
	bin, err := consultest.Binary()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	agent, err := consultest.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Close()
	path := t.TempDir()
	if err := os.Symlink(bin, filepath.Join(path, "consul")); err != nil {
		t.Fatal(err)
	}
	job := loadCompose(t).Services["consul-config"]
	if len(job.Entrypoint) != 2 || job.Entrypoint[0] != "sh" || len(job.Command) != 1 {
		t.Fatalf("consul-config: entrypoint %v, command %v; this test runs `sh -c COMMAND`", job.Entrypoint, job.Command)
	}
	seed := func() {
		t.Helper()
		cmd := exec.CommandContext(ctx, "sh", "-c", job.Command[0])
		cmd.Env = append(os.Environ(), "PATH="+path+string(os.PathListSeparator)+os.Getenv("PATH"),
			"CONSUL_HTTP_ADDR="+agent.HTTPAddr())
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("consul-config: %v\n%s", err, out)
		}
	}
	kv := agent.Client().KV()
	seed()
	keys, _, err := kv.Keys("search-service/config/", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) < 3 {
		t.Fatalf("the first run wrote %v, want every seeded key", keys)
	}
	if _, err := kv.Put(&api.KVPair{Key: "search-service/config/log_level", Value: []byte("debug")}, nil); err != nil {
		t.Fatal(err)
	}
	seed()
	pair, _, err := kv.Get("search-service/config/log_level", nil)
	if err != nil || pair == nil {
		t.Fatalf("get log_level: %v", err)
	}
	if string(pair.Value) != "debug" {
		t.Errorf("after a second run log_level is %q, want the changed %q", pair.Value, "debug")
	}
}

// TestComposeServersServeHTTPAndRegisterIt: every server runs the HTTP API
// (which registers in Consul as search-service-http with an HTTP check on
// /readyz) on a port other than Graphite's web UI; search-server-1 publishes
// it on the port docker-stack.sh prints for the map and the landing page,
// and docker-stack.sh waits for both instances to pass their check.
func TestComposeServersServeHTTPAndRegisterIt(t *testing.T) {
	t.Parallel()
	p := loadCompose(t)
	script, err := os.ReadFile("docker-stack.sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"search-server-1", "search-server-2"} {
		s := p.Services[name]
		addr := s.Environment["HTTP_LISTEN_ADDR"]
		if addr == nil || !strings.HasPrefix(*addr, ":") || *addr == ":8080" {
			t.Errorf("%s: HTTP_LISTEN_ADDR %v, want a port of its own (8080 is Graphite's)", name, addr)
			continue
		}
		if s.Environment["HTTP_SERVICE_NAME"] != nil || s.Environment["CONSUL_REGISTER"] != nil {
			t.Errorf("%s: sets HTTP_SERVICE_NAME or CONSUL_REGISTER; the stacks register the defaults (search-service-http)", name)
		}
		if name != "search-server-1" {
			continue
		}
		port := strings.TrimPrefix(*addr, ":")
		target, err := strconv.ParseUint(port, 10, 32)
		if err != nil {
			t.Fatalf("%s: HTTP_LISTEN_ADDR %s: %v", name, *addr, err)
		}
		published := false
		for _, pc := range s.Ports {
			published = published || pc.Published == port && pc.Target == uint32(target)
		}
		if !published {
			t.Errorf("%s does not publish its HTTP port %s: %+v", name, port, s.Ports)
		}
		for _, want := range []string{"http://localhost:" + port + "/map", "http://localhost:" + port + "/ ", "wait_http_passing 2"} {
			if !strings.Contains(string(script), want) {
				t.Errorf("docker-stack.sh lacks %q", want)
			}
		}
	}
}

// TestDockerfilesNeedNoFrontendImage: a `# syntax=` line makes BuildKit pull
// that Dockerfile frontend from a registry before it builds anything, so
// the build fails where no registry answers (found by make test-docker);
// BuildKit's built-in frontend reads these files.
func TestDockerfilesNeedNoFrontendImage(t *testing.T) {
	t.Parallel()
	syntax := regexp.MustCompile(`(?im)^#\s*syntax\s*=`)
	for path, text := range dockerfiles(t, loadCompose(t)) {
		if syntax.MatchString(text) {
			t.Errorf("%s has a # syntax= line: BuildKit pulls that frontend from a registry", path)
		}
	}
}

// TestEveryOutsideImageHasAStandIn: make standins builds a stand-in for
// every image the stack takes from a registry, and deploy/standins/README.md
// says what each honours; an image added without one would stop make
// test-docker with a pull error.
func TestEveryOutsideImageHasAStandIn(t *testing.T) {
	t.Parallel()
	table := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([^`:]+)[:`]").FindAllStringSubmatch(repoFile(t, "deploy/standins/README.md"), -1) {
		table[m[1]] = true
	}
	for image, where := range outsideImages(t, loadCompose(t)) {
		repo, _, _ := strings.Cut(image, "@")
		if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
			repo = repo[:i]
		}
		if !table[repo] {
			t.Errorf("%s uses %s, which has no row in deploy/standins/README.md (and so no stand-in)", where, image)
		}
	}
}

// TestEnvconsulCanComeFromAnImage: HashiCorp's release server is not
// reachable everywhere; the image takes envconsul from the image
// ENVCONSUL_FROM names, by default the stage that downloads the release.
func TestEnvconsulCanComeFromAnImage(t *testing.T) {
	t.Parallel()
	df := repoFile(t, "deploy/Dockerfile")
	for _, want := range []string{
		"\nARG ENVCONSUL_FROM=envconsul-release\n",
		" AS envconsul-release\n",
		"\nFROM ${ENVCONSUL_FROM} AS envconsul\n",
		"COPY --from=envconsul /out/envconsul ",
	} {
		if !strings.Contains(df, want) {
			t.Errorf("deploy/Dockerfile lacks %q", strings.TrimSpace(want))
		}
	}
	for name, s := range loadCompose(t).Services {
		if s.Build == nil || s.Build.Dockerfile != "deploy/Dockerfile" {
			continue
		}
		if v := s.Build.Args["ENVCONSUL_FROM"]; v == nil || *v != "envconsul-release" {
			t.Errorf("%s: build arg ENVCONSUL_FROM = %v, want ${GEO_SEARCH_ENVCONSUL_FROM:-envconsul-release}", name, v)
		}
	}
}

// TestComposeServersTakeTheSampleImport: the servers listen on every
// interface of the stack's network (LISTEN_ADDR's default, :50051) with no
// token, where a server refuses writes unless ALLOW_OPEN_WRITES says
// otherwise; the stack's import job writes, so the file must say so.
func TestComposeServersTakeTheSampleImport(t *testing.T) {
	t.Parallel()
	p := loadCompose(t)
	for _, name := range []string{"search-server-1", "search-server-2"} {
		env := p.Services[name].Environment
		if env["WRITE_TOKENS"] != nil {
			continue
		}
		if v := env["ALLOW_OPEN_WRITES"]; v == nil || *v != "true" {
			t.Errorf("%s: no WRITE_TOKENS and ALLOW_OPEN_WRITES %v; want true, or the sample import is refused", name, v)
		}
	}
}
