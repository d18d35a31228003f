package consul_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/geosearch/search/internal/consul"
)

// newHandover returns in's handover, following its service until the test
// ends.
func newHandover(t *testing.T, cfg consul.Config, in *instance) *consul.Handover {
	t.Helper()
	h, err := consul.NewHandover(cfg, in.reg.ServiceID(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return h
}

// TestHandoverLetsInstancesLeaveOneAtATime: of two instances told to stop
// together, the second leaves only once the first has released its turn
// and another instance (its replacement) is passing.
func TestHandoverLetsInstancesLeaveOneAtATime(t *testing.T) {
	t.Parallel()
	cfg := testConfig("handover-turns")
	cfg.HandoverTimeout = time.Minute // never reached: the outcome is the order
	a, b := startInstance(t, cfg, "a"), startInstance(t, cfg, "b")
	eventually(t, "two instances passing", func() bool { return len(dnsSees(t, cfg.ServiceName)) == 2 })
	ha, hb := newHandover(t, cfg, a), newHandover(t, cfg, b)
	eventually(t, "each to see the other", func() bool { return ha.PeerSeen() && hb.PeerSeen() })

	if !ha.Wait(context.Background()) {
		t.Fatal("a waited for nothing with b registered")
	}
	bDone := make(chan bool, 1)
	go func() { bDone <- hb.Wait(context.Background()) }()

	// a leaves: out of Consul, then its turn passes on. b is still
	// waiting: nobody else is passing.
	a.stop()
	if err := a.reg.Deregister(context.Background()); err != nil {
		t.Fatal(err)
	}
	ha.Release()
	eventually(t, "a out of DNS", func() bool { return len(dnsSees(t, cfg.ServiceName)) == 1 })
	select {
	case <-bDone:
		t.Fatal("b left with nobody else passing")
	case <-time.After(500 * time.Millisecond):
	}

	// a's replacement comes up: b may go.
	startInstance(t, cfg, "a2")
	if !<-bDone {
		t.Error("b's Wait says it waited for nothing")
	}
	if got := len(dnsSees(t, cfg.ServiceName)); got != 2 {
		t.Errorf("%d instances in DNS when b's turn came, want b and the replacement", got)
	}
	hb.Release()
}

// TestHandoverIsBounded: with its peer gone critical, Wait returns at its
// timeout; a lone instance does not wait at all.
func TestHandoverIsBounded(t *testing.T) {
	t.Parallel()
	cfg := testConfig("handover-bounded")
	cfg.HandoverTimeout = time.Second
	a := startInstance(t, cfg, "a")
	eventually(t, "a passing", func() bool { return len(dnsSees(t, cfg.ServiceName)) == 1 })
	h := newHandover(t, cfg, a)
	if h.Wait(context.Background()) {
		t.Error("a lone instance waited")
	}
	b := startInstance(t, cfg, "b")
	eventually(t, "a to see b", h.PeerSeen)
	b.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING) // b fails, and stays failed
	eventually(t, "b critical", func() bool { return len(dnsSees(t, cfg.ServiceName)) == 1 })
	if !h.Wait(context.Background()) {
		t.Error("Wait says it waited for nothing with b seen a moment ago")
	}
	h.Release()
}
