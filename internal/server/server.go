// Package server is the search server composed from its components'
// configurations: logging, metrics, the database pools, the gRPC and HTTP
// APIs, readiness, the in-memory index, geofencing, the Consul
// registrations and the live configuration from Consul KV. Run serves and
// shuts them down in order; cmd/search-server reads the flags and starts it.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/config"
	"github.com/geosearch/search/internal/consul"
	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/grpcapi"
	"github.com/geosearch/search/internal/httpapi"
	"github.com/geosearch/search/internal/kafka"
	"github.com/geosearch/search/internal/logbuffer"
	"github.com/geosearch/search/internal/memindex"
	"github.com/geosearch/search/internal/metrics"
	"github.com/geosearch/search/internal/postgis"
	"github.com/geosearch/search/internal/statsd"
)

// Server is the wired search server: logging (stdout, and Kafka when
// configured), metrics, database pool, gRPC server with the search, health
// and reflection services, the HTTP API when HTTP_LISTEN_ADDR is set, the
// readiness loop and Consul registration (one per API).
type Server struct {
	cfg          Config
	version      string // reported in Monitor, Consul and the log
	logger       *slog.Logger
	logOut       *logbuffer.Buffer // stdout, where the access log's records may wait
	level        *slog.LevelVar
	shipper      *kafka.Shipper // nil without KAFKA_BROKERS
	statsd       *statsd.Client
	metrics      metrics.Metrics
	closeMetrics func()
	timeout      *postgis.StatementTimeout // every pool but the writer's
	writeTimeout *postgis.StatementTimeout // the writing pool's
	svc          *postgis.SearchService
	index        *memindex.Registry
	api          *grpcapi.Server
	auth         *grpcapi.Auth
	reloader     *config.Reloader[Config] // nil without live reload
	envRejected  []config.Rejection       // the environment's values refused at start
	flushOnce    sync.Once
	pool         *pgxpool.Pool
	writer       *pgxpool.Pool // imports: DATABASE_WRITE_URL, or DATABASE_URL
	probe        *pgxpool.Pool // the replica's lag and write positions, on the primary
	check        *pgxpool.Pool // readiness: one connection of its own
	httpPool     *pgxpool.Pool // the HTTP API's reads; nil without HTTP_LISTEN_ADDR
	replica      *postgis.Replica
	lis          net.Listener
	pprof        *http.Server // nil without PPROF_ADDR
	pprofLis     net.Listener
	grpc         *grpc.Server
	health       *health.Server
	ready        *grpcapi.Readiness
	// registrar and handover are nil when Consul registration is off.
	registrar *consul.Registrar
	handover  *consul.Handover
	// http is nil without HTTP_LISTEN_ADDR; httpRegistrar is nil then too,
	// and when Consul registration is off.
	http          *httpapi.Server
	httpRegistrar *consul.Registrar
	// fence is nil without FENCE_ENABLED.
	fence *fencing
}

