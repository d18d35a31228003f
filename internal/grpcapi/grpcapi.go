// Package grpcapi serves geo.SearchService over gRPC: request validation at
// the edge, proto <-> domain mapping, page tokens, interceptors, and the one
// table that maps domain errors to gRPC status codes.
package grpcapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/metrics"
)

// Config is the gRPC server's configuration, read from the environment.
type Config struct {
	// ListenAddr is the TCP address the server listens on.
	// Essential: an invalid one stops the process instead of falling back
	// to the default (see internal/config).
	ListenAddr string `env:"LISTEN_ADDR, default=:50051" essential:"true"`
	// DefaultPageSize is used when a request's page_size is 0.
	DefaultPageSize int `env:"DEFAULT_PAGE_SIZE, default=50" live:"true"`
	// MaxPageSize caps page_size; larger requests are served at this size.
	MaxPageSize int `env:"MAX_PAGE_SIZE, default=1000" live:"true"`
	// MaxPageBytes ends a page of Search (and of HTTP items) early, with a
	// next page token, once its things hold about this many bytes, so that
	// a page of large geometries fits a client's default receive limit
	// (4 MiB in grpc-go) and the server holds no more per request.
	MaxPageBytes int `env:"MAX_PAGE_BYTES, default=2097152" live:"true"`
	// MaxMessageBytes is the largest request message accepted; one import
	// message carries one feature, so this bounds a feature's GeoJSON size.
	MaxMessageBytes int `env:"GRPC_MAX_MESSAGE_BYTES, default=67108864"`
	// MaxQueryMessageBytes is the largest request message of every method
	// but Import (a search with an area, a batch of points): larger ones
	// are refused with RESOURCE_EXHAUSTED before they are parsed.
	MaxQueryMessageBytes int `env:"GRPC_MAX_QUERY_MESSAGE_BYTES, default=8388608"`
	// MaxFeatureVertices bounds the vertices of one imported feature.
	MaxFeatureVertices int `env:"MAX_FEATURE_VERTICES, default=1000000" live:"true"`
	// MaxImportFeatures bounds the features of one import stream; a larger
	// import fails whole (nothing is stored) and should be split.
	MaxImportFeatures int `env:"MAX_IMPORT_FEATURES, default=1000000" live:"true"`
	// MaxConcurrentImports bounds the imports in progress on this instance;
	// one more is refused at once with RESOURCE_EXHAUSTED. With the writing
	// pool's DB_MAX_WRITE_CONNS at least this large, no import waits for a
	// connection.
	MaxConcurrentImports int `env:"MAX_CONCURRENT_IMPORTS, default=2" live:"true"`
	// ImportIdleTimeout ends an import whose client sends no message for
	// this long (DEADLINE_EXCEEDED; nothing is stored): a stalled client
	// holds its transaction no longer.
	ImportIdleTimeout time.Duration `env:"IMPORT_IDLE_TIMEOUT, default=30s" live:"true"`
	// ImportMaxDuration ends an import that has not finished after this
	// long (DEADLINE_EXCEEDED; nothing is stored), however steadily it sends.
	ImportMaxDuration time.Duration `env:"IMPORT_MAX_DURATION, default=15m" live:"true"`
	// MaxConcurrentStreams bounds the RPCs in progress on one client
	// connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS); a client's
	// further calls wait on its side until one ends.
	MaxConcurrentStreams uint32 `env:"GRPC_MAX_CONCURRENT_STREAMS, default=100"`
	// StreamWorkers is the number of goroutines kept to run RPC handlers
	// (grpc.NumStreamWorkers); a call that finds them all busy gets a
	// goroutine of its own, as every call does with 0. A kept goroutine's
	// stack has already grown through the interceptors, pgx and the
	// handler, so a call does not pay for growing a fresh one (measured in
	// docs/BENCHMARKS.md).
	StreamWorkers uint32 `env:"GRPC_STREAM_WORKERS, default=32"`
	// KeepaliveTime is how long a connection may be silent before the
	// server pings it, and KeepaliveTimeout how long it waits for the answer
	// before closing it: a client that vanished without closing its TCP
	// connection frees its streams within their sum.
	KeepaliveTime    time.Duration `env:"GRPC_KEEPALIVE_TIME, default=1m"`
	KeepaliveTimeout time.Duration `env:"GRPC_KEEPALIVE_TIMEOUT, default=20s"`
	// DefaultTimeout is the deadline of a unary call whose client set none.
	DefaultTimeout time.Duration `env:"RPC_DEFAULT_TIMEOUT, default=30s"`
	// StreamSendTimeout ends a SearchStream whose client has not made room
	// for the next message (stopped reading) for this long.
	StreamSendTimeout time.Duration `env:"STREAM_SEND_TIMEOUT, default=30s" live:"true"`
	// LocateBatchSize is the most points a Locate stream answers with one
	// database statement. 100: the database's CPU per point is flat from
	// about 100 points up, while a batch's latency and memory grow with it
	// (docs/BENCHMARKS.md, "Locate batch size").
	LocateBatchSize int `env:"LOCATE_BATCH_SIZE, default=100" live:"true"`
	// LocateBatchWait is how long a Locate batch waits for more points
	// after its first one before it is sent to the database: a lone point
	// is delayed by at most this.
	LocateBatchWait time.Duration `env:"LOCATE_BATCH_WAIT, default=2ms" live:"true"`
	// ShutdownTimeout bounds the drain of in-flight RPCs at shutdown.
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT, default=15s"`
	// HealthInterval is how often readiness (the database) is checked.
	HealthInterval time.Duration `env:"HEALTH_CHECK_INTERVAL, default=2s"`

	// TLSCertFile and TLSKeyFile, set together, turn on TLS.
	TLSCertFile string `env:"TLS_CERT_FILE"`
	TLSKeyFile  string `env:"TLS_KEY_FILE"`
	// TLSClientCAFile, when set, requires every client to present a
	// certificate signed by one of its CAs (mutual TLS).
	TLSClientCAFile string `env:"TLS_CLIENT_CA_FILE"`
	// ReadTokens, when set, are the bearer tokens reads need (a write token
	// reads too); comma-separated, so that a new one can be added before the
	// old one is removed.
	ReadTokens []string `env:"READ_TOKENS" secret:"true" live:"true"`
	// WriteTokens are the bearer tokens Import needs. Once any token is set,
	// Import needs one of these.
	WriteTokens []string `env:"WRITE_TOKENS" secret:"true" live:"true"`
}

