package server

import (
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"

	"github.com/geosearch/search/internal/grpcapi"
	"github.com/geosearch/search/internal/httpapi"
	"github.com/geosearch/search/internal/memindex"
	"github.com/geosearch/search/internal/postgis"
	"github.com/geosearch/search/internal/statsd"
)

// Parts are a Server's components, for the tests (package server_test)
// that read back what they hold: the settings applied live, the services
// registered, the pool's gauges.
type Parts struct {
	Config  Config
	GRPC    *grpc.Server
	API     *grpcapi.Server
	HTTP    *httpapi.Server // nil without HTTP_LISTEN_ADDR
	Auth    *grpcapi.Auth
	Level   *slog.LevelVar
	StatsD  *statsd.Client
	Timeout *postgis.StatementTimeout
	// WriteTimeout is the writing pool's statement timeout, and Writer
	// that pool.
	WriteTimeout *postgis.StatementTimeout
	Writer       *pgxpool.Pool
	Replica      *postgis.Replica
	Index        *memindex.Registry
	Search       *postgis.SearchService
}

// Parts returns s's components.
func (s *Server) Parts() Parts {
	return Parts{Config: s.cfg, GRPC: s.grpc, API: s.api, HTTP: s.http, Auth: s.auth, Level: s.level, StatsD: s.statsd,
		Timeout: s.timeout, WriteTimeout: s.writeTimeout, Writer: s.writer, Replica: s.replica, Index: s.index, Search: s.svc}
}
