package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/consul"
	"github.com/geosearch/search/internal/consul/envconsultest"
	"github.com/geosearch/search/internal/server/servertest"
)

// shippedEnvconsul reads exec's splay, kill_signal and kill_timeout from
// deploy/envconsul.hcl, so the test runs what ships.
func shippedEnvconsul(t *testing.T) envconsultest.Options {
	t.Helper()
	b, err := os.ReadFile("../../deploy/envconsul.hcl")
	if err != nil {
		t.Fatal(err)
	}
	_, exec, ok := strings.Cut(string(b), "\nexec {")
	if !ok {
		t.Fatal("deploy/envconsul.hcl has no exec block")
	}
	get := func(name string) string {
		m := regexp.MustCompile(`(?m)^\s*` + name + `\s*=\s*"([^"]+)"`).FindStringSubmatch(exec)
		if m == nil {
			t.Fatalf("deploy/envconsul.hcl's exec block has no %s", name)
		}
		return m[1]
	}
	var opts envconsultest.Options
	for name, d := range map[string]*time.Duration{"splay": &opts.Splay, "kill_timeout": &opts.KillTimeout} {
		if *d, err = time.ParseDuration(get(name)); err != nil {
			t.Fatal(err)
		}
	}
	signals := map[string]syscall.Signal{"SIGTERM": syscall.SIGTERM, "SIGINT": syscall.SIGINT}
	sig, ok := signals[get("kill_signal")]
	if !ok {
		t.Fatalf("unexpected kill_signal %q", get("kill_signal"))
	}
	opts.KillSignal = sig
	return opts
}

// fleet is search-server instances, each under its own envconsul
// supervisor, registered in the test agent as service and configured from
// the KV prefix.
type fleet struct {
	service, prefix string
	sups            []*envconsultest.Supervisor
	logs            []*servertest.SyncBuffer
}

func startFleet(t *testing.T, service string, n int, opts envconsultest.Options) *fleet {
	t.Helper()
	f := &fleet{service: service, prefix: service + "/config"}
	if _, err := servertest.Agent.Client().KV().DeleteTree(f.prefix, nil); err != nil { // left by an earlier -count
		t.Fatal(err)
	}
	env := os.Environ()
	vars := servertest.ConsulEnv(service, servertest.Cluster.NewDatabase(t))
	vars["LISTEN_ADDR"] = "127.0.0.1:0"
	vars["HEALTH_CHECK_INTERVAL"] = "100ms"
	vars["SHUTDOWN_TIMEOUT"] = "5s"
	// A shared, loaded test machine can take longer than the default 10s to
	// start a replacement; the shipped kill_timeout (40s) still covers
	// 25s + SHUTDOWN_TIMEOUT + LOG_FLUSH_TIMEOUT.
	vars["CONSUL_HANDOVER_TIMEOUT"] = "25s"
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	for range n {
		o := opts
		o.Prefix, o.Command, o.Env = f.prefix, servertest.ServerBin, env
		logs := &servertest.SyncBuffer{}
		o.Output = logs
		s, err := envconsultest.Start(servertest.Agent.Client(), o)
		if err != nil {
			t.Fatal(err)
		}
		f.sups, f.logs = append(f.sups, s), append(f.logs, logs)
	}
	t.Cleanup(func() {
		for i, s := range f.sups {
			s.Stop()
			if t.Failed() {
				t.Logf("instance %d log:\n%s", i, f.logs[i].String())
			}
		}
	})
	return f
}

// instances returns the passing instances in Consul.
func (f *fleet) instances(t *testing.T) []consul.Endpoint {
	t.Helper()
	eps, err := consul.ListEndpoints(context.Background(), servertest.Agent.Client(), f.service)
	if err != nil {
		t.Fatal(err)
	}
	var out []consul.Endpoint
	for _, ep := range eps {
		if ep.Health == "passing" {
			out = append(out, ep)
		}
	}
	return out
}

// settled says whether every supervisor runs its child number gen (1: the
// first) with key=value, none exited, and Consul lists as many passing
// instances, none of them one seen before (in old, which it extends).
func (f *fleet) settled(t *testing.T, gen int, key, value string, old map[string]bool) bool {
	t.Helper()
	for i, s := range f.sups {
		if code, exited := s.Exited(); exited {
			t.Fatalf("instance %d exited with status %d under its supervisor: envconsul would exit too\n%s", i, code, f.logs[i].String())
		}
		if s.Starts() != gen || (key != "" && s.Env()[strings.ToUpper(key)] != value) {
			return false
		}
	}
	eps := f.instances(t)
	if len(eps) != len(f.sups) {
		return false
	}
	for _, ep := range eps {
		if old[ep.Instance] {
			return false
		}
	}
	for _, ep := range eps {
		old[ep.Instance] = true
	}
	return true
}

