package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/sethvargo/go-envconfig"
	"google.golang.org/protobuf/testing/protocmp"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/config"
	"github.com/geosearch/search/internal/server"
	"github.com/geosearch/search/internal/server/servertest"
	"github.com/geosearch/search/internal/statsd/statsdtest"
)

// pageOf returns how many things a search for "a" asking for 1000 gets: the
// effective MAX_PAGE_SIZE while there are more matches than that.
func pageOf(t *testing.T, ts *servertest.Server) int {
	t.Helper()
	resp, err := ts.Client.Search(context.Background(), &searchv1.SearchRequest{Query: "a", PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return len(resp.GetThings())
}

// reloadServer starts a server watching prefix on the agent at httpAddr.
func reloadServer(t *testing.T, httpAddr, prefix string, env map[string]string) *servertest.Server {
	t.Helper()
	vars := map[string]string{"CONFIG_CONSUL_PREFIX": prefix, "CONSUL_HTTP_ADDR": httpAddr, "LOG_LEVEL": servertest.Unset,
		"DATABASE_URL": servertest.FixtureDB(t)} // 177 countries, 143 of them with an "a"
	for k, v := range env {
		vars[k] = v
	}
	ts := servertest.Start(t, vars, true)
	return ts
}

func TestLiveReloadFromConsulKV(t *testing.T) {
	t.Parallel()
	const prefix = "reload-test/config"
	kv := servertest.Agent.Client().KV()
	ts := reloadServer(t, servertest.Agent.HTTPAddr(), prefix, nil)
	all := pageOf(t, ts)
	if all < 100 {
		t.Fatalf("a search for a gets %d things, want over 100 for this test to mean anything", all)
	}

	servertest.PutKV(t, kv, prefix+"/default_page_size", "2") // left servertest.Unset, the default would follow max=3 down to 3
	servertest.PutKV(t, kv, prefix+"/max_page_size", "3")
	servertest.Eventually(t, 2*time.Second, "max_page_size=3 applied within two seconds", func() bool { return pageOf(t, ts) == 3 })
	if servertest.Logged(ts, map[string]any{"variable": "MAX_PAGE_SIZE", "key": "max_page_size", "old": "1000", "new": "3"}) == 0 {
		t.Errorf("the change was not logged with its old and new value")
	}

	servertest.PutKV(t, kv, prefix+"/max_page_size", "lots")
	servertest.PutKV(t, kv, prefix+"/default_page_size", "5") // above the maximum of 3
	servertest.Eventually(t, 5*time.Second, "both rejections logged", func() bool {
		return servertest.Logged(ts, map[string]any{"key": "max_page_size", "variable": "MAX_PAGE_SIZE", "value": "lots",
			"reason": `configuration: MAX_PAGE_SIZE: "lots" is not an integer`}) > 0 &&
			servertest.Logged(ts, map[string]any{"key": "default_page_size", "variable": "DEFAULT_PAGE_SIZE", "value": "5",
				"reason": "configuration: MAX_PAGE_SIZE (3) must be at least DEFAULT_PAGE_SIZE (5)"}) > 0
	})
	if got := pageOf(t, ts); got != 3 {
		t.Errorf("after invalid values: page of %d, want the previous maximum, 3", got)
	}

	servertest.PutKV(t, kv, prefix+"/shutdown_timeout", "20s")
	servertest.Eventually(t, 5*time.Second, "a restart-only change logged as such", func() bool {
		return servertest.Logged(ts, map[string]any{"msg": "configuration changed; takes effect at the next restart",
			"variable": "SHUTDOWN_TIMEOUT", "key": "shutdown_timeout", "old": "15s", "new": "20s"}) > 0
	})

	servertest.PutKV(t, kv, prefix+"/log_level", "warn")
	servertest.Eventually(t, 5*time.Second, "the log level applied", func() bool {
		return servertest.Logged(ts, map[string]any{"variable": "LOG_LEVEL", "key": "log_level", "old": "info", "new": "warn"}) > 0
	})

	for _, key := range []string{"max_page_size", "default_page_size", "shutdown_timeout", "log_level"} {
		if _, err := kv.Delete(prefix+"/"+key, nil); err != nil {
			t.Fatal(err)
		}
	}
	servertest.Eventually(t, 5*time.Second, "back to the default once the key is deleted", func() bool { return pageOf(t, ts) == all })
}

func TestEnvironmentWinsOverConsulKV(t *testing.T) {
	t.Parallel()
	const prefix = "reload-env/config"
	kv := servertest.Agent.Client().KV()
	servertest.PutKV(t, kv, prefix+"/max_page_size", "3") // there at start already
	ts := reloadServer(t, servertest.Agent.HTTPAddr(), prefix, map[string]string{"MAX_PAGE_SIZE": "70"})
	if got := pageOf(t, ts); got != 70 {
		t.Errorf("page of %d, want 70 from the environment", got)
	}
	servertest.PutKV(t, kv, prefix+"/max_page_size", "4")
	servertest.PutKV(t, kv, prefix+"/default_page_size", "2") // not in the environment: applies
	servertest.Eventually(t, 5*time.Second, "default_page_size=2 applied", func() bool {
		resp, err := ts.Client.Search(context.Background(), &searchv1.SearchRequest{Query: "a"})
		return err == nil && len(resp.GetThings()) == 2
	})
	if got := pageOf(t, ts); got != 70 {
		t.Errorf("page of %d after a KV change, want 70 from the environment", got)
	}
	if servertest.Logged(ts, map[string]any{"msg": "configuration key in Consul KV ignored: the variable is set in the environment, which wins", "key": "max_page_size"}) == 0 {
		t.Error("the ignored KV key was not logged")
	}
}

// TestConfigSurvivesAConsulOutage stops the agent: the server keeps serving
// with its last configuration, then follows Consul once it is back. A dev
// agent forgets its KV when it restarts, so "back" means an empty KV (the
// defaults) and then a new key.
func TestConfigSurvivesAConsulOutage(t *testing.T) {
	t.Parallel()
	const prefix = "reload-outage/config"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	own := servertest.OwnAgent(t)
	ts := reloadServer(t, own.HTTPAddr(), prefix, nil)
	all := pageOf(t, ts)
	servertest.PutKV(t, own.Client().KV(), prefix+"/default_page_size", "2")
	servertest.PutKV(t, own.Client().KV(), prefix+"/max_page_size", "3")
	servertest.Eventually(t, 5*time.Second, "max_page_size=3 applied", func() bool { return pageOf(t, ts) == 3 })

	own.Stop()
	for range 20 {
		if got := pageOf(t, ts); got != 3 {
			t.Fatalf("during the outage: page of %d, want the last configuration's 3", got)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := own.Start(ctx); err != nil {
		t.Fatal(err)
	}
	servertest.Eventually(t, 30*time.Second, "the empty KV of the restarted agent followed", func() bool { return pageOf(t, ts) == all })
	servertest.PutKV(t, own.Client().KV(), prefix+"/default_page_size", "4")
	servertest.PutKV(t, own.Client().KV(), prefix+"/max_page_size", "4")
	servertest.Eventually(t, 5*time.Second, "a change after the outage applied", func() bool { return pageOf(t, ts) == 4 })
}

func TestBadEnvironmentAtStartNamesEveryVariable(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(servertest.ServerBin)
	cmd.Env = append(os.Environ(),
		"DATABASE_URL=", "DEFAULT_PAGE_SIZE=many", "DB_MAX_CONNS=-1", "CONSUL_CHECK_INTERVAL=soon",
		"STATSD_SAMPLE_RATE=2", "LOG_LEVEL=loud", "LOG_QUEUE_SIZE=0")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitConfig {
		t.Fatalf("exit %v, want status %d\n%s", err, exitConfig, out)
	}
	for _, name := range []string{"DATABASE_URL", "DEFAULT_PAGE_SIZE", "DB_MAX_CONNS", "CONSUL_CHECK_INTERVAL", "STATSD_SAMPLE_RATE", "LOG_LEVEL", "LOG_QUEUE_SIZE"} {
		if !strings.Contains(string(out), name) {
			t.Errorf("the message does not name %s:\n%s", name, out)
		}
	}
}

// TestVariablesFollowEnvconsulNaming checks what envconsul relies on:
// `envconsul -prefix P -upcase` turns key log_level into LOG_LEVEL, so every
// variable must be the upper-case form of its KV key and a valid name; and
// the README documents each with its key, default and liveness; and the
// envconsul configuration says upcase.
func TestVariablesFollowEnvconsulNaming(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	hcl, err := os.ReadFile("../../deploy/envconsul.hcl")
	if err != nil {
		t.Fatal(err)
	}
	valid := regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)
	for _, s := range config.Settings(server.Config{}) {
		if !valid.MatchString(s.Var) || s.Key != strings.ToLower(s.Var) || strings.ToUpper(s.Key) != s.Var {
			t.Errorf("%s (key %s) does not survive envconsul's upcase", s.Var, s.Key)
		}
		liveness := "restart"
		if s.Live {
			liveness = "live"
		}
		row := regexp.MustCompile("(?m)^\\| `" + s.Var + "` \\| `" + s.Key + "` \\| [^|]*\\| " + liveness + " \\|")
		if !row.Match(readme) {
			t.Errorf("README's configuration table has no row `%s` | `%s` | … | %s |", s.Var, s.Key, liveness)
		}
	}
	for _, want := range []string{`upcase\s*=\s*true`, `kill_signal\s*=\s*"SIGTERM"`, `kill_timeout\s*=\s*"40s"`, `path\s*=\s*"search-service/config"`} {
		if !regexp.MustCompile(`(?m)^\s*` + want).Match(hcl) {
			t.Errorf("deploy/envconsul.hcl lacks %s", want)
		}
	}
}

// TestARejectedValueIsLoudButNotFatal starts a server with an invalid
// tunable and a maximum page size below the default page size's default:
// it serves, with the invalid one at its default (which follows the
// maximum down), and the rejection is in the log at ERROR, in StatsD, in
// Monitor and in `search-server config`.
func TestARejectedValueIsLoudButNotFatal(t *testing.T) {
	t.Parallel()
	l := statsdtest.Listen(t)
	env := map[string]string{
		"DEFAULT_PAGE_SIZE":     "many",
		"MAX_PAGE_SIZE":         "5",
		"STATSD_ADDR":           l.Addr(),
		"STATSD_FLUSH_INTERVAL": "20ms",
		"STATSD_GAUGE_INTERVAL": "100ms",
	}
	ts := servertest.Start(t, env, true)
	servertest.ImportFixture(t, ts)
	resp, err := ts.Client.Search(context.Background(), &searchv1.SearchRequest{Query: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(resp.GetThings()); got != 5 {
		t.Errorf("default page of %d, want 5: DEFAULT_PAGE_SIZE at its default, capped by MAX_PAGE_SIZE", got)
	}
	mon, err := ts.Client.Monitor(context.Background(), &searchv1.MonitorRequest{})
	if err != nil {
		t.Fatal(err)
	}
	want := []*searchv1.RejectedSetting{{Variable: "DEFAULT_PAGE_SIZE", Key: "default_page_size", Value: "many", Reason: `DEFAULT_PAGE_SIZE: "many" is not an integer`}}
	if diff := cmp.Diff(want, mon.GetRejectedSettings(), protocmp.Transform()); diff != "" {
		t.Errorf("Monitor's rejected settings (-want +got)\n%s", diff)
	}
	if out, errOut, code := ts.RunClient(t, "monitor"); code != 0 || !strings.Contains(out, `rejected:  DEFAULT_PAGE_SIZE="many": DEFAULT_PAGE_SIZE: "many" is not an integer`) {
		t.Errorf("search-client monitor: exit %d\n%s%s", code, out, errOut)
	}
	if servertest.Logged(ts, map[string]any{"level": "ERROR", "msg": "configuration value rejected; the setting starts at its default",
		"variable": "DEFAULT_PAGE_SIZE", "key": "default_page_size", "value": "many"}) == 0 {
		t.Error("no ERROR log line names the rejected variable")
	}
	l.WaitSum(t, "search-service.config.rejected", "c", 1)
	l.WaitSeen(t, "search-service.config.rejected_settings", "g")
	if sum, n := l.Sum("search-service.config.rejected_settings", "g"); n == 0 || sum != float64(n) {
		t.Errorf("config.rejected_settings gauges sum to %v over %d reports, want 1 each", sum, n)
	}

	env["DATABASE_URL"] = ts.DBURL
	var out bytes.Buffer
	cmd := newRootCommand(envconfig.MapLookuper(env), &out)
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"config"})
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile(`(?m)^DEFAULT_PAGE_SIZE\s+default_page_size\s+"5"\s+default\s+live\s+"many": DEFAULT_PAGE_SIZE: "many" is not an integer$`)
	if !row.MatchString(out.String()) {
		t.Errorf("search-server config does not mark DEFAULT_PAGE_SIZE rejected:\n%s", out.String())
	}
}