// FollowDefaults lets a page size left at its default fit the one that was
// set (isSet says which were): the default page size never exceeds the
// maximum (AIP-158), and a maximum left unset rises to a default set above
// it. So MAX_PAGE_SIZE=5 alone is valid, and so is DEFAULT_PAGE_SIZE=2000.
func (c *Config) FollowDefaults(isSet func(name string) bool) {
	switch {
	case !isSet("DEFAULT_PAGE_SIZE") && c.DefaultPageSize > c.MaxPageSize && c.MaxPageSize >= 1:
		c.DefaultPageSize = c.MaxPageSize
	case !isSet("MAX_PAGE_SIZE") && c.MaxPageSize < c.DefaultPageSize:
		c.MaxPageSize = c.DefaultPageSize
	}
}

// Validate reports every invalid setting.
func (c Config) Validate() error {
	var errs []error
	check := func(bad bool, format string, args ...any) {
		if bad {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(c.ListenAddr == "", "LISTEN_ADDR must not be empty")
	check(c.DefaultPageSize < 1, "DEFAULT_PAGE_SIZE must be at least 1, got %d", c.DefaultPageSize)
	check(c.MaxPageSize < c.DefaultPageSize, "MAX_PAGE_SIZE (%d) must be at least DEFAULT_PAGE_SIZE (%d)", c.MaxPageSize, c.DefaultPageSize)
	check(c.MaxPageBytes < 64<<10, "MAX_PAGE_BYTES must be at least 65536, got %d", c.MaxPageBytes)
	check(c.MaxMessageBytes < 1<<20, "GRPC_MAX_MESSAGE_BYTES must be at least 1048576, got %d", c.MaxMessageBytes)
	check(c.MaxQueryMessageBytes < 1<<20, "GRPC_MAX_QUERY_MESSAGE_BYTES must be at least 1048576, got %d", c.MaxQueryMessageBytes)
	check(c.MaxFeatureVertices < 4, "MAX_FEATURE_VERTICES must be at least 4, got %d", c.MaxFeatureVertices)
	check(c.MaxImportFeatures < 1, "MAX_IMPORT_FEATURES must be at least 1, got %d", c.MaxImportFeatures)
	check(c.MaxConcurrentImports < 1, "MAX_CONCURRENT_IMPORTS must be at least 1, got %d", c.MaxConcurrentImports)
	check(c.ImportIdleTimeout <= 0, "IMPORT_IDLE_TIMEOUT must be positive, got %s", c.ImportIdleTimeout)
	check(c.ImportMaxDuration <= 0, "IMPORT_MAX_DURATION must be positive, got %s", c.ImportMaxDuration)
	check(c.MaxConcurrentStreams < 1, "GRPC_MAX_CONCURRENT_STREAMS must be at least 1, got %d", c.MaxConcurrentStreams)
	check(c.StreamWorkers > maxStreamWorkers, "GRPC_STREAM_WORKERS must be at most %d, got %d", maxStreamWorkers, c.StreamWorkers)
	check(c.KeepaliveTime < keepaliveMinTime, "GRPC_KEEPALIVE_TIME must be at least %s, got %s", keepaliveMinTime, c.KeepaliveTime)
	check(c.KeepaliveTimeout <= 0, "GRPC_KEEPALIVE_TIMEOUT must be positive, got %s", c.KeepaliveTimeout)
	check(c.DefaultTimeout <= 0, "RPC_DEFAULT_TIMEOUT must be positive, got %s", c.DefaultTimeout)
	check(c.StreamSendTimeout <= 0, "STREAM_SEND_TIMEOUT must be positive, got %s", c.StreamSendTimeout)
	check(c.LocateBatchSize < 1 || c.LocateBatchSize > maxLocateBatch, "LOCATE_BATCH_SIZE must be within [1, %d], got %d", maxLocateBatch, c.LocateBatchSize)
	check(c.LocateBatchWait < 0 || c.LocateBatchWait > time.Second, "LOCATE_BATCH_WAIT must be within [0, 1s], got %s", c.LocateBatchWait)
	check(c.ShutdownTimeout <= 0, "SHUTDOWN_TIMEOUT must be positive, got %s", c.ShutdownTimeout)
	check(c.HealthInterval <= 0, "HEALTH_CHECK_INTERVAL must be positive, got %s", c.HealthInterval)
	errs = append(errs, c.validateTLS()...)
	return errors.Join(errs...)
}

// Info describes the serving instance for Monitor.
type Info struct {
	InstanceID string
	Version    string
	Started    time.Time
}

// RejectedSetting is a configuration value the instance refused, as Monitor
// reports it.
type RejectedSetting struct {
	Variable, Key, Value, Reason string
}

// ClientServiceConfig is the gRPC service config clients of this API use:
// calls are balanced over every resolved instance, and the idempotent ones
// are retried on UNAVAILABLE, which lands them on another instance, and wait
// for a ready instance (waitForReady) instead of failing at once when none
// is: a moment with every instance restarting (envconsul restarts them all
// on a KV change) is waited out within the call's deadline, which then
// fails with the resolver's reason ("no healthy instance ..."). Import is
// neither retried nor waits: a client stream cannot be replayed. A client
// of one fixed address may prefer to fail fast: grpc.WaitForReady(false) as
// a call option wins over this.
const ClientServiceConfig = `{
  "loadBalancingConfig": [{"round_robin": {}}],
  "methodConfig": [{
    "name": [
      {"service": "search.v1.SearchService", "method": "Search"},
      {"service": "search.v1.SearchService", "method": "SearchStream"},
      {"service": "search.v1.SearchService", "method": "Monitor"},
      {"service": "search.v1.SearchService", "method": "GetThing"},
      {"service": "search.v1.SearchService", "method": "ListCollections"},
      {"service": "grpc.health.v1.Health"}
    ],
    "waitForReady": true,
    "retryPolicy": {
      "maxAttempts": 4, "initialBackoff": "0.05s", "maxBackoff": "1s",
      "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]
    }
  }]
}`

// streamBatch is how many things SearchStream fetches per database query: a
// slow reader holds no database connection between batches. streamBatchBytes
// ends a batch early once its things hold that many bytes, so that a stream
// of large geometries holds about that much, not streamBatch of them.
const (
	streamBatch      = 500
	streamBatchBytes = 4 << 20
)

// keepaliveMinTime is the enforcement policy: a client may ping at most
// this often (more often, and the server closes its connection with
// GOAWAY "too_many_pings"), also while it has no call in progress.
const keepaliveMinTime = 10 * time.Second

// maxStreamWorkers caps GRPC_STREAM_WORKERS: each idle worker keeps its
// grown stack.
const maxStreamWorkers = 10000

// limits are the request limits that can change while serving.
type limits struct {
	defaultPageSize, maxPageSize, maxPageBytes, maxFeatureVertices int
	maxImportFeatures                                              int
	maxConcurrentImports, locateBatchSize                          int
	locateBatchWait                                                time.Duration
	streamSendTimeout, importIdleTimeout, importMaxDuration        time.Duration
}

// Server implements searchv1.SearchServiceServer on a geo.SearchService.
type Server struct {
	searchv1.UnimplementedSearchServiceServer
	svc     geo.SearchService
	info    Info
	metrics metrics.Metrics
	limits  atomic.Pointer[limits]
	imports atomic.Int64 // in progress
	// rejected holds the configuration values refused, for Monitor.
	rejected atomic.Pointer[[]RejectedSetting]
	// tracker and events serve Track and WatchEvents; nil: fencing is off.
	tracker *geo.Tracker
	events  geo.EventSource
}

// NewServer returns a Server answering from svc. It reports search.results
// and import.{imported,repaired,rejected} to m (metrics.Nop{} for none).
func NewServer(svc geo.SearchService, cfg Config, info Info, m metrics.Metrics) *Server {
	s := &Server{svc: svc, info: info, metrics: m}
	s.SetLimits(cfg)
	return s
}

// SetLimits applies cfg's page sizes and vertex limit to requests that
// start from now on. cfg must be valid.
func (s *Server) SetLimits(cfg Config) {
	s.limits.Store(&limits{
		defaultPageSize:      cfg.DefaultPageSize,
		maxPageSize:          cfg.MaxPageSize,
		maxPageBytes:         cfg.MaxPageBytes,
		maxFeatureVertices:   cfg.MaxFeatureVertices,
		maxImportFeatures:    cfg.MaxImportFeatures,
		maxConcurrentImports: cfg.MaxConcurrentImports,
		streamSendTimeout:    cfg.StreamSendTimeout,
		importIdleTimeout:    cfg.ImportIdleTimeout,
		importMaxDuration:    cfg.ImportMaxDuration,
		locateBatchSize:      cfg.LocateBatchSize,
		locateBatchWait:      cfg.LocateBatchWait,
	})
}

// ServerOptions returns the options every gRPC server of this service uses:
// TLS when configured, message size and per-connection stream limits, the
// keepalive policy, and the interceptor chains
// (logging outermost, then metrics, then error mapping, then authorization,
// then the per-method message limit (msglimit.go), then, for unary calls,
// the default deadline, then panic recovery, so that
// the log and the metrics see the final status code, refusals included).
// Internal errors are logged to logger; access gets one record per finished
// RPC (the server may batch its writes: it is on every request's path).
func ServerOptions(cfg Config, logger, access *slog.Logger, m metrics.Metrics, auth *Auth) ([]grpc.ServerOption, error) {
	limit := newLimitCodec(cfg)
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(cfg.MaxMessageBytes),
		grpc.ForceServerCodecV2(limit),
		grpc.MaxConcurrentStreams(cfg.MaxConcurrentStreams),
		grpc.NumStreamWorkers(cfg.StreamWorkers),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: cfg.KeepaliveTime, Timeout: cfg.KeepaliveTimeout}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: keepaliveMinTime, PermitWithoutStream: true}),
		grpc.ChainUnaryInterceptor(logUnary(access), measureUnary(m), mapErrorsUnary(logger), auth.unary, limit.unary, defaultDeadline(cfg.DefaultTimeout), recoverUnary),
		grpc.ChainStreamInterceptor(logStream(access), measureStream(m), mapErrorsStream(logger), auth.stream, limit.stream, recoverStream),
	}
	creds, err := ServerCredentials(cfg)
	if err != nil {
		return nil, err
	}
	if creds != nil {
		opts = append(opts, grpc.Creds(creds))
	}
	return opts, nil
}

