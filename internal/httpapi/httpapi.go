// Package httpapi serves geo.SearchService over HTTP: OGC API – Features
// (Part 1: Core, GeoJSON, OpenAPI 3.0) for GIS tools, a locate endpoint for
// plain HTTP clients, and a map page whose assets are in the binary. It is
// one more adapter over the domain, beside gRPC: the same validation, page
// tokens, bearer tokens (geo.Tokens) and error codes, mapped to HTTP by the
// one table of internal/core that gRPC's codes come from too.
package httpapi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/geosearch/search/internal/core"
	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/metrics"
)

// Config is the HTTP server's configuration, read from the environment.
// Page sizes, TLS files and tokens are gRPC's (grpcapi.Config): one service,
// one set of limits and credentials.
type Config struct {
	// ListenAddr, when set, turns the HTTP API on at this TCP address.
	ListenAddr string `env:"HTTP_LISTEN_ADDR"`
	// ServiceName is the Consul service the HTTP API registers as.
	ServiceName string `env:"HTTP_SERVICE_NAME, default=search-service-http"`
	// MaxBodyBytes bounds a POST /locate body.
	MaxBodyBytes int64 `env:"HTTP_MAX_BODY_BYTES, default=16777216"`
	// BodyIdleTimeout ends a POST /locate whose body sends nothing for
	// this long (its answer ends with an error line); 0 waits for ever.
	BodyIdleTimeout time.Duration `env:"HTTP_BODY_IDLE_TIMEOUT, default=30s"`
	// MaxInFlight bounds the requests answered at once (readiness checks
	// aside); one more is refused at once with 503 and Retry-After rather
	// than queued, so that load beyond it costs no memory, no goroutine
	// waiting on the database and no client waiting without bound.
	MaxInFlight int `env:"HTTP_MAX_IN_FLIGHT, default=64"`
	// QueueTimeout is how long a request that reads the database waits
	// for one of the HTTP API's database connections (DB_HTTP_MAX_CONNS
	// requests work at once) before it is refused with 503 and
	// Retry-After (bounds.go).
	QueueTimeout time.Duration `env:"HTTP_QUEUE_TIMEOUT, default=1s"`
	// RequestTimeout is the deadline of every request but POST /locate's
	// stream, as RPC_DEFAULT_TIMEOUT is gRPC's for unary calls: the
	// database work of a request that passes it is cancelled.
	RequestTimeout time.Duration `env:"HTTP_REQUEST_TIMEOUT, default=30s"`
	// ReadHeaderTimeout bounds reading a request's headers.
	ReadHeaderTimeout time.Duration `env:"HTTP_READ_HEADER_TIMEOUT, default=10s"`
	// ReadTimeout bounds reading a whole request, body included, but POST
	// /locate's streamed body.
	ReadTimeout time.Duration `env:"HTTP_READ_TIMEOUT, default=30s"`
	// WriteTimeout bounds writing an answer, from the end of its request's
	// headers, but POST /locate's streamed answer: a client that reads a
	// page more slowly than this frees its slot (HTTP_MAX_IN_FLIGHT) when
	// it passes.
	WriteTimeout time.Duration `env:"HTTP_WRITE_TIMEOUT, default=1m"`
	// IdleTimeout closes a kept-alive connection without requests for this
	// long.
	IdleTimeout time.Duration `env:"HTTP_IDLE_TIMEOUT, default=2m"`
	// PublicURL, when set, is the address clients reach the API at (an
	// http or https URL, with a path prefix if a proxy adds one): every
	// link is built on it, and neither the Host header nor Forwarded
	// changes them (links.go).
	PublicURL string `env:"HTTP_PUBLIC_URL"`
	// TrustForwarded makes links follow the Forwarded or X-Forwarded-Proto
	// and X-Forwarded-Host headers when HTTP_PUBLIC_URL is unset: only
	// behind a proxy that sets them, since clients can send them too.
	TrustForwarded bool `env:"HTTP_TRUST_FORWARDED, default=false"`
	// MapTileURL, when set, is the basemap of /map (a Leaflet tile URL
	// template such as https://tile.example.org/{z}/{x}/{y}.png); by default
	// the map has none and works without internet.
	MapTileURL string `env:"MAP_TILE_URL"`
	// MapTileAttribution is shown under the basemap.
	MapTileAttribution string `env:"MAP_TILE_ATTRIBUTION"`
	// TileMaxBytes bounds one vector tile: a larger one is drawn coarser,
	// then with fewer things (tiles.go).
	TileMaxBytes int `env:"TILE_MAX_BYTES, default=524288"`
	// TileOverviewThings makes a tile meeting more things than this an
	// overview: the things too small to show at its zoom drawn as counts
	// per cell, the others as themselves (postgis/tileoverview.go); 0:
	// never.
	TileOverviewThings int `env:"TILE_OVERVIEW_THINGS, default=5000"`
	// TileCacheBytes bounds the vector tiles kept in memory; 0: none.
	TileCacheBytes int64 `env:"TILE_CACHE_BYTES, default=67108864"`
	// TileMaxAge is the Cache-Control max-age of a tile; clients and
	// proxies revalidate with its ETag after it.
	TileMaxAge time.Duration `env:"TILE_MAX_AGE, default=60s"`
}

