package grpcapi_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/geosearch/search/internal/grpcapi"
)

// switchPinger answers as told.
type switchPinger struct{ down atomic.Bool }

func (p *switchPinger) Ping(context.Context) error {
	if p.down.Load() {
		return errors.New("database down")
	}
	return nil
}

// TestReadinessOnChange: a follower (the HTTP API's readiness route) sees
// every change of the health status, starting not ready.
func TestReadinessOnChange(t *testing.T) {
	t.Parallel()
	hs := health.NewServer()
	pinger := &switchPinger{}
	r := grpcapi.NewReadiness(hs, pinger, 10*time.Millisecond, slog.New(slog.NewTextHandler(io.Discard, nil)))
	var mu sync.Mutex
	var seen []bool
	r.OnChange(func(ready bool) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, ready)
	})
	waitFor := func(want []bool) {
		t.Helper()
		for range 1000 {
			mu.Lock()
			n := len(seen)
			same := n == len(want)
			for i := 0; same && i < n; i++ {
				same = seen[i] == want[i]
			}
			mu.Unlock()
			if same {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("follower saw %v, want %v", seen, want)
	}
	waitFor([]bool{false})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(ctx)
	}()
	waitFor([]bool{false, true})
	pinger.down.Store(true)
	waitFor([]bool{false, true, false})
	resp, err := hs.Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil || resp.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("gRPC health %v, %v; want NOT_SERVING with the follower", resp, err)
	}
	pinger.down.Store(false)
	waitFor([]bool{false, true, false, true})
	cancel()
	<-done
}