// Search returns one page of matches.
func (s *Server) Search(ctx context.Context, req *searchv1.SearchRequest) (*searchv1.SearchResponse, error) {
	q, sh, err := s.query(req)
	if err != nil {
		return nil, err
	}
	q.MaxBytes = s.limits.Load().maxPageBytes
	page, err := s.svc.Search(ctx, q)
	if err != nil {
		return nil, err
	}
	resp := &searchv1.SearchResponse{Things: make([]*searchv1.Thing, 0, len(page.Things)), TotalSize: totalSize(page.Total)}
	for _, t := range page.Things {
		pt, err := thingToProto(t, &sh)
		if err != nil {
			return nil, err
		}
		resp.Things = append(resp.Things, pt)
	}
	if page.Next != nil {
		resp.NextPageToken = geo.EncodePageToken(q.Filter, *page.Next)
	}
	s.metrics.Count("search.results", int64(len(resp.Things)))
	return resp, nil
}

// SearchStream sends every match, fetching them in batches. Sending blocks
// under gRPC flow control when the client reads slowly, so a stream holds at
// most one batch; the loop ends when the client cancels, and the stream ends
// with DEADLINE_EXCEEDED when the client makes no room for a message for
// STREAM_SEND_TIMEOUT (see stallGuard).
func (s *Server) SearchStream(req *searchv1.SearchRequest, stream grpc.ServerStreamingServer[searchv1.Thing]) error {
	filter, err := filterFromProto(req)
	if err != nil {
		return err
	}
	sh, err := searchShape(req)
	if err != nil {
		return err
	}
	ctx := stream.Context()
	guard := newStallGuard(stream, s.limits.Load().streamSendTimeout)
	defer guard.close()
	q := geo.Query{Filter: filter, Limit: streamBatch, MaxBytes: streamBatchBytes, IncludeGeometry: sh.includeGeometry, Output: sh.output}
	for {
		page, err := s.svc.Search(ctx, q)
		if err != nil {
			return err
		}
		s.metrics.Count("search.results", int64(len(page.Things)))
		for _, t := range page.Things {
			pt, err := thingToProto(t, &sh)
			if err != nil {
				return err
			}
			if err := guard.send(pt); err != nil {
				return err
			}
		}
		if page.Next == nil {
			return nil
		}
		q.After = page.Next
	}
}