// Enabled reports whether the HTTP API is on.
func (c Config) Enabled() bool { return c.ListenAddr != "" }

// Validate reports every invalid setting.
func (c Config) Validate() error {
	if !c.Enabled() {
		return nil
	}
	var errs []error
	if c.ServiceName == "" {
		errs = append(errs, errors.New("HTTP_SERVICE_NAME must not be empty"))
	}
	if c.BodyIdleTimeout < 0 {
		errs = append(errs, fmt.Errorf("HTTP_BODY_IDLE_TIMEOUT must not be negative, got %s", c.BodyIdleTimeout))
	}
	if c.MaxBodyBytes < 1024 {
		errs = append(errs, fmt.Errorf("HTTP_MAX_BODY_BYTES must be at least 1024, got %d", c.MaxBodyBytes))
	}
	if c.MaxInFlight < 1 {
		errs = append(errs, fmt.Errorf("HTTP_MAX_IN_FLIGHT must be at least 1, got %d", c.MaxInFlight))
	}
	for _, d := range []struct {
		name string
		d    time.Duration
	}{
		{"HTTP_QUEUE_TIMEOUT", c.QueueTimeout},
		{"HTTP_REQUEST_TIMEOUT", c.RequestTimeout},
		{"HTTP_READ_HEADER_TIMEOUT", c.ReadHeaderTimeout},
		{"HTTP_READ_TIMEOUT", c.ReadTimeout},
		{"HTTP_WRITE_TIMEOUT", c.WriteTimeout},
		{"HTTP_IDLE_TIMEOUT", c.IdleTimeout},
	} {
		if d.d <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %s", d.name, d.d))
		}
	}
	if c.PublicURL != "" {
		if _, err := publicBase(c.PublicURL); err != nil {
			errs = append(errs, err)
		}
	}
	if c.MapTileURL != "" && !strings.HasPrefix(c.MapTileURL, "https://") && !strings.HasPrefix(c.MapTileURL, "http://") {
		errs = append(errs, fmt.Errorf("MAP_TILE_URL must be an http:// or https:// URL template, got %q", c.MapTileURL))
	}
	errs = append(errs, validateTileConfig(c)...)
	return errors.Join(errs...)
}

// Limits are the request limits that can change while serving: the page
// sizes of Search, and the batches of POST /locate (gRPC Locate's).
type Limits struct {
	DefaultPageSize, MaxPageSize int
	// MaxPageBytes ends an items page early, with a next link, once its
	// things hold about this many bytes (gRPC's MAX_PAGE_BYTES); below 1,
	// no byte budget.
	MaxPageBytes int
	// LocateBatchSize is the most points of POST /locate answered by one
	// call of the domain's Locate (one statement); below 1, one point.
	LocateBatchSize int
	// LocateBatchWait is how long a batch waits for more points of the
	// body before it is answered.
	LocateBatchWait time.Duration
}