// eachInstance calls fn with a client of every passing instance, by address.
func (f *fleet) eachInstance(t *testing.T, fn func(ep consul.Endpoint, c searchv1.SearchServiceClient)) {
	t.Helper()
	for _, ep := range f.instances(t) {
		conn, err := grpc.NewClient(ep.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		fn(ep, searchv1.NewSearchServiceClient(conn))
		conn.Close()
	}
}

// startCLILoop runs one-shot `search-client search` invocations through
// Consul DNS, one after another, until stopped.
func startCLILoop(service string) *servertest.CallLoop {
	return servertest.StartLoop(0, func() error {
		cmd := exec.Command(servertest.ClientBin, "--consul-dns", servertest.Agent.DNSAddr(), "--consul-http", servertest.Agent.HTTPAddr(), "--service", service,
			"search", "--lat", "48.85", "--lng", "2.35")
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Run(); err != nil || !strings.Contains(out.String(), "France") {
			return fmt.Errorf("%v: %s", err, errOut.String())
		}
		return nil
	})
}

// TestEnvconsulRestartsLoseNoCalls runs two servers the way envconsul does
// (consul-template's child supervisor, fed from the agent's KV): on each KV
// change every supervisor restarts its server at about the same moment,
// with the shipped deploy/envconsul.hcl (splay, SIGTERM, kill timeout) and
// with a plain `envconsul -prefix P -upcase` (no splay, envconsul's default
// SIGINT). A long-lived Go client and a loop of one-shot search-client
// runs, both through Consul DNS, must not see one failed call, and every
// instance must end up on the new value. The KV changes also cover the
// rule for invalid values: max_page_size=5 conflicts with the default
// page size (which follows it down), and an invalid default_page_size is
// rejected; neither takes an instance down, and Monitor shows the
// rejection.
func TestEnvconsulRestartsLoseNoCalls(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		opts envconsultest.Options
	}{
		{"shipped envconsul.hcl", shippedEnvconsul(t)},
		{"plain prefix upcase", envconsultest.Options{KillSignal: syscall.SIGINT}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			service := "search-envconsul-" + strings.ReplaceAll(tc.name, " ", "-")
			service = strings.ReplaceAll(service, ".", "-")
			f := startFleet(t, service, 2, tc.opts)
			seen := map[string]bool{}
			servertest.Eventually(t, 60*time.Second, "two instances passing", func() bool { return f.settled(t, 1, "", "", seen) })
			ts := &servertest.Server{Addr: f.instances(t)[0].Addr()}
			if out, errOut, code := ts.RunClient(t, "import", "../../testdata/ne_110m_countries.geojson"); code != 0 {
				t.Fatalf("import: %s%s", out, errOut)
			}

			goLoop := servertest.StartSearchLoop(servertest.DiscoveryClient(t, service))
			cli := startCLILoop(service)
			kv := servertest.Agent.Client().KV()
			pageOf := func(c searchv1.SearchServiceClient, size int32) int {
				resp, err := c.Search(context.Background(), &searchv1.SearchRequest{Query: "a", PageSize: size})
				if err != nil {
					t.Fatal(err)
				}
				return len(resp.GetThings())
			}
			for i, change := range []struct {
				key, value string
				check      func(ep consul.Endpoint, c searchv1.SearchServiceClient)
			}{
				{"max_page_size", "100", func(ep consul.Endpoint, c searchv1.SearchServiceClient) {
					if got := pageOf(c, 1000); got != 100 {
						t.Errorf("%s: page of %d, want the new maximum, 100", ep.Instance, got)
					}
				}},
				// Valid alone; the default page size (50) follows it down.
				{"max_page_size", "5", func(ep consul.Endpoint, c searchv1.SearchServiceClient) {
					if got, def := pageOf(c, 1000), pageOf(c, 0); got != 5 || def != 5 {
						t.Errorf("%s: page of %d, default page of %d; want 5 and 5", ep.Instance, got, def)
					}
				}},
				// Invalid: rejected, at its default (which follows the
				// maximum of 5), and shown in Monitor.
				{"default_page_size", "many", func(ep consul.Endpoint, c searchv1.SearchServiceClient) {
					if got, def := pageOf(c, 1000), pageOf(c, 0); got != 5 || def != 5 {
						t.Errorf("%s: page of %d, default page of %d; want 5 and 5", ep.Instance, got, def)
					}
					resp, err := c.Monitor(context.Background(), &searchv1.MonitorRequest{})
					if err != nil {
						t.Fatal(err)
					}
					rs := resp.GetRejectedSettings()
					if len(rs) != 1 || rs[0].GetVariable() != "DEFAULT_PAGE_SIZE" || rs[0].GetValue() != "many" || !strings.Contains(rs[0].GetReason(), "not an integer") {
						t.Errorf("%s: Monitor's rejected settings %v, want DEFAULT_PAGE_SIZE=many, not an integer", ep.Instance, rs)
					}
				}},
			} {
				servertest.PutKV(t, kv, f.prefix+"/"+change.key, change.value)
				within := 60*time.Second + tc.opts.Splay
				servertest.Eventually(t, within, fmt.Sprintf("every instance restarted with %s=%s and passing", change.key, change.value), func() bool {
					return f.settled(t, i+2, change.key, change.value, seen)
				})
				f.eachInstance(t, change.check)
			}
			ok, failed, firstErr := goLoop.Stop()
			cliOK, cliFailed, cliFirstErr := cli.Stop()
			t.Logf("across 3 KV changes (%d restarts): Go client %d ok, %d failed; search-client runs %d ok, %d failed",
				3*len(f.sups), ok, failed, cliOK, cliFailed)
			if failed != 0 || ok == 0 {
				t.Errorf("Go client: %d failed calls (first: %v), %d ok; want none failed", failed, firstErr, ok)
			}
			if cliFailed != 0 || cliOK == 0 {
				t.Errorf("search-client: %d failed runs (first: %v), %d ok; want none failed", cliFailed, cliFirstErr, cliOK)
			}
			rejection := regexp.MustCompile(`"level":"ERROR","msg":"configuration value rejected; the setting starts at its default".*"variable":"DEFAULT_PAGE_SIZE"`)
			for i := range f.sups {
				if !rejection.MatchString(f.logs[i].String()) {
					t.Errorf("instance %d did not log the rejection at ERROR", i)
				}
			}
		})
	}
}