// Import decodes each message at the edge; features that fail validation are
// rejected here, the rest go to the store in one transaction. At most
// MAX_CONCURRENT_IMPORTS run at once; an import ends with nothing stored
// when its client sends nothing for IMPORT_IDLE_TIMEOUT or it runs longer
// than IMPORT_MAX_DURATION.
//
// The import's options (collection, replace) travel in the first message,
// as a typed field of the contract rather than request metadata: they are
// documented and checked by buf breaking with the rest of the API, every
// language's generated code has them, they are known before the first
// feature is written, and they cannot disagree between messages because a
// later message carrying them fails the import.
func (s *Server) Import(stream grpc.ClientStreamingServer[searchv1.ImportRequest, searchv1.ImportResponse]) error {
	lim := s.limits.Load()
	if n := s.imports.Add(1); n > int64(lim.maxConcurrentImports) {
		s.imports.Add(-1)
		return geo.Errorf(geo.Busy, "this instance runs as many imports as it allows (MAX_CONCURRENT_IMPORTS=%d); nothing was read or stored: retry later", lim.maxConcurrentImports)
	}
	defer s.imports.Add(-1)
	ctx, cancel := context.WithTimeoutCause(stream.Context(), lim.importMaxDuration, geo.Errorf(geo.Timeout,
		"the import did not finish within %s (IMPORT_MAX_DURATION); nothing was stored: split it into smaller imports", lim.importMaxDuration))
	defer cancel()
	src := newImportSource(stream, lim)
	defer src.close()
	opts, err := src.options(ctx)
	if err == nil {
		opts, err = opts.Normalize()
	}
	var res geo.ImportResult
	if err == nil {
		res, err = s.svc.Import(ctx, opts, src)
	}
	if err != nil {
		var de *geo.Error
		if cause := context.Cause(ctx); ctx.Err() != nil && errors.As(cause, &de) {
			return cause // the import's own deadline, not the client's
		}
		return err
	}
	res.Rejected = append(res.Rejected, src.rejected...)
	slices.SortStableFunc(res.Rejected, func(a, b geo.Problem) int { return a.Index - b.Index })
	s.metrics.Count("import.imported", int64(res.Imported))
	s.metrics.Count("import.repaired", int64(res.Repaired))
	s.metrics.Count("import.rejected", int64(len(res.Rejected)))
	return stream.SendAndClose(importResultToProto(res))
}