// Deps are what the server needs besides the service.
type Deps struct {
	// Logger gets internal errors (none: discarded); Access gets one record
	// per request (none: no access log).
	Logger, Access *slog.Logger
	// Metrics gets http.<route>.requests, .latency and .errors.<status>.
	Metrics metrics.Metrics
	// Tokens decide access; shared with gRPC.
	Tokens *geo.Tokens
	// TLS, when not nil, serves HTTPS with this configuration.
	TLS *tls.Config
	// Version is reported on the landing page.
	Version string
	// Properties lists a collection's properties, which items filter on
	// (queryables.go); none: no property is queryable.
	Properties geo.PropertyLister
	// Tiles draws the vector tiles (tiles.go); none: no tiles.
	Tiles geo.TileSource
	// DBConns is how many connections the store reads through (the HTTP
	// API's pool, DB_HTTP_MAX_CONNS): at most this many requests work on
	// the database at once, the others wait for a slot (bounds.go); 0: no
	// such bound.
	DBConns int
	// Consistency makes reads that carry a Consistency-Token header wait
	// for the write it names, as gRPC's do; none: the store does not lag,
	// and a valid token waits for nothing.
	Consistency geo.ReadYourWrites
}

// Server serves the HTTP API.
type Server struct {
	svc    geo.SearchService
	cfg    Config
	deps   Deps
	limits atomic.Pointer[Limits]
	ready  atomic.Bool
	// inFlight holds a token per request being answered
	// (HTTP_MAX_IN_FLIGHT); nil: no cap.
	inFlight chan struct{}
	// dbSlots holds a token per request working on the database
	// (Deps.DBConns); nil: no bound.
	dbSlots chan struct{}
	qcache  queryablesCache
	// tiles keeps hot vector tiles; tileDraws draws each once at a time.
	tiles     *tileCache
	tileDraws singleflight.Group
	// publicBase is HTTP_PUBLIC_URL normalized; "": links follow requests.
	publicBase string
	http       *http.Server
	lis        net.Listener
}

// New builds the server and binds its listener, so a busy port fails at
// once. It starts not ready; SetReady turns it ready. A bound of cfg that
// is zero is not applied (the environment's Config always sets them).
func New(svc geo.SearchService, cfg Config, lim Limits, deps Deps) (*Server, error) {
	if deps.Metrics == nil {
		deps.Metrics = metrics.Nop{}
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{svc: svc, cfg: cfg, deps: deps, tiles: newTileCache(cfg.TileCacheBytes)}
	if cfg.PublicURL != "" {
		base, err := publicBase(cfg.PublicURL)
		if err != nil {
			return nil, err
		}
		s.publicBase = base
	}
	if cfg.MaxInFlight > 0 {
		s.inFlight = make(chan struct{}, cfg.MaxInFlight)
	}
	if deps.DBConns > 0 {
		s.dbSlots = make(chan struct{}, deps.DBConns)
	}
	s.SetLimits(lim)
	lis, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return nil, fmt.Errorf("listen for HTTP: %w", err)
	}
	if deps.TLS != nil {
		lis = tls.NewListener(lis, deps.TLS)
	}
	s.lis = lis
	s.http = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(deps.Logger.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.lis.Addr() }

// SetLimits applies lim to requests that start from now on.
func (s *Server) SetLimits(lim Limits) { s.limits.Store(&lim) }

// Limits returns the limits in effect.
func (s *Server) Limits() Limits { return *s.limits.Load() }

// SetReady sets what the readiness route answers: it follows the database
// as the gRPC health service does, and turns not ready first at shutdown.
func (s *Server) SetReady(ready bool) { s.ready.Store(ready) }

// Serve serves until Shutdown or Close; it returns http.ErrServerClosed
// then.
func (s *Server) Serve() error { return s.http.Serve(s.lis) }

// Shutdown stops accepting requests and waits for those in flight, until
// ctx ends; then Close cuts the rest.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.http.Shutdown(ctx)
	if err != nil {
		_ = s.http.Close()
	}
	return err
}

