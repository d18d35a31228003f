package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	searchv1 "github.com/geosearch/search/proto/search/v1"
)

// pageOf returns how many things a search for "a" asking for 1000 gets: the
// effective MAX_PAGE_SIZE while there are more matches than that.
func pageOf(t *testing.T, ts *testServer) int {
	t.Helper()
	resp, err := ts.client.Search(context.Background(), &searchv1.SearchRequest{Query: "a", PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return len(resp.GetThings())
}

func putKV(t *testing.T, kv *api.KV, key, value string) {
	t.Helper()
	if _, err := kv.Put(&api.KVPair{Key: key, Value: []byte(value)}, nil); err != nil {
		t.Fatal(err)
	}
}

// reloadServer starts a server watching prefix on the agent at httpAddr.
func reloadServer(t *testing.T, httpAddr, prefix string, env map[string]string) *testServer {
	t.Helper()
	vars := map[string]string{"CONFIG_CONSUL_PREFIX": prefix, "CONSUL_HTTP_ADDR": httpAddr, "LOG_LEVEL": unset}
	for k, v := range env {
		vars[k] = v
	}
	ts := startServer(t, vars, true)
	importFixture(t, ts) // 177 countries, 143 of them with an "a"
	return ts
}

func TestLiveReloadFromConsulKV(t *testing.T) {
	t.Parallel()
	const prefix = "reload-test/config"
	kv := agent.Client().KV()
	ts := reloadServer(t, agent.HTTPAddr(), prefix, nil)
	all := pageOf(t, ts)
	if all < 100 {
		t.Fatalf("a search for a gets %d things, want over 100 for this test to mean anything", all)
	}

	putKV(t, kv, prefix+"/default_page_size", "2") // default <= max, or max=3 is invalid
	putKV(t, kv, prefix+"/max_page_size", "3")
	eventually(t, 2*time.Second, "max_page_size=3 applied within two seconds", func() bool { return pageOf(t, ts) == 3 })
	if !strings.Contains(ts.logs.String(), `"variable":"MAX_PAGE_SIZE","key":"max_page_size","old":"1000","new":"3"`) {
		t.Errorf("the change was not logged with its old and new value")
	}

	putKV(t, kv, prefix+"/max_page_size", "lots")
	putKV(t, kv, prefix+"/default_page_size", "5") // above the maximum of 3
	eventually(t, 5*time.Second, "both rejections logged", func() bool {
		logs := ts.logs.String()
		return strings.Contains(logs, `"key":"max_page_size","value":"lots","reason":"configuration: MAX_PAGE_SIZE: strconv.ParseInt: parsing \"lots\": invalid syntax`) &&
			strings.Contains(logs, `"key":"default_page_size","value":"5","reason":"configuration: MAX_PAGE_SIZE (3) must be at least DEFAULT_PAGE_SIZE (5)"`)
	})
	if got := pageOf(t, ts); got != 3 {
		t.Errorf("after invalid values: page of %d, want the previous maximum, 3", got)
	}

	putKV(t, kv, prefix+"/shutdown_timeout", "20s")
	eventually(t, 5*time.Second, "a restart-only change logged as such", func() bool {
		return strings.Contains(ts.logs.String(), `"variable":"SHUTDOWN_TIMEOUT","key":"shutdown_timeout","old":"15s","new":"20s"`) && strings.Contains(ts.logs.String(), "takes effect at the next restart")
	})

	putKV(t, kv, prefix+"/log_level", "warn")
	eventually(t, 5*time.Second, "the log level applied", func() bool {
		return strings.Contains(ts.logs.String(), `"variable":"LOG_LEVEL","key":"log_level","old":"info","new":"warn"`)
	})

	for _, key := range []string{"max_page_size", "default_page_size", "shutdown_timeout", "log_level"} {
		if _, err := kv.Delete(prefix+"/"+key, nil); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 5*time.Second, "back to the default once the key is deleted", func() bool { return pageOf(t, ts) == all })
}

func TestEnvironmentWinsOverConsulKV(t *testing.T) {
	t.Parallel()
	const prefix = "reload-env/config"
	kv := agent.Client().KV()
	putKV(t, kv, prefix+"/max_page_size", "3") // there at start already
	ts := reloadServer(t, agent.HTTPAddr(), prefix, map[string]string{"MAX_PAGE_SIZE": "70"})
	if got := pageOf(t, ts); got != 70 {
		t.Errorf("page of %d, want 70 from the environment", got)
	}
	putKV(t, kv, prefix+"/max_page_size", "4")
	putKV(t, kv, prefix+"/default_page_size", "2") // not in the environment: applies
	eventually(t, 5*time.Second, "default_page_size=2 applied", func() bool {
		resp, err := ts.client.Search(context.Background(), &searchv1.SearchRequest{Query: "a"})
		return err == nil && len(resp.GetThings()) == 2
	})
	if got := pageOf(t, ts); got != 70 {
		t.Errorf("page of %d after a KV change, want 70 from the environment", got)
	}
	if !strings.Contains(ts.logs.String(), "the variable is set in the environment, which wins") {
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
	own := ownAgent(t)
	ts := reloadServer(t, own.HTTPAddr(), prefix, nil)
	all := pageOf(t, ts)
	putKV(t, own.Client().KV(), prefix+"/default_page_size", "2")
	putKV(t, own.Client().KV(), prefix+"/max_page_size", "3")
	eventually(t, 5*time.Second, "max_page_size=3 applied", func() bool { return pageOf(t, ts) == 3 })

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
	eventually(t, 30*time.Second, "the empty KV of the restarted agent followed", func() bool { return pageOf(t, ts) == all })
	putKV(t, own.Client().KV(), prefix+"/default_page_size", "4")
	putKV(t, own.Client().KV(), prefix+"/max_page_size", "4")
	eventually(t, 5*time.Second, "a change after the outage applied", func() bool { return pageOf(t, ts) == 4 })
}

// TestRestartInTurnLosesNoCalls is what envconsul does when a key changes:
// SIGTERM each instance, wait for it to exit, start it again with the new
// environment. A client searching in a loop through Consul DNS (with the
// CLI's retry policy) must not see a single failed call.
func TestRestartInTurnLosesNoCalls(t *testing.T) {
	t.Parallel()
	const service = "search-restart-in-turn"
	db := cluster.NewDatabase(t)
	env := consulEnv(service, db)
	procs := []*proc{startProc(t, env), startProc(t, env)}
	eventually(t, 30*time.Second, "two instances in DNS", func() bool { return len(inDNS(t, service)) == 2 })
	ts := &testServer{addr: procs[0].addr}
	if out, errOut, code := ts.runClient(t, "import", "../../testdata/ne_110m_countries.geojson"); code != 0 {
		t.Fatalf("import: %s%s", out, errOut)
	}

	client := discoveryClient(t, service)
	loop := startSearchLoop(client)

	for i := range procs {
		procs[i].signal(t, syscall.SIGTERM)
		if err := procs[i].wait(t); err != nil {
			t.Fatalf("instance %d exit: %v", i, err)
		}
		restarted := map[string]string{"MAX_PAGE_SIZE": "500"} // the changed key
		for k, v := range env {
			restarted[k] = v
		}
		procs[i] = startProc(t, restarted)
		// Restart the next one only once this one takes traffic again, as
		// a rollout would: back in DNS, and reached by this client.
		id := procs[i].instanceID()
		eventually(t, 30*time.Second, "the restarted instance serving this client", func() bool {
			resp, err := client.Monitor(context.Background(), &searchv1.MonitorRequest{})
			return err == nil && resp.GetInstanceId() == id
		})
	}
	time.Sleep(time.Second)
	ok, failed, firstErr := loop.stop()
	t.Logf("searches while both instances restarted in turn: %d ok, %d failed", ok, failed)
	if failed != 0 || ok < 100 {
		t.Errorf("%d failed calls (first: %v), %d ok; want none failed", failed, firstErr, ok)
	}
}

func TestBadEnvironmentAtStartNamesEveryVariable(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(serverBin)
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
	for _, s := range settings(config{}) {
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
	for _, want := range []string{`upcase\s*=\s*true`, `kill_signal\s*=\s*"SIGTERM"`, `kill_timeout\s*=\s*"30s"`, `path\s*=\s*"search-service/config"`} {
		if !regexp.MustCompile(`(?m)^\s*` + want).Match(hcl) {
			t.Errorf("deploy/envconsul.hcl lacks %s", want)
		}
	}
}