// New builds a Server logging JSON to stdout, reporting version (Monitor,
// Consul, the log), and binds its listener,
// so a busy port fails here, at once. The database, Consul, StatsD and Kafka
// need not be up: the server starts NOT_SERVING and turns SERVING when the
// database answers; the others are retried in the background. When a step
// fails, Close releases what the steps before it built (it skips what is
// nil), so there is one way to undo.
func New(ctx context.Context, cfg Config, stdout io.Writer, version string) (*Server, error) {
	s := &Server{cfg: cfg, version: version, timeout: postgis.NewStatementTimeout(cfg.DB.StatementTimeout),
		writeTimeout: postgis.NewStatementTimeout(cfg.DB.WriteStatementTimeout)}
	var access *slog.Logger
	s.logOut, s.level, s.shipper, s.logger, access = newLogging(cfg, stdout)
	s.statsd, s.closeMetrics = statsd.New(cfg.StatsD, s.logger)
	s.metrics = s.statsd
	if err := s.build(ctx, access); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// build constructs the components in the order they depend on each other:
// the pools, the listeners, the search service and its in-memory index,
// geofencing, the gRPC server and readiness, the HTTP API and the Consul
// registrations.
func (s *Server) build(ctx context.Context, access *slog.Logger) error {
	if err := s.openPools(ctx); err != nil {
		return err
	}
	if err := s.listen(); err != nil {
		return err
	}
	s.svc = postgis.NewSearchService(s.pool, postgis.WithWriter(s.writer))
	// Point lookups are answered from memory where the index holds what
	// they ask; it reads the database DATABASE_URL names, standby or not.
	s.index = memindex.NewRegistry(s.svc, s.cfg.Index, s.logger)
	// The lease (docs/INDEX.md), on the primary: the row and the listener
	// on the probe's short statements, the writes' wait on the writers'.
	s.index.UsePeers(memindex.NewPeers(postgis.NewIndexPeers(s.probe, s.writer), s.cfg.Index.Lease, s.logger, s.metrics))
	lookups := memindex.NewSearchService(s.svc, s.index, s.metrics)
	var err error
	if s.fence, err = newFencing(ctx, s.cfg, s.app(), s.timeout, lookups, s.logger, s.metrics); err != nil {
		return err
	}
	if err := s.newGRPC(lookups, access); err != nil {
		return err
	}
	s.ready = grpcapi.NewReadiness(s.health, s.replica, s.cfg.GRPC.HealthInterval, s.logger)
	s.ready.OnChange(s.index.SetReady)
	if s.cfg.HTTP.Enabled() {
		// The HTTP API reads through a pool of its own, so that its load
		// never makes gRPC calls queue for a connection.
		if s.httpPool, err = postgis.OpenHTTP(ctx, s.cfg.DB, s.app(), s.timeout); err != nil {
			return err
		}
		httpSvc := s.svc.ReadingThrough(s.httpPool)
		if s.http, err = newHTTP(s.cfg, s.version, httpSvc, int(s.httpPool.Config().MaxConns), s.index, s.replica, s.auth, s.logger, access, s.metrics); err != nil {
			return err
		}
		s.ready.OnChange(s.http.SetReady)
	}
	if s.cfg.Consul.Register {
		if err := s.newRegistrars(); err != nil {
			return fmt.Errorf("consul registration: %w", err)
		}
	}
	return nil
}

// app names this instance's database connections (application_name).
func (s *Server) app() string { return "search-server/" + s.cfg.InstanceID }

// openPools opens the database pools: reads, writes, the replica probe and
// readiness's connection.
func (s *Server) openPools(ctx context.Context) error {
	var err error
	if s.pool, err = postgis.Open(ctx, s.cfg.DB, s.app(), s.timeout); err != nil {
		return err
	}
	// Imports write through a pool of their own, so that however many run
	// or stall, searches and the readiness check keep their connections.
	if s.writer, err = postgis.OpenWriter(ctx, s.cfg.DB, s.app(), s.writeTimeout); err != nil {
		return err
	}
	// DATABASE_URL may be a hot standby of the primary on
	// DATABASE_WRITE_URL: readiness follows its lag, and consistency
	// tokens let a client read its own writes (docs/REPLICAS.md).
	if s.probe, err = postgis.OpenProbe(ctx, s.cfg.DB, s.app(), s.timeout); err != nil {
		return err
	}
	// Readiness asks the database on a connection no request can take, so
	// that it says whether the database answers, not whether a pool has a
	// connection free.
	if s.check, err = postgis.OpenCheck(ctx, s.cfg.DB, s.app(), s.timeout); err != nil {
		return err
	}
	s.replica = postgis.NewReplica(s.pool, s.check, s.probe, s.cfg.DB.MaxReplicaLag)
	return nil
}

// listen binds the gRPC listener and, with PPROF_ADDR, pprof's.
func (s *Server) listen() error {
	var err error
	if s.lis, err = net.Listen("tcp", s.cfg.GRPC.ListenAddr); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if s.cfg.PprofAddr != "" {
		if s.pprofLis, err = net.Listen("tcp", s.cfg.PprofAddr); err != nil {
			return fmt.Errorf("listen for pprof: %w", err)
		}
		s.pprof = &http.Server{Handler: pprofMux(), ReadHeaderTimeout: 10 * time.Second}
	}
	return nil
}

// newGRPC builds the gRPC server with the search service over lookups,
// health and reflection.
func (s *Server) newGRPC(lookups geo.SearchService, access *slog.Logger) error {
	s.auth = grpcapi.NewAuth(s.cfg.GRPC)
	warnAboutAccess(s.cfg, s.auth, s.logger)
	opts, err := grpcapi.ServerOptions(s.cfg.GRPC, s.logger, access, s.metrics, s.auth)
	if err != nil {
		return &config.Error{Err: err}
	}
	s.grpc = grpc.NewServer(append(opts, grpcapi.ConsistencyOptions(s.replica, s.logger)...)...)
	s.health = health.NewServer()
	healthpb.RegisterHealthServer(s.grpc, s.health)
	s.api = grpcapi.NewServer(lookups, s.cfg.GRPC, grpcapi.Info{
		InstanceID:    s.cfg.InstanceID,
		Version:       s.version,
		Started:       time.Now(),
		MemoryIndexes: s.index.Status,
	}, s.metrics)
	s.fence.serve(s.api)
	searchv1.RegisterSearchServiceServer(s.grpc, s.api)
	reflection.Register(s.grpc)
	return nil
}

// httpLimits are the HTTP API's page sizes, page byte budget and Locate
// batches: gRPC's.
func httpLimits(c grpcapi.Config) httpapi.Limits {
	return httpapi.Limits{DefaultPageSize: c.DefaultPageSize, MaxPageSize: c.MaxPageSize, MaxPageBytes: c.MaxPageBytes, LocateBatchSize: c.LocateBatchSize, LocateBatchWait: c.LocateBatchWait}
}

// warnAboutAccess logs the access settings that leave the service open or
// closed in ways an operator may not mean.
func warnAboutAccess(cfg Config, auth *grpcapi.Auth, logger *slog.Logger) {
	if auth.Enabled() && !cfg.GRPC.TLSEnabled() {
		logger.Warn("tokens are set but TLS is off: they travel in clear text; set TLS_CERT_FILE and TLS_KEY_FILE")
	}
	if len(cfg.GRPC.ReadTokens) > 0 && len(cfg.GRPC.WriteTokens) == 0 {
		logger.Warn("READ_TOKENS is set without WRITE_TOKENS: every Import is refused")
	}
	switch {
	case auth.Enabled():
	case !auth.OpenWrites():
		logger.Warn("no token is set and LISTEN_ADDR is not loopback: writes (Import, DeleteThings, DeleteCollection) are refused; set WRITE_TOKENS, or ALLOW_OPEN_WRITES=true", "listen_addr", cfg.GRPC.ListenAddr)
	case !grpcapi.Loopback(cfg.GRPC.ListenAddr):
		logger.Warn("ALLOW_OPEN_WRITES=true and no token is set: anyone who reaches LISTEN_ADDR may import and delete", "listen_addr", cfg.GRPC.ListenAddr)
	}
}

// newRegistrars builds the Consul registrations of the gRPC service, its
// handover and, with HTTP on, the HTTP service.
func (s *Server) newRegistrars() error {
	host, port, err := consul.AdvertiseHostPort(s.cfg.Consul, s.lis.Addr())
	if err == nil {
		s.registrar, err = consul.NewRegistrar(s.cfg.Consul, consul.Instance{
			ID:            s.cfg.InstanceID,
			Version:       s.version,
			Host:          host,
			Port:          port,
			HealthService: searchv1.SearchService_ServiceDesc.ServiceName,
			TLS:           s.cfg.GRPC.TLSEnabled(),
		}, s.logger)
	}
	if err == nil {
		s.handover, err = consul.NewHandover(s.cfg.Consul, s.registrar.ServiceID(), s.logger)
	}
	if err == nil && s.http != nil {
		s.httpRegistrar, err = newHTTPRegistrar(s.cfg, s.version, s.http.Addr(), s.logger)
	}
	return err
}

// newHTTP builds the HTTP API with gRPC's TLS settings and tokens, as
// many database slots as its pool has connections (dbConns), and
// binds its listener.
func newHTTP(cfg Config, version string, svc *postgis.SearchService, dbConns int, index *memindex.Registry, rw geo.ReadYourWrites, auth *grpcapi.Auth, logger, access *slog.Logger, m metrics.Metrics) (*httpapi.Server, error) {
	tc, err := grpcapi.ServerTLSConfig(cfg.GRPC)
	if err != nil {
		return nil, &config.Error{Err: err}
	}
	return httpapi.New(memindex.NewSearchService(svc, index, m), cfg.HTTP, httpLimits(cfg.GRPC), httpapi.Deps{
		Logger:      logger,
		Access:      access,
		Metrics:     m,
		Tokens:      auth.Tokens(),
		TLS:         tc,
		Version:     version,
		Properties:  svc,
		Tiles:       svc,
		DBConns:     dbConns,
		Consistency: rw,
	})
}

// newHTTPRegistrar registers the HTTP API as its own Consul service
// (HTTP_SERVICE_NAME) with an HTTP check on its readiness route. It is
// advertised on the host gRPC is, at the HTTP listener's port.
func newHTTPRegistrar(cfg Config, version string, addr net.Addr, logger *slog.Logger) (*consul.Registrar, error) {
	host, _, err := consul.AdvertiseHostPort(cfg.Consul, addr)
	if err != nil {
		return nil, err
	}
	_, port, err := consul.AdvertiseHostPort(consul.Config{}, addr)
	if err != nil {
		return nil, err
	}
	ccfg := cfg.Consul
	ccfg.ServiceName = cfg.HTTP.ServiceName
	return consul.NewRegistrar(ccfg, consul.Instance{
		ID:             cfg.InstanceID,
		Version:        version,
		Host:           host,
		Port:           port,
		HealthHTTPPath: "/readyz",
		TLS:            cfg.GRPC.TLSEnabled(),
	}, logger)
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.lis.Addr() }

// startLoops starts the background loops on wg: readiness, the Consul
// registrations, the handover, the gauges, the in-memory index and its
// listener, and the KV watch; and geofencing's consumer and relay. They
// end when ctx does.
func (s *Server) startLoops(ctx context.Context, wg *sync.WaitGroup) {
	wg.Go(func() { s.ready.Run(ctx) })
	for _, r := range []*consul.Registrar{s.registrar, s.httpRegistrar} {
		if r != nil {
			wg.Go(func() { r.Run(ctx) })
		}
	}
	if s.handover != nil {
		wg.Go(func() { s.handover.Run(ctx) })
	}
	wg.Go(func() { s.reportGauges(ctx) })
	wg.Go(func() { s.index.Run(ctx) })
	wg.Go(func() { s.index.Listen(ctx) })
	if s.reloader != nil && s.cfg.ConfigPrefix != "" {
		wg.Go(func() { s.watchConfig(ctx) })
	}
	s.fence.start(ctx) // waited for by closePools
}

// Run serves until ctx is cancelled, then shuts down in this order:
//
//  0. with a peer seen within the last minute, the handover (CONSUL_HANDOVER_TIMEOUT):
//     still serving, wait for this instance's turn to leave (one at a time
//     per service) and for another instance to be passing;
//  1. health NOT_SERVING and the HTTP readiness route 503, so health checks
//     and balancers stop sending work; the geofencing consumer and relay
//     stop taking work (what they had not committed, the instance that
//     takes their partitions or the relay's lock does again); the memory
//     index ends its lease and deletes its row (docs/INDEX.md);
//  2. deregistration from Consul (the gRPC and the HTTP service), so
//     discovery stops naming this instance;
//  3. GracefulStop and the HTTP server's Shutdown, side by side: no new
//     RPCs or requests, in-flight ones finish, within SHUTDOWN_TIMEOUT,
//     after which the rest are cut; then the handover's turn passes to the
//     next instance;
//  4. the geofencing consumer and relay are waited for, then the database
//     pools are closed;
//  5. metrics are flushed, and the logs queued for Kafka, within
//     LOG_FLUSH_TIMEOUT.
//
// Registration runs in the background from the start: the server serves
// whether or not Consul answers.
func (s *Server) Run(ctx context.Context) error {
	// The background loops (readiness, registration, gauges, the KV watch)
	// outlive ctx until step 1, so that an instance waiting for its
	// handover is still fully itself.
	rctx, stopReadiness := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	s.startLoops(rctx, &wg)
	if s.pprof != nil {
		go func() { _ = s.pprof.Serve(s.pprofLis) }() // ends with ErrServerClosed at Close
		s.logger.Info("serving pprof", "addr", s.pprofLis.Addr().String())
	}
	serveErr := make(chan error, 2)
	go func() { serveErr <- s.grpc.Serve(s.lis) }()
	s.logger.Info("serving", "addr", s.Addr().String(), "version", s.version)
	httpErr := make(chan error, 1)
	if s.http != nil {
		go func() {
			err := s.http.Serve()
			if !errors.Is(err, http.ErrServerClosed) {
				serveErr <- fmt.Errorf("HTTP: %w", err)
			}
			httpErr <- err
		}()
		s.logger.Info("serving HTTP", "addr", s.http.Addr().String())
	}

	select {
	case err := <-serveErr:
		stopReadiness()
		wg.Wait()
		s.notServing()
		s.deregister(ctx)
		s.grpc.Stop()
		s.closeHTTP()
		s.closePprof()
		s.closePools()
		s.flush(ctx)
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}

	if s.handover != nil {
		start := time.Now()
		if s.handover.Wait(context.WithoutCancel(ctx)) {
			s.logger.Info("shutting down", "step", "handover: this instance's turn to leave", "waited", time.Since(start).Round(time.Millisecond).String())
		}
		defer s.handover.Release()
	}
	s.logger.Info("shutting down", "step", "health NOT_SERVING")
	stopReadiness()
	wg.Wait()
	s.notServing()

	s.deregister(ctx)

	drainStep := "draining in-flight RPCs"
	if s.http != nil {
		drainStep = "draining in-flight RPCs and HTTP requests"
	}
	s.logger.Info("shutting down", "step", drainStep, "timeout", s.cfg.GRPC.ShutdownTimeout.String())
	drained := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(drained)
	}()
	httpDrained := make(chan struct{})
	go func() {
		defer close(httpDrained)
		if s.http == nil {
			return
		}
		hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.GRPC.ShutdownTimeout)
		defer cancel()
		if err := s.http.Shutdown(hctx); err != nil {
			s.logger.Warn("shutting down", "step", "HTTP drain timed out; cutting remaining requests")
		}
		<-httpErr
	}()
	select {
	case <-drained:
	case <-time.After(s.cfg.GRPC.ShutdownTimeout):
		s.logger.Warn("shutting down", "step", "drain timed out; cancelling remaining RPCs")
		s.grpc.Stop()
		<-drained
	}
	<-httpDrained
	if err := <-serveErr; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		s.logger.Warn("serve ended with an error", "error", err.Error())
	}
	if s.handover != nil {
		s.handover.Release() // out of service: the next instance may go
	}

	s.closePprof()
	s.logger.Info("shutting down", "step", "closing database pool")
	s.closePools()
	s.logger.Info("shutting down", "step", "flushing metrics and logs")
	s.flush(ctx)
	return nil
}