// Close stops at once, cutting requests in flight.
func (s *Server) Close() {
	_ = s.http.Close()
	_ = s.lis.Close() // when Serve never ran
}

// route is one endpoint: its pattern, its name in metrics and logs, what
// it needs of the caller, and its handler.
type route struct {
	pattern string
	name    string
	access  geo.Access
	handler func(http.ResponseWriter, *http.Request) error
	// kind says which of the server's bounds apply.
	kind routeKind
}

// routes lists every endpoint. The landing page, conformance, the API
// definition, the map's files and readiness are open: they show no data.
// Everything that shows things needs a read token when READ_TOKENS is set.
func (s *Server) routes() []route {
	return append([]route{
		{"GET /{$}", "landing", geo.Open, s.landing, fromMemory},
		{"GET /conformance", "conformance", geo.Open, s.conformance, fromMemory},
		{"GET /api", "api", geo.Open, s.apiDefinition, bounded},
		{"GET /collections", "collections", geo.Read, s.collectionsList, bounded},
		{"GET /collections/{collectionId}", "collection", geo.Read, s.collection, bounded},
		{"GET /collections/{collectionId}/queryables", "queryables", geo.Read, s.collectionQueryables, bounded},
		{"GET /collections/{collectionId}/sortables", "sortables", geo.Read, s.collectionSortables, bounded},
		{"GET /collections/{collectionId}/items", "items", geo.Read, s.items, bounded},
		{"GET /collections/{collectionId}/items/{featureId}", "feature", geo.Read, s.feature, bounded},
		{"GET /locate", "locate", geo.Read, s.locate, bounded},
		{"POST /locate", "locate_batch", geo.Read, s.locateBatch, streamed},
		{"GET /map", "map", geo.Open, s.mapPage, fromMemory},
		{"GET /map/", "map_assets", geo.Open, s.mapAssets, fromMemory},
		{"GET /readyz", "readyz", geo.Open, s.readyz, probe},
	}, s.tileRoutes()...)
}

// Handler returns the API's handler: each route wrapped in logging, metrics,
// panic recovery, the token check and error mapping. Another method on a
// known path is 405 with an Allow header, an unknown path 404, both with
// the exception body.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	allowed := map[string][]string{}
	var paths []string
	for _, rt := range s.routes() {
		mux.Handle(rt.pattern, s.wrap(rt))
		method, path, _ := strings.Cut(rt.pattern, " ")
		if allowed[path] == nil {
			paths = append(paths, path)
		}
		allowed[path] = append(allowed[path], method)
		if method == http.MethodGet {
			allowed[path] = append(allowed[path], http.MethodHead)
		}
	}
	for _, path := range paths {
		allow := strings.Join(allowed[path], ", ")
		mux.Handle(path, s.wrap(route{name: "method_not_allowed", access: geo.Open, kind: fromMemory, handler: func(w http.ResponseWriter, r *http.Request) error {
			w.Header().Set("Allow", allow)
			return errMethod(r.Method, allow)
		}}))
	}
	mux.Handle("/", s.wrap(route{name: "unknown", access: geo.Open, kind: fromMemory, handler: func(_ http.ResponseWriter, r *http.Request) error {
		return errNotFoundPath(r.URL.Path)
	}}))
	return mux
}

// statusRecorder remembers the status and size of a response.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

// Flush lets streamed answers (POST /locate) reach the client line by line.
func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// wrap turns a route's handler into an http.Handler.
func (s *Server) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		r = s.withBase(r)
		err := s.bound(rec, r, rt)
		if err != nil {
			s.writeError(rec, r, rt.name, err)
		}
		s.measure(rt.name, rec.status, start)
		s.logRequest(r, rt.name, rec, start, err)
	})
}

