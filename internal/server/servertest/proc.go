package servertest

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Proc is a search-server binary running as its own process.
type Proc struct {
	Cmd    *exec.Cmd
	Addr   string
	Logs   *SyncBuffer
	exited chan struct{}
	err    error // Wait's result, once exited is closed
}

// StartProc runs the server binary with env on top of the test process's
// environment (LISTEN_ADDR defaults to a free loopback port, Consul
// registration to off) and waits until it listens.
func StartProc(t *testing.T, env map[string]string) *Proc {
	t.Helper()
	vars := map[string]string{"LISTEN_ADDR": "127.0.0.1:0", "CONSUL_REGISTER": "false", "HEALTH_CHECK_INTERVAL": "100ms"}
	for k, v := range env {
		vars[k] = v
	}
	cmd := exec.Command(ServerBin)
	cmd.Env = os.Environ()
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &Proc{Cmd: cmd, Logs: &SyncBuffer{}, exited: make(chan struct{})}
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			_, _ = p.Logs.Write(append(sc.Bytes(), '\n'))
			var rec struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "serving" {
				listening <- rec.Addr
			}
		}
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("server %s log:\n%s", p.Addr, p.Logs.String())
		}
	})
	select {
	case p.Addr = <-listening:
	case <-p.exited:
		t.Fatalf("server exited at start: %v\n%s", p.err, p.Logs.String())
	case <-time.After(2 * time.Minute): // migrating on a loaded machine
		t.Fatalf("server did not listen:\n%s", p.Logs.String())
	}
	return p
}

// Signal sends sig to the process.
func (p *Proc) Signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.Cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// Wait waits for the process to exit and returns Wait's error.
func (p *Proc) Wait(t *testing.T) error {
	t.Helper()
	select {
	case <-p.exited:
		return p.err
	case <-time.After(60 * time.Second):
		t.Fatal("server did not exit")
		return nil
	}
}

// Records returns the server's JSON log records so far, in order.
func (p *Proc) Records() []map[string]any { return LogRecords(p.Logs.String()) }

// LogRecords parses a server's JSON log output into its records, so that
// tests look at fields, not at the text of the log.
func LogRecords(logs string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(logs, "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil {
			out = append(out, rec)
		}
	}
	return out
}

// Logged counts the records of ts's log that have every field of match.
func Logged(ts *Server, match map[string]any) int {
	return CountRecords(LogRecords(ts.Logs.String()), match)
}

// CountRecords counts the records that have every field of match.
func CountRecords(recs []map[string]any, match map[string]any) int {
	n := 0
	for _, rec := range recs {
		all := true
		for k, v := range match {
			if rec[k] != v {
				all = false
				break
			}
		}
		if all {
			n++
		}
	}
	return n
}

// ShutdownSteps lists the shutdown steps the server logged, and where an
// RPC of method ended among them.
func (p *Proc) ShutdownSteps(method string) []string {
	var steps []string
	for _, rec := range p.Records() {
		if s, ok := rec["step"].(string); ok {
			steps = append(steps, s)
		}
		if method != "" && rec["method"] == method {
			steps = append(steps, "rpc ended "+rec["code"].(string))
		}
	}
	return steps
}

// HTTPAddr waits for the server's "serving HTTP" record and returns the
// address.
func (p *Proc) HTTPAddr(t *testing.T) string {
	t.Helper()
	var addr string
	Eventually(t, 30*time.Second, "the server to log serving HTTP", func() bool {
		for _, rec := range p.Records() {
			if rec["msg"] == "serving HTTP" {
				addr, _ = rec["addr"].(string)
				return true
			}
		}
		return false
	})
	return addr
}
