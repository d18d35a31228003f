// Package grpcapi serves geo.SearchService over gRPC: request validation at
// the edge, proto <-> domain mapping, page tokens, interceptors, and the one
// table that maps domain errors to gRPC status codes.
package grpcapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/protobuf/types/known/timestamppb"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/core"
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
	// AllowOpenWrites lets the write RPCs (Import, DeleteThings,
	// DeleteCollection) run without a token when no token is set and
	// LISTEN_ADDR is not a loopback address. Without it they are refused
	// there (PERMISSION_DENIED), so that a server reachable from other
	// hosts never lets anyone who reaches it replace or delete its data
	// unless the operator said so. On a loopback listener they are open
	// without a token, as before.
	AllowOpenWrites bool `env:"ALLOW_OPEN_WRITES, default=false"`
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
	// MemoryIndexes, when set, lists the collections of the instance's
	// in-memory index.
	MemoryIndexes func() []geo.MemoryIndex
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

// Server implements searchv1.SearchServiceServer on a geo.SearchService.
type Server struct {
	searchv1.UnimplementedSearchServiceServer
	svc     geo.SearchService
	info    Info
	metrics metrics.Metrics
	// cfg is the configuration in effect: the handlers read their limits
	// from it at each call, so every live setting of Config applies
	// without being copied anywhere (Apply).
	cfg     atomic.Pointer[Config]
	imports atomic.Int64 // in progress
	// rejected holds the configuration values refused, for Monitor.
	rejected atomic.Pointer[[]RejectedSetting]
	// tracker and events serve Track and WatchEvents; nil: fencing is off.
	tracker *geo.Tracker
	// fenceStatus is the geofencing Monitor reports (SetFenceStatus).
	fenceStatus func(context.Context) (geo.FenceStatus, bool)
	events      geo.EventSource
}

// NewServer returns a Server answering from svc. It reports search.results
// and import.{imported,repaired,rejected} to m (metrics.Nop{} for none).
func NewServer(svc geo.SearchService, cfg Config, info Info, m metrics.Metrics) *Server {
	s := &Server{svc: svc, info: info, metrics: m}
	s.Apply(cfg)
	return s
}

// Apply makes cfg the configuration of calls that start from now on: the
// live settings of Config (live:"true") take effect, the others are read at
// start only.
func (s *Server) Apply(cfg Config) { s.cfg.Store(&cfg) }

// Config returns the configuration in effect.
func (s *Server) Config() Config { return *s.cfg.Load() }

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
	q.MaxBytes = s.cfg.Load().MaxPageBytes
	page, err := s.svc.Search(ctx, q)
	if err != nil {
		return nil, err
	}
	resp := &searchv1.SearchResponse{Things: make([]*searchv1.Thing, 0, len(page.Things)), TotalSize: totalSize(page.Total)}
	for _, t := range page.Things {
		pt, err := thingMessage(t, &sh)
		if err != nil {
			return nil, err
		}
		resp.Things = append(resp.Things, pt)
	}
	if page.Next != nil {
		resp.NextPageToken = geo.EncodeSortedPageToken(q.Filter, q.SortBy, *page.Next)
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
	guard := newStallGuard(stream, s.cfg.Load().StreamSendTimeout)
	defer guard.close()
	sortBy, err := geo.ParseSortBy(req.GetSortBy(), "sort_by")
	if err != nil {
		return err
	}
	q := geo.Query{Filter: filter, Limit: streamBatch, MaxBytes: streamBatchBytes, IncludeGeometry: sh.includeGeometry, Output: sh.output, SortBy: sortBy}
	for {
		page, err := s.svc.Search(ctx, q)
		if err != nil {
			return err
		}
		s.metrics.Count("search.results", int64(len(page.Things)))
		for _, t := range page.Things {
			pt, err := thingMessage(t, &sh)
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
	if s.info.MemoryIndexes != nil {
		for _, m := range s.info.MemoryIndexes() {
			resp.MemoryIndexes = append(resp.MemoryIndexes, memoryIndexToProto(m))
		}
	}
	if s.fenceStatus != nil {
		if f, ok := s.fenceStatus(ctx); ok {
			resp.Geofence = &searchv1.GeofenceStatus{PositionsConsumed: f.PositionsConsumed, PositionsRejected: f.PositionsRejected,
				PositionsStale: f.PositionsStale, Events: f.Events, EventsPublished: f.EventsPublished, ConsumerLag: f.ConsumerLag,
				DevicesTracked: f.DevicesTracked, Outbox: f.Outbox}
		}
	}
	return resp, nil
}

func memoryIndexToProto(m geo.MemoryIndex) *searchv1.MemoryIndex {
	out := &searchv1.MemoryIndex{Collection: m.Collection, InMemory: m.InMemory, Reason: m.Reason,
		Bytes: m.Bytes, Things: int64(m.Things), Vertices: int64(m.Vertices), Snapshot: m.Snapshot}
	if m.InMemory {
		out.Lsn = fmt.Sprintf("%X/%X", uint64(m.Position)>>32, uint32(m.Position))
	}
	if !m.UpdatedAt.IsZero() {
		out.UpdatedAt = timestamppb.New(m.UpdatedAt)
	}
	return out
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
	sortBy, err := geo.ParseSortBy(req.GetSortBy(), "sort_by")
	if err != nil {
		return geo.Query{}, shape{}, err
	}
	lim := s.cfg.Load()
	size, err := core.PageSize(int64(req.GetPageSize()), "page_size", lim.DefaultPageSize, lim.MaxPageSize)
	if err != nil {
		return geo.Query{}, shape{}, err
	}
	q := geo.Query{Filter: filter, Limit: size, IncludeGeometry: sh.includeGeometry, Output: sh.output,
		WithTotal: req.GetShowTotalSize(), SortBy: sortBy}
	if tok := req.GetPageToken(); tok != "" {
		c, err := geo.DecodeSortedPageToken(tok, filter, sortBy, "page_token")
		if err != nil {
			return geo.Query{}, shape{}, err
		}
		q.After = &c
	}
	return q, sh, nil
}

// searchShape validates the shaping fields of a search request.
func searchShape(req *searchv1.SearchRequest) (shape, error) {
	sh, err := shapeOf(req.GetReadMask(), req.GetIncludeGeometry(), req.GetSimplifyTolerance(), req.CoordinatePrecision)
	if err != nil {
		return sh, err
	}
	if keys := req.GetProperties(); len(keys) > 0 {
		if err := geo.ValidatePropertySelection(keys, "properties"); err != nil {
			return sh, err
		}
		sh.properties = keys
	}
	return sh, nil
}