// serveRoute checks the token and runs the handler, turning a panic into an
// Internal error.
func (s *Server) serveRoute(w http.ResponseWriter, r *http.Request, rt route) (err error) {
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			err = geo.Wrap(geo.Internal, fmt.Errorf("panic: %v\n%s", p, debug.Stack()), "internal error")
		}
	}()
	if s.deps.Tokens != nil {
		token, ok := bearerToken(r)
		if err := s.deps.Tokens.Check(rt.access, token, ok); err != nil {
			return err
		}
	}
	if rt.access == geo.Read {
		ctx, _ := geo.WithReadMark(r.Context())
		r = r.WithContext(ctx)
		if err := s.awaitConsistency(w, r); err != nil {
			return err
		}
	}
	if rt.kind == bounded {
		release, err := s.takeDBSlot(r.Context())
		if err != nil {
			return err
		}
		defer release()
	}
	return rt.handler(w, r)
}

// awaitConsistency makes a read that carries a Consistency-Token header
// (one, as gRPC's consistency_token field) wait for the write it names,
// and the answer carry the token back: the position it reflects at least.
func (s *Server) awaitConsistency(w http.ResponseWriter, r *http.Request) error {
	values := r.Header.Values(core.ConsistencyHeader)
	if len(values) == 0 {
		return nil
	}
	if len(values) > 1 {
		return geo.Errorf(geo.Invalid, "send one %s header, not %d", core.ConsistencyHeader, len(values))
	}
	if err := core.AwaitToken(r.Context(), s.deps.Consistency, values[0], core.ConsistencyHeader+" header"); err != nil {
		return err
	}
	w.Header().Set(core.ConsistencyHeader, values[0])
	return nil
}

// bearerToken returns the token of the "Authorization: Bearer" header.
func bearerToken(r *http.Request) (string, bool) {
	return geo.BearerToken(r.Header.Values("Authorization"))
}

// measure reports one finished request: http.<route>.requests,
// http.<route>.latency and, for 4xx and 5xx, http.<route>.errors.<status>.
func (s *Server) measure(name string, status int, start time.Time) {
	m := s.deps.Metrics
	prefix := "http." + name
	m.Count(prefix+".requests", 1)
	m.Timing(prefix+".latency", time.Since(start))
	if status >= 400 {
		m.Count(fmt.Sprintf("%s.errors.%d", prefix, status), 1)
	}
}

// logRequest writes the access log record: info for success and client
// errors, warn for 5xx other than 500, error for 500; readiness checks
// that succeed (Consul's, every few seconds) only at debug.
func (s *Server) logRequest(r *http.Request, name string, rec *statusRecorder, start time.Time, err error) {
	logger := s.deps.Access
	if logger == nil {
		return
	}
	level := slog.LevelInfo
	switch {
	case rec.status == http.StatusInternalServerError:
		level = slog.LevelError
	case rec.status >= 500:
		level = slog.LevelWarn
	case name == "readyz" && rec.status < 300:
		level = slog.LevelDebug
	}
	ctx := r.Context()
	if !logger.Enabled(ctx, level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("method", r.Method),
		slog.String("route", name),
		slog.String("path", r.URL.Path),
		slog.Int("status", rec.status),
		slog.Int64("bytes", rec.bytes),
		slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
		slog.String("peer", r.RemoteAddr),
	}
	if r.URL.RawQuery != "" {
		// What was asked (a CQL2 filter, a bbox) is what an operator
		// looks for; credentials travel in headers, never here.
		attrs = append(attrs, slog.String("query", r.URL.RawQuery))
	}
	if err != nil {
		attrs = append(attrs, slog.String("message", errorMessage(err)))
	}
	logger.LogAttrs(ctx, level, "http", attrs...)
}

// readyz answers 200 while the database answers and 503 otherwise; Consul's
// HTTP check and load balancers use it.
func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) error {
	if !s.ready.Load() {
		return geo.Errorf(geo.Unavailable, "not ready: the database does not answer (or its replica lags), or the server is shutting down")
	}
	w.Header().Set("Content-Type", "application/json")
	_, err := w.Write([]byte(`{"status":"ready"}` + "\n"))
	return err
}
