package grpcapi

import (
	"context"
	"log/slog"
	"time"

	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	searchv1 "github.com/geosearch/search/proto/search/v1"
)

// Pinger reports whether a dependency is ready; nil means ready.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Readiness keeps the standard health service in step with the database:
// SERVING while it answers (and, when it is a standby, does not lag beyond
// MAX_REPLICA_LAG), NOT_SERVING while it does not. It covers the
// whole server ("") and search.v1.SearchService.
type Readiness struct {
	health   *health.Server
	pinger   Pinger
	interval time.Duration
	logger   *slog.Logger
	notify   []func(ready bool)
}

// OnChange makes fn follow readiness too (another transport's readiness
// route); it is called with false at once. Call it before Run.
func (r *Readiness) OnChange(fn func(ready bool)) {
	r.notify = append(r.notify, fn)
	fn(false)
}

// NewReadiness returns a Readiness that starts NOT_SERVING.
func NewReadiness(h *health.Server, p Pinger, interval time.Duration, logger *slog.Logger) *Readiness {
	r := &Readiness{health: h, pinger: p, interval: interval, logger: logger}
	r.set(healthpb.HealthCheckResponse_NOT_SERVING)
	return r
}

// set tells the followers first, then gRPC health: once a client sees
// NOT_SERVING, every follower has stopped (the in-memory index answers
// nothing once the instance is not ready).
func (r *Readiness) set(s healthpb.HealthCheckResponse_ServingStatus) {
	for _, fn := range r.notify {
		fn(s == healthpb.HealthCheckResponse_SERVING)
	}
	r.health.SetServingStatus("", s)
	r.health.SetServingStatus(searchv1.SearchService_ServiceDesc.ServiceName, s)
}

// Run checks readiness at once and then every interval until ctx ends. It
// logs each change, and once at start when the database does not answer.
func (r *Readiness) Run(ctx context.Context) {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for first, ready := true, false; ; first = false {
		pctx, cancel := context.WithTimeout(ctx, max(r.interval, time.Second))
		err := r.pinger.Ping(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		switch {
		case err == nil && !ready:
			r.logger.Info("ready: the database answers; health SERVING")
			r.set(healthpb.HealthCheckResponse_SERVING)
		case err != nil && (ready || first):
			r.logger.Warn("not ready: the database does not answer or its replica lags; health NOT_SERVING", "error", err.Error())
			r.set(healthpb.HealthCheckResponse_NOT_SERVING)
		}
		ready = err == nil
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
