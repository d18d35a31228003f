package grpcapi

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/geosearch/search/internal/core"
	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/metrics"
)

// toStatus maps err to the status the client sees, by core's one table
// of codes. Errors that already carry a status (from the transport) keep
// it; anything else unclassified is Internal with a message that reveals
// nothing. internal reports whether the full error must be logged.
func toStatus(err error) (st *status.Status, internal bool) {
	o, ok := core.Classify(err)
	if !ok {
		if s, isStatus := status.FromError(err); isStatus {
			return s, s.Code() == codes.Internal || s.Code() == codes.Unknown
		}
	}
	return status.New(o.GRPC, o.Message), o.Internal
}

func mapError(ctx context.Context, logger *slog.Logger, method string, err error) error {
	if err == nil {
		return nil
	}
	st, internal := toStatus(err)
	if internal {
		logger.ErrorContext(ctx, "internal error", "method", method, "error", err.Error())
	}
	return st.Err()
}

func mapErrorsUnary(logger *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		resp, err := handler(ctx, req)
		return resp, mapError(ctx, logger, info.FullMethod, err)
	}
}

func mapErrorsStream(logger *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return mapError(ss.Context(), logger, info.FullMethod, handler(srv, ss))
	}
}

// panicError turns a recovered panic into an Internal error with the stack,
// for the log.
func panicError(r any) error {
	return geo.Wrap(geo.Internal, fmt.Errorf("panic: %v\n%s", r, debug.Stack()), "internal error")
}

func recoverUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if r := recover(); r != nil {
			resp, err = nil, panicError(r)
		}
	}()
	return handler(ctx, req)
}

func recoverStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = panicError(r)
		}
	}()
	return handler(srv, ss)
}

// healthPrefix marks the health service's methods: their successful calls
// (Consul checks every few seconds) are logged at debug level only.
const healthPrefix = "/grpc.health.v1.Health/"

func logRPC(ctx context.Context, logger *slog.Logger, method string, start time.Time, err error) {
	code := status.Code(err)
	level := slog.LevelInfo
	switch code {
	case codes.OK:
		if strings.HasPrefix(method, healthPrefix) {
			level = slog.LevelDebug
		}
	case codes.Canceled, codes.InvalidArgument, codes.NotFound, codes.AlreadyExists:
	case codes.Internal, codes.Unknown, codes.DataLoss:
		level = slog.LevelError
	default:
		level = slog.LevelWarn
	}
	h := logger.Handler()
	if !h.Enabled(ctx, level) {
		return
	}
	now := time.Now()
	// The record is built by hand with pc 0, as slog's docs show for
	// wrappers: the access log has no source line, and Logger.LogAttrs
	// would walk the stack (runtime.Callers) on every call to find it.
	r := slog.NewRecord(now, level, "rpc", 0)
	r.AddAttrs(
		slog.String("method", method),
		slog.String("code", code.String()),
		slog.Float64("duration_ms", float64(now.Sub(start).Microseconds())/1000),
	)
	if p, ok := peer.FromContext(ctx); ok {
		r.AddAttrs(slog.String("peer", p.Addr.String()))
	}
	if err != nil {
		r.AddAttrs(slog.String("message", status.Convert(err).Message()))
	}
	_ = h.Handle(ctx, r) // a handler that fails to write has nowhere to report it
}

func logUnary(logger *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		logRPC(ctx, logger, info.FullMethod, start, err)
		return resp, err
	}
}

func logStream(logger *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		start := time.Now()
		err := handler(srv, ss)
		logRPC(ss.Context(), logger, info.FullMethod, start, err)
		return err
	}
}

// methodName turns "/search.v1.SearchService/Search" into
// "SearchService.Search": short, and a valid Graphite path.
func methodName(fullMethod string) string {
	service, method, ok := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	if !ok {
		return "unknown"
	}
	if i := strings.LastIndexByte(service, '.'); i >= 0 {
		service = service[i+1:]
	}
	return service + "." + method
}

// methodMetrics are one method's metric names, built once per method
// rather than on every call.
type methodMetrics struct {
	requests, latency, errors string // errors: the prefix of errors.<Code>
}

// metricNames caches methodMetrics by full method name. Only registered
// methods reach the interceptors (grpc-go answers others itself), so it
// holds one entry per method of the services served.
type metricNames struct{ m sync.Map }

func (n *metricNames) of(fullMethod string) *methodMetrics {
	if v, ok := n.m.Load(fullMethod); ok {
		return v.(*methodMetrics)
	}
	name := "grpc." + methodName(fullMethod)
	v, _ := n.m.LoadOrStore(fullMethod, &methodMetrics{requests: name + ".requests", latency: name + ".latency", errors: name + ".errors."})
	return v.(*methodMetrics)
}

// measure reports one finished RPC: grpc.<Method>.requests,
// grpc.<Method>.latency and, on failure, grpc.<Method>.errors.<Code>.
func measure(m metrics.Metrics, names *methodMetrics, start time.Time, err error) {
	m.Count(names.requests, 1)
	m.Timing(names.latency, time.Since(start))
	if err != nil {
		m.Count(names.errors+status.Code(err).String(), 1)
	}
}

func measureUnary(m metrics.Metrics) grpc.UnaryServerInterceptor {
	var names metricNames
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		measure(m, names.of(info.FullMethod), start, err)
		return resp, err
	}
}

func measureStream(m metrics.Metrics) grpc.StreamServerInterceptor {
	var names metricNames
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		start := time.Now()
		err := handler(srv, ss)
		measure(m, names.of(info.FullMethod), start, err)
		return err
	}
}

// defaultDeadline gives a unary call whose client set no deadline one of d,
// so that no call can hold a connection and a database query forever.
func defaultDeadline(d time.Duration) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, d)
			defer cancel()
		}
		return handler(ctx, req)
	}
}
