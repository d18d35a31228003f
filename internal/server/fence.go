package server

import (
	"context"
	"log/slog"
	"sync"
	"time"

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
	topics    func(context.Context) error // creates the topics
	logger    *slog.Logger
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

// newFencing builds the geofencing of cfg over svc (its containment is
// Locate's, so Search's); nil when FENCE_ENABLED is off.
func newFencing(ctx context.Context, cfg Config, app string, timeout *postgis.StatementTimeout, svc geo.SearchService, logger *slog.Logger, m metrics.Metrics) (*fencing, error) {
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
		topics:    func(ctx context.Context) error { return kafka.CreateFenceTopics(ctx, brokers, cfg.Fence) },
		logger:    logger,
	}, nil
}

// start runs the relay and the positions consumer in the background. A nil
// fencing (FENCE_ENABLED off) does nothing, as do its other methods.
func (f *fencing) start(ctx context.Context) {
	if f == nil {
		return
	}
	ctx, f.cancel = context.WithCancel(ctx)
	f.wg.Go(func() {
		// The topics first, when Kafka answers soon (make up's stacks
		// rely on it); else the clients create them as they use them.
		tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := f.topics(tctx); err != nil && ctx.Err() == nil {
			f.logger.Warn("geofencing topics not created; the clients will create them as they use them", "error", err.Error())
		}
		cancel()
		f.wg.Go(func() { f.relay.Run(ctx) })
		f.positions.Run(ctx)
	})
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

// status is the geofencing's counts for Monitor; ok false when fencing is
// off. The stored counts are left at zero when the database does not
// answer.
func (f *fencing) status(ctx context.Context) (geo.FenceStatus, bool) {
	if f == nil {
		return geo.FenceStatus{}, false
	}
	c := f.positions.Counts()
	st := geo.FenceStatus{PositionsConsumed: c.Consumed, PositionsRejected: c.Rejected, PositionsStale: c.Stale,
		Events: c.Events, EventsPublished: f.relay.Published(), ConsumerLag: c.Lag}
	st.DevicesTracked, st.Outbox, _ = f.store.Counts(ctx)
	return st, true
}

// serve gives api the Track and WatchEvents RPCs.
func (f *fencing) serve(api *grpcapi.Server) {
	if f != nil {
		api.SetFencing(f.tracker, f.events)
		api.SetFenceStatus(f.status)
	}
}