// notServing turns gRPC health NOT_SERVING and the HTTP readiness route
// to 503.
func (s *Server) notServing() {
	s.health.Shutdown()
	if s.http != nil {
		s.http.SetReady(false)
	}
}

// deregister removes the instance's services from Consul, if it registered.
func (s *Server) deregister(ctx context.Context) {
	if s.registrar == nil {
		return
	}
	s.logger.Info("shutting down", "step", "deregistering from Consul")
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	for _, r := range []*consul.Registrar{s.registrar, s.httpRegistrar} {
		if r == nil {
			continue
		}
		if err := r.Deregister(dctx); err != nil {
			// The check turns critical and Consul removes the instance after
			// CONSUL_DEREGISTER_CRITICAL_AFTER.
			s.logger.Warn("deregistration failed", "service_id", r.ServiceID(), "error", err.Error())
		}
	}
}

// closeHTTP stops the HTTP API at once, if it runs.
func (s *Server) closeHTTP() {
	if s.http != nil {
		s.http.Close()
	}
}

// HTTPAddr is the address of the HTTP API, nil when it is off.
func (s *Server) HTTPAddr() net.Addr {
	if s.http == nil {
		return nil
	}
	return s.http.Addr()
}

// flush sends buffered metrics and queued log records, within
// LOG_FLUSH_TIMEOUT for the logs, and writes the access log records that
// wait. Nothing is logged to Kafka after it. Only
// the first call does anything (Run flushes, and Close may follow).
func (s *Server) flush(ctx context.Context) {
	s.flushOnce.Do(func() {
		s.closeMetrics()
		if s.shipper != nil {
			s.shipper.Close(context.WithoutCancel(ctx))
		}
		s.logOut.Close()
	})
}

