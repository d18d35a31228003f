package main

import (
	"context"
	"log/slog"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/grpcapi"
	"github.com/geosearch/search/internal/kafka"
	"github.com/geosearch/search/internal/metrics"
	"github.com/geosearch/search/internal/postgis"
)

// fencing is one server's geofencing (docs/GEOFENCE.md): the tracker that
// Track uses, the relay of events to Kafka and the positions consumer, on
// a pool of their own on the primary.
type fencing struct {
	pool      *pgxpool.Pool
	store     *postgis.FenceStore
	tracker   *geo.Tracker
	events    kafka.EventReader
	relay     *kafka.Relay
	positions *kafka.Positions
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

// newFencing builds the geofencing of cfg over svc (its containment is
// Locate's, so Search's); nil when FENCE_ENABLED is off.
func newFencing(ctx context.Context, cfg serverConfig, app string, timeout *postgis.StatementTimeout, svc geo.SearchService, logger *slog.Logger, m metrics.Metrics) (*fencing, error) {
	if !cfg.Fence.Enabled {
		return nil, nil
	}
	pool, err := postgis.OpenFence(ctx, cfg.DB, app, timeout)
	if err != nil {
		return nil, err
	}
	store := postgis.NewFenceStore(pool)
	tracker := geo.NewTracker(svc, store, cfg.Fence.MaxFuture, nil)
	brokers := cfg.Kafka.Brokers
	return &fencing{
		pool:      pool,
		store:     store,
		tracker:   tracker,
		events:    kafka.EventReader{Brokers: brokers, Topic: cfg.Fence.EventsTopic},
		relay:     kafka.NewRelay(cfg.Fence, brokers, store, logger, m),
		positions: kafka.NewPositions(cfg.Fence, brokers, tracker, store, logger, m),
	}, nil
}

// start runs the relay and the positions consumer in the background. A nil
// fencing (FENCE_ENABLED off) does nothing, as do its other methods.
func (f *fencing) start(ctx context.Context) {
	if f == nil {
		return
	}
	ctx, f.cancel = context.WithCancel(ctx)
	f.wg.Go(func() { f.relay.Run(ctx) })
	f.wg.Go(func() { f.positions.Run(ctx) })
}

// stop ends the consumer and the relay (what they had not committed is
// done again by whoever takes over) and closes the pool.
func (f *fencing) stop() {
	if f == nil {
		return
	}
	if f.cancel != nil {
		f.cancel()
	}
	f.wg.Wait()
	f.pool.Close()
}

// serve gives api the Track and WatchEvents RPCs.
func (f *fencing) serve(api *grpcapi.Server) {
	if f != nil {
		api.SetFencing(f.tracker, f.events)
	}
}
