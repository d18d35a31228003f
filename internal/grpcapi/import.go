package grpcapi

import (
	"context"
	"errors"
	"io"
	"time"

	"google.golang.org/grpc"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/batching"
	"github.com/geosearch/search/internal/geo"
)

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
	lim := s.cfg.Load()
	if n := s.imports.Add(1); n > int64(lim.MaxConcurrentImports) {
		s.imports.Add(-1)
		return geo.Errorf(geo.Busy, "this instance runs as many imports as it allows (MAX_CONCURRENT_IMPORTS=%d); nothing was read or stored: retry later", lim.MaxConcurrentImports)
	}
	defer s.imports.Add(-1)
	ctx, cancel := context.WithTimeoutCause(stream.Context(), lim.ImportMaxDuration, geo.Errorf(geo.Timeout,
		"the import did not finish within %s (IMPORT_MAX_DURATION); nothing was stored: split it into smaller imports", lim.ImportMaxDuration))
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
	res.Rejected.Merge(src.rejected)
	s.metrics.Count("import.imported", int64(res.Imported))
	s.metrics.Count("import.repaired", int64(res.Repaired))
	s.metrics.Count("import.rejected", int64(res.Rejected.Count))
	return stream.SendAndClose(importResultToProto(res))
}

// importSource adapts the import stream to geo.FeatureSource. The stream is
// read on a goroutine of its own (batching.Read), so that Next can give up
// on a client that sends nothing for the idle timeout (a Recv cannot be
// interrupted: it ends only with the RPC); that goroutine holds at most one
// message and ends when the RPC does.
type importSource struct {
	in          *batching.Reader[*searchv1.ImportRequest]
	limits      geo.Limits
	maxFeatures int
	idle        time.Duration
	first       *searchv1.ImportRequest // the first message's feature, not yet returned
	next        int
	rejected    geo.Problems
}

func newImportSource(stream grpc.ClientStreamingServer[searchv1.ImportRequest, searchv1.ImportResponse], lim *Config) *importSource {
	return &importSource{
		in: batching.Read(func(emit func(*searchv1.ImportRequest) error) error {
			return recvAll(stream.Recv, emit)
		}, batching.Options[*searchv1.ImportRequest]{}),
		limits:      geo.Limits{MaxVertices: lim.MaxFeatureVertices},
		maxFeatures: lim.MaxImportFeatures,
		idle:        lim.ImportIdleTimeout,
	}
}

// close lets the reading goroutine end; call it when the handler returns.
func (src *importSource) close() { src.in.Stop() }

// recv returns the next message, io.EOF after the last, or an error when
// the client sends nothing for the idle timeout or ctx ends.
func (src *importSource) recv(ctx context.Context) (*searchv1.ImportRequest, error) {
	if src.first != nil {
		req := src.first
		src.first = nil
		return req, nil
	}
	ctx, cancel := context.WithTimeoutCause(ctx, src.idle, geo.Errorf(geo.Timeout,
		"no import message arrived for %s (IMPORT_IDLE_TIMEOUT); nothing was stored", src.idle))
	defer cancel()
	return src.in.Next(ctx)
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
			src.rejected.Add(geo.Problem{Index: index, Name: req.GetName(), Reason: geo.ErrorMessage(err)})
			continue
		}
		return f, nil
	}
}
