// Package statsdtest is a real UDP StatsD listener for tests: it parses the
// line protocol ("name:value|type[|@rate]") and keeps every metric it gets.
package statsdtest

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Metric is one received measurement.
type Metric struct {
	Name  string
	Value float64
	Type  string // c, ms, g, s
}

// Listener receives StatsD packets on a loopback UDP port.
type Listener struct {
	conn    net.PacketConn
	mu      sync.Mutex
	metrics []Metric
	bad     []string
	done    chan struct{}
}

// Listen starts a listener, closed when t ends.
func Listen(t testing.TB) *Listener {
	t.Helper()
	return ListenAt(t, "127.0.0.1:0")
}

// ListenAt starts a listener on addr, closed when t ends.
func ListenAt(t testing.TB, addr string) *Listener {
	t.Helper()
	conn, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatalf("statsdtest: %v", err)
	}
	l := &Listener{conn: conn, done: make(chan struct{})}
	go l.read()
	t.Cleanup(func() { conn.Close(); <-l.done })
	return l
}

// Addr is the host:port to send to.
func (l *Listener) Addr() string { return l.conn.LocalAddr().String() }

func (l *Listener) read() {
	defer close(l.done)
	buf := make([]byte, 65536)
	for {
		n, _, err := l.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		for _, line := range strings.Split(string(buf[:n]), "\n") {
			if line == "" {
				continue
			}
			m, err := parse(line)
			l.mu.Lock()
			if err != nil {
				l.bad = append(l.bad, line)
			} else {
				l.metrics = append(l.metrics, m)
			}
			l.mu.Unlock()
		}
	}
}

func parse(line string) (Metric, error) {
	name, rest, ok := strings.Cut(line, ":")
	if !ok || name == "" {
		return Metric{}, fmt.Errorf("no name")
	}
	fields := strings.Split(rest, "|")
	if len(fields) < 2 {
		return Metric{}, fmt.Errorf("no type")
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return Metric{}, err
	}
	switch fields[1] {
	case "c", "ms", "g", "s":
	default:
		return Metric{}, fmt.Errorf("unknown type %q", fields[1])
	}
	return Metric{Name: name, Value: v, Type: fields[1]}, nil
}

// All returns what arrived so far, and the lines that did not parse.
func (l *Listener) All() ([]Metric, []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Metric(nil), l.metrics...), append([]string(nil), l.bad...)
}

// Sum adds the values of every metric with this name and type, and counts them.
func (l *Listener) Sum(name, typ string) (sum float64, n int) {
	ms, _ := l.All()
	for _, m := range ms {
		if m.Name == name && m.Type == typ {
			sum += m.Value
			n++
		}
	}
	return sum, n
}

// WaitSum waits up to 10s for the sum of name/typ to reach want.
func (l *Listener) WaitSum(t testing.TB, name, typ string, want float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, _ := l.Sum(name, typ)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			_, n := l.Sum(name, typ)
			_, bad := l.All()
			t.Fatalf("statsd %s|%s sums to %v over %d packets, want %v; unparsed lines: %q", name, typ, got, n, want, bad)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WaitSeen waits up to 10s for at least one metric with this name and type.
func (l *Listener) WaitSeen(t testing.TB, name, typ string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, n := l.Sum(name, typ); n > 0 {
			return
		}
		if time.Now().After(deadline) {
			ms, _ := l.All()
			names := map[string]bool{}
			for _, m := range ms {
				names[m.Name+"|"+m.Type] = true
			}
			t.Fatalf("statsd never got %s|%s; got only %v", name, typ, names)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