// reportGauges sends the gauges of the components that own them (the pool,
// the log shipper) and the number of configuration values refused
// (config.rejected_settings) every STATSD_GAUGE_INTERVAL.
func (s *Server) reportGauges(ctx context.Context) {
	t := time.NewTicker(s.cfg.StatsD.GaugeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.svc.ReportPool(s.metrics)
			s.replica.Report(s.metrics)
			s.index.Report(s.metrics)
			s.metrics.Gauge("config.rejected_settings", int64(len(s.rejected())))
			if s.shipper != nil {
				s.shipper.Report(s.metrics)
			}
			if s.fence != nil {
				s.fence.store.Report(ctx, s.metrics)
			}
		}
	}
}

// Close releases everything without draining; use it when Run was never
// called or to abort. It is safe to call after Run.
func (s *Server) Close() {
	s.closePprof()
	s.closeHTTP()
	if s.grpc != nil {
		s.grpc.Stop()
	}
	if s.lis != nil {
		_ = s.lis.Close() // Serve closes it too; a second close only errors
	}
	s.closePools()
	s.flush(context.Background())
}

// closePools stops geofencing's consumer and relay, which use the
// database, and closes the database pools. A second call does nothing more.
func (s *Server) closePools() {
	if s.fence != nil {
		s.fence.stop()
	}
	for _, p := range []*pgxpool.Pool{s.pool, s.writer, s.probe, s.check, s.httpPool} {
		if p != nil { // nil when New failed before opening it
			p.Close()
		}
	}
}

// closePprof stops the pprof endpoint, if any; profiles in progress are cut.
func (s *Server) closePprof() {
	if s.pprof != nil {
		_ = s.pprof.Close()
	}
	if s.pprofLis != nil {
		_ = s.pprofLis.Close() // when Serve never ran; a second close only errors
	}
}

// pprofMux serves the net/http/pprof handlers on a mux of their own, so that
// nothing registered on http.DefaultServeMux is exposed with them.
func pprofMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