// importSource adapts the import stream to geo.FeatureSource. The stream is
// read on a goroutine of its own, so that Next can give up on a client that
// sends nothing for the idle timeout (a Recv cannot be interrupted: it ends
// only with the RPC); that goroutine holds at most one message and ends
// when the RPC does.
type importSource struct {
	msgs        chan received
	done        chan struct{}
	limits      geo.Limits
	maxFeatures int
	idle        time.Duration
	first       *searchv1.ImportRequest // the first message's feature, not yet returned
	eof         bool                    // the stream has ended
	next        int
	rejected    []geo.Problem
}

type received struct {
	req *searchv1.ImportRequest
	err error
}

func newImportSource(stream grpc.ClientStreamingServer[searchv1.ImportRequest, searchv1.ImportResponse], lim *limits) *importSource {
	src := &importSource{
		msgs:        make(chan received),
		done:        make(chan struct{}),
		limits:      geo.Limits{MaxVertices: lim.maxFeatureVertices},
		maxFeatures: lim.maxImportFeatures,
		idle:        lim.importIdleTimeout,
	}
	go func() {
		for {
			req, err := stream.Recv()
			select {
			case src.msgs <- received{req, err}:
			case <-src.done:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return src
}

// close lets the reading goroutine end; call it when the handler returns.
func (src *importSource) close() { close(src.done) }

// recv returns the next message, io.EOF after the last, or an error when
// the client sends nothing for the idle timeout or ctx ends.
func (src *importSource) recv(ctx context.Context) (*searchv1.ImportRequest, error) {
	if src.first != nil {
		req := src.first
		src.first = nil
		return req, nil
	}
	if src.eof {
		return nil, io.EOF
	}
	idle := time.NewTimer(src.idle)
	defer idle.Stop()
	var r received
	select {
	case r = <-src.msgs:
	case <-idle.C:
		return nil, geo.Errorf(geo.Timeout,
			"no import message arrived for %s (IMPORT_IDLE_TIMEOUT); nothing was stored", src.idle)
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
	if errors.Is(r.err, io.EOF) {
		src.eof = true
	}
	return r.req, r.err
}

// options reads the first message and returns its options (none: the
// defaults). Its feature, if it carries one, is the first Next returns.
func (src *importSource) options(ctx context.Context) (geo.ImportOptions, error) {
	req, err := src.recv(ctx)
	if errors.Is(err, io.EOF) {
		return geo.ImportOptions{}, nil
	}
	if err != nil {
		return geo.ImportOptions{}, err
	}
	var opts geo.ImportOptions
	if o := req.GetOptions(); o != nil {
		opts = geo.ImportOptions{Collection: o.GetCollection(), Replace: o.GetReplace()}
	}
	if !optionsOnly(req) {
		src.first = req
	}
	return opts, nil
}

// optionsOnly reports whether req carries options and no feature.
func optionsOnly(req *searchv1.ImportRequest) bool {
	return req.GetOptions() != nil && req.GetName() == "" && req.GetKey() == "" &&
		req.GetProperties() == nil && req.GetGeometryGeojson() == ""
}

func (src *importSource) Next(ctx context.Context) (geo.Feature, error) {
	for {
		first := src.first != nil
		req, err := src.recv(ctx)
		if err != nil {
			return geo.Feature{}, err
		}
		if req.GetOptions() != nil && !first {
			return geo.Feature{}, geo.Errorf(geo.Invalid, "import options may only be sent in the first message; feature %d carries them, so nothing was stored", src.next)
		}
		if src.next >= src.maxFeatures {
			return geo.Feature{}, geo.Errorf(geo.TooLarge,
				"the import has more than %d features (MAX_IMPORT_FEATURES); nothing was stored: split it into smaller imports", src.maxFeatures)
		}
		index := src.next
		src.next++
		f, err := geo.DecodeFeature(geo.RawFeature{
			Index:        index,
			Key:          req.GetKey(),
			Name:         req.GetName(),
			Properties:   req.GetProperties().AsMap(),
			GeometryJSON: []byte(req.GetGeometryGeojson()),
		}, src.limits)
		if err != nil {
			src.rejected = append(src.rejected, geo.Problem{Index: index, Name: req.GetName(), Reason: geo.ErrorMessage(err)})
			continue
		}
		return f, nil
	}
}

// Monitor reports the store's counts and this instance.
func (s *Server) Monitor(ctx context.Context, _ *searchv1.MonitorRequest) (*searchv1.MonitorResponse, error) {
	st, err := s.svc.Stats(ctx)
	if err != nil {
		return nil, err
	}
	resp := &searchv1.MonitorResponse{
		NThings:       st.Things,
		NParts:        st.Parts,
		InstanceId:    s.info.InstanceID,
		Version:       s.info.Version,
		UptimeSeconds: time.Since(s.info.Started).Seconds(),
	}
	if rs := s.rejected.Load(); rs != nil {
		for _, r := range *rs {
			resp.RejectedSettings = append(resp.RejectedSettings, &searchv1.RejectedSetting{
				Variable: r.Variable, Key: r.Key, Value: r.Value, Reason: r.Reason})
		}
	}
	return resp, nil
}

// SetRejectedSettings replaces the configuration values Monitor reports as
// refused.
func (s *Server) SetRejectedSettings(rs []RejectedSetting) {
	s.rejected.Store(&rs)
}

// GetThing returns one thing by id, or by collection and key.
func (s *Server) GetThing(ctx context.Context, req *searchv1.GetThingRequest) (*searchv1.Thing, error) {
	sh, err := shapeOf(req.GetReadMask(), req.GetIncludeGeometry(), 0, nil)
	if err != nil {
		return nil, err
	}
	t, err := s.svc.Get(ctx, geo.ThingRef{ID: req.GetId(), Collection: req.GetCollection(), Key: req.GetKey()}, sh.includeGeometry, sh.output)
	if err != nil {
		return nil, err
	}
	return thingToProto(t, &sh)
}

// DeleteThings deletes things by ids, or by keys within a collection.
func (s *Server) DeleteThings(ctx context.Context, req *searchv1.DeleteThingsRequest) (*searchv1.DeleteThingsResponse, error) {
	n, err := s.svc.Delete(ctx, geo.DeleteRequest{IDs: req.GetIds(), Collection: req.GetCollection(), Keys: req.GetKeys()})
	if err != nil {
		return nil, err
	}
	s.metrics.Count("delete.things", n)
	return &searchv1.DeleteThingsResponse{Deleted: n}, nil
}

// DeleteCollection deletes a collection and its things.
func (s *Server) DeleteCollection(ctx context.Context, req *searchv1.DeleteCollectionRequest) (*searchv1.DeleteCollectionResponse, error) {
	n, err := s.svc.DeleteCollection(ctx, req.GetName())
	if err != nil {
		return nil, err
	}
	s.metrics.Count("delete.things", n)
	return &searchv1.DeleteCollectionResponse{Deleted: n}, nil
}

// ListCollections lists every collection.
func (s *Server) ListCollections(ctx context.Context, _ *searchv1.ListCollectionsRequest) (*searchv1.ListCollectionsResponse, error) {
	cs, err := s.svc.Collections(ctx)
	if err != nil {
		return nil, err
	}
	resp := &searchv1.ListCollectionsResponse{Collections: make([]*searchv1.Collection, len(cs))}
	for i, c := range cs {
		resp.Collections[i] = collectionToProto(c)
	}
	return resp, nil
}

// query validates req and turns it into a domain query and the shape of
// its answers, applying the page size rules of AIP-158: 0 is the default,
// above the maximum is the maximum, negative is invalid. The page token is
// tied to the filter only: the shape (read_mask, geometry settings,
// show_total_size) may change from page to page.
func (s *Server) query(req *searchv1.SearchRequest) (geo.Query, shape, error) {
	filter, err := filterFromProto(req)
	if err != nil {
		return geo.Query{}, shape{}, err
	}
	sh, err := searchShape(req)
	if err != nil {
		return geo.Query{}, shape{}, err
	}
	q := geo.Query{Filter: filter, Limit: int(req.GetPageSize()), IncludeGeometry: sh.includeGeometry, Output: sh.output,
		WithTotal: req.GetShowTotalSize()}
	lim := s.limits.Load()
	switch {
	case q.Limit < 0:
		return geo.Query{}, shape{}, geo.Errorf(geo.Invalid, "page_size must not be negative, got %d", q.Limit)
	case q.Limit == 0:
		q.Limit = lim.defaultPageSize
	case q.Limit > lim.maxPageSize:
		q.Limit = lim.maxPageSize
	}
	if tok := req.GetPageToken(); tok != "" {
		c, err := geo.DecodePageToken(tok, filter, "page_token")
		if err != nil {
			return geo.Query{}, shape{}, err
		}
		q.After = &c
	}
	return q, sh, nil
}

// searchShape validates the shaping fields of a search request.
func searchShape(req *searchv1.SearchRequest) (shape, error) {
	return shapeOf(req.GetReadMask(), req.GetIncludeGeometry(), req.GetSimplifyTolerance(), req.CoordinatePrecision)
}
