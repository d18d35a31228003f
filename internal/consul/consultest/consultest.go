// Package consultest runs a real Consul agent (`consul agent -dev`, the
// pinned build in bin/consul) on free loopback ports for tests, and can stop,
// start and restart it to inject faults. A dev agent keeps its state in
// memory, so a restarted agent has forgotten every registration.
package consultest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/consul/api"
)

// BuildHint is how to get the agent binary.
const BuildHint = "make consul (make test builds it: Consul v1.13.9 from the Go module proxy, ~3 minutes once)"

// Options change the agent's configuration.
type Options struct {
	// HCL is added to the agent's configuration (a -config-file).
	HCL string
	// ManagementToken, when set, turns ACLs on with a default policy of
	// deny; the token can do anything, and Client uses it.
	ManagementToken string
}

// Agent is a running dev agent.
type Agent struct {
	bin, dir string
	ports    map[string]int
	opts     Options

	client *api.Client // one client: its connections are reused (Consul limits them per IP)

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	log    *bytes.Buffer
}

// Binary returns the path of the agent binary: $CONSUL_BIN, else the
// repository's bin/consul.
func Binary() (string, error) {
	if p := os.Getenv("CONSUL_BIN"); p != "" {
		return p, nil
	}
	_, file, _, _ := runtime.Caller(0)
	p := filepath.Join(filepath.Dir(file), "..", "..", "..", "bin", "consul")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("no Consul agent at %s: run %s", p, BuildHint)
	}
	return p, nil
}

// Start runs a dev agent and waits until it has a leader and answers DNS.
func Start(ctx context.Context) (*Agent, error) { return StartWith(ctx, Options{}) }

// StartWith runs a dev agent configured by opts and waits until it has a
// leader and, without ACLs, answers DNS.
func StartWith(ctx context.Context, opts Options) (*Agent, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "consultest-")
	if err != nil {
		return nil, err
	}
	hcl := opts.HCL
	if opts.ManagementToken != "" {
		hcl += fmt.Sprintf(`
acl {
  enabled        = true
  default_policy = "deny"
  tokens {
    initial_management = %q
    agent              = %q
  }
}
`, opts.ManagementToken, opts.ManagementToken)
	}
	if err := os.WriteFile(filepath.Join(dir, "extra.hcl"), []byte(hcl), 0o600); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	a := &Agent{bin: bin, dir: dir, ports: map[string]int{}, opts: opts}
	// A port chosen free can be taken before the agent binds it (another
	// test process's connection or listener): the first start then picks
	// all ports again. Later starts keep the client ports (clients know
	// them) and choose only the agent's own anew.
	for attempt := 1; ; attempt++ {
		err = a.startOnFreshPorts(ctx)
		if err == nil {
			return a, nil
		}
		if attempt == startAttempts || !strings.Contains(err.Error(), "address already in use") {
			_ = os.RemoveAll(dir)
			return nil, err
		}
	}
}

// startAttempts is how many times StartWith picks ports before it gives up.
const startAttempts = 5

// startOnFreshPorts picks the client ports and starts the agent.
func (a *Agent) startOnFreshPorts(ctx context.Context) error {
	// Every listener stays open until all ports are chosen, so that no two
	// names get the same port.
	var held []net.Listener
	for _, name := range []string{"http", "dns", "grpc"} { // the others: at each Start
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			closeAll(held)
			return err
		}
		held = append(held, l)
		a.ports[name] = l.Addr().(*net.TCPAddr).Port
	}
	closeAll(held)
	var err error
	if a.client, err = api.NewClient(&api.Config{Address: a.HTTPAddr(), Token: a.opts.ManagementToken}); err != nil {
		return err
	}
	return a.Start(ctx)
}

// freshInternalPorts picks free ports for the agent's serf and server
// listeners, held open until the caller closes them so that no two names
// share one.
func (a *Agent) freshInternalPorts() ([]net.Listener, error) {
	var held []net.Listener
	clients := map[int]bool{a.ports["http"]: true, a.ports["dns"]: true, a.ports["grpc"]: true}
	for _, name := range []string{"serf-lan", "serf-wan", "server"} {
		for {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				closeAll(held)
				return nil, err
			}
			held = append(held, l)
			if p := l.Addr().(*net.TCPAddr).Port; !clients[p] { // a client port is closed while the agent is down
				a.ports[name] = p
				break
			}
		}
	}
	return held, nil
}

func closeAll(ls []net.Listener) {
	for _, l := range ls {
		_ = l.Close()
	}
}

// HTTPAddr is the agent's HTTP API address.
func (a *Agent) HTTPAddr() string { return "127.0.0.1:" + strconv.Itoa(a.ports["http"]) }

// DNSAddr is the agent's DNS address.
func (a *Agent) DNSAddr() string { return "127.0.0.1:" + strconv.Itoa(a.ports["dns"]) }

// Client returns the API client for the agent.
func (a *Agent) Client() *api.Client { return a.client }

// Start (re)starts a stopped agent on the same HTTP, DNS and gRPC ports.
func (a *Agent) Start(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd != nil {
		return errors.New("consultest: agent already running")
	}
	args := []string{"agent", "-dev",
		"-node", "consultest",
		"-bind", "127.0.0.1", "-client", "127.0.0.1", "-advertise", "127.0.0.1",
		"-data-dir", filepath.Join(a.dir, "data"),
		"-log-level", "warn",
		"-config-file", filepath.Join(a.dir, "extra.hcl"),
	}
	// Clients know the HTTP, DNS and gRPC ports, which stay. The agent's
	// own ports are chosen anew at every start: while it was down, another
	// process may have taken them (a parallel test's free port).
	held, err := a.freshInternalPorts()
	if err != nil {
		return err
	}
	closeAll(held)
	for _, name := range []string{"http", "dns", "grpc", "serf-lan", "serf-wan", "server"} {
		args = append(args, "-"+name+"-port", strconv.Itoa(a.ports[name]))
	}
	cmd := exec.Command(a.bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	a.log = &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = a.log, a.log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start consul: %w", err)
	}
	a.cmd = cmd
	a.exited = make(chan struct{})
	exited := a.exited
	go func() { _ = cmd.Wait(); close(exited) }()

	client := a.Client()
	dnsReady := func() bool {
		if a.opts.ManagementToken != "" {
			return true // anonymous DNS lookups are denied
		}
		r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, a.DNSAddr())
		}}
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, err := r.LookupHost(cctx, "consul.service.consul.")
		return err == nil
	}
	for {
		if leader, err := client.Status().Leader(); err == nil && leader != "" && dnsReady() {
			return nil
		}
		select {
		case <-exited:
			a.cmd = nil
			return fmt.Errorf("consul exited during start-up:\n%s", a.log.String())
		case <-ctx.Done():
			a.stopLocked()
			return fmt.Errorf("consul did not become ready: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Stop stops the agent (it can be started again).
func (a *Agent) Stop() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.stopLocked()
}

func (a *Agent) stopLocked() {
	if a.cmd == nil {
		return
	}
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.exited:
	case <-time.After(10 * time.Second):
		_ = a.cmd.Process.Kill()
		<-a.exited
	}
	a.cmd = nil
}

// Restart stops and starts the agent, which forgets every registration.
func (a *Agent) Restart(ctx context.Context) error {
	a.Stop()
	return a.Start(ctx)
}

// Close stops the agent and removes its files.
func (a *Agent) Close() {
	a.Stop()
	_ = os.RemoveAll(a.dir)
}
