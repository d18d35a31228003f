// Package postgis implements geo.SearchService on PostgreSQL with PostGIS
// through a pgx v5 pool. All SQL of the service lives here, as constants with
// bound parameters.
package postgis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/metrics"
)

// Config is the database configuration, read from the environment.
type Config struct {
	// URL is a libpq connection string or URL; it holds the password, so it
	// is never logged.
	URL string `env:"DATABASE_URL" secret:"true"`
	// WriteURL, when set, is the connection Import uses, so that URL can be
	// a role that may only read (see docs/SECURITY.md); also the default
	// of `search-server migrate`.
	WriteURL string `env:"DATABASE_WRITE_URL" secret:"true"`
	// MaxConns bounds the reading pool (gRPC's searches, Monitor,
	// consistency waits); 0 lets pgx choose (4 or the number of CPUs,
	// whichever is larger).
	MaxConns int32 `env:"DB_MAX_CONNS, default=0"`
	// MaxHTTPConns bounds the HTTP API's reading pool, a pool of its own:
	// however many HTTP requests run, gRPC calls never queue behind them
	// for a connection.
	MaxHTTPConns int32 `env:"DB_HTTP_MAX_CONNS, default=4"`
	// MaxWriteConns bounds the writing pool, which imports use and nothing
	// else reads from: however many imports run or stall, searches and the
	// readiness check keep every connection of theirs.
	MaxWriteConns int32 `env:"DB_MAX_WRITE_CONNS, default=2"`
	// StatementTimeout cancels any statement that runs longer, server side.
	StatementTimeout time.Duration `env:"DB_STATEMENT_TIMEOUT, default=10s" live:"true"`
	// WriteStatementTimeout is the same limit on the writing pool's
	// statements (imports, deletes). One import statement stores a batch,
	// or one large feature made valid, cut at the antimeridian and split
	// into parts: the 1:10m countries' largest took over 10 s on a loaded
	// 2-core machine, so writes get a bound of their own.
	WriteStatementTimeout time.Duration `env:"DB_WRITE_STATEMENT_TIMEOUT, default=2m" live:"true"`
	// ConnectTimeout bounds each connection attempt.
	ConnectTimeout time.Duration `env:"DB_CONNECT_TIMEOUT, default=5s"`
	// MaxReplicaLag is how far (in time) a hot standby on DATABASE_URL may
	// lag the primary on DATABASE_WRITE_URL before the instance is not
	// ready (health NOT_SERVING, out of Consul), and how long a read with
	// a consistency token waits for it; 0: the lag is not checked. See
	// docs/REPLICAS.md.
	MaxReplicaLag time.Duration `env:"MAX_REPLICA_LAG, default=30s" live:"true"`
}

// Validate reports every invalid setting.
func (c Config) Validate() error {
	var errs []error
	if c.URL == "" {
		errs = append(errs, errors.New("DATABASE_URL (or --database-url) is required"))
	} else if _, err := pgxpool.ParseConfig(c.URL); err != nil {
		// pgx's message may quote the URL, password included: say only where.
		errs = append(errs, errors.New("DATABASE_URL is not a valid PostgreSQL connection string"))
	}
	if c.WriteURL != "" {
		if _, err := pgxpool.ParseConfig(c.WriteURL); err != nil {
			errs = append(errs, errors.New("DATABASE_WRITE_URL is not a valid PostgreSQL connection string"))
		}
	}
	if c.MaxConns < 0 {
		errs = append(errs, fmt.Errorf("DB_MAX_CONNS must not be negative, got %d", c.MaxConns))
	}
	if c.MaxHTTPConns < 0 {
		errs = append(errs, fmt.Errorf("DB_HTTP_MAX_CONNS must not be negative, got %d", c.MaxHTTPConns))
	}
	if c.MaxWriteConns < 1 {
		errs = append(errs, fmt.Errorf("DB_MAX_WRITE_CONNS must be at least 1, got %d", c.MaxWriteConns))
	}
	if c.StatementTimeout < 0 {
		errs = append(errs, fmt.Errorf("DB_STATEMENT_TIMEOUT must not be negative, got %s", c.StatementTimeout))
	}
	if c.WriteStatementTimeout < 0 {
		errs = append(errs, fmt.Errorf("DB_WRITE_STATEMENT_TIMEOUT must not be negative, got %s", c.WriteStatementTimeout))
	}
	if c.ConnectTimeout < 0 {
		errs = append(errs, fmt.Errorf("DB_CONNECT_TIMEOUT must not be negative, got %s", c.ConnectTimeout))
	}
	if c.MaxReplicaLag < 0 {
		errs = append(errs, fmt.Errorf("MAX_REPLICA_LAG must not be negative, got %s", c.MaxReplicaLag))
	}
	return errors.Join(errs...)
}

// StatementTimeout is the server-side limit on every statement, changeable
// while running: a pooled connection picks up a new value the next time it
// is acquired (one SET on that connection, only when the value changed).
type StatementTimeout struct {
	d       atomic.Int64
	mu      sync.Mutex
	applied map[*pgx.Conn]int64
}

// NewStatementTimeout returns a StatementTimeout of d (0: none).
func NewStatementTimeout(d time.Duration) *StatementTimeout {
	st := &StatementTimeout{applied: map[*pgx.Conn]int64{}}
	st.d.Store(int64(d))
	return st
}

// Set changes the timeout for statements that start after connections are
// next acquired.
func (st *StatementTimeout) Set(d time.Duration) { st.d.Store(int64(d)) }

// Get returns the timeout statements get from now on.
func (st *StatementTimeout) Get() time.Duration { return time.Duration(st.d.Load()) }

// prepare brings conn's statement_timeout up to date before it is used.
func (st *StatementTimeout) prepare(ctx context.Context, conn *pgx.Conn) (bool, error) {
	want := st.d.Load()
	st.mu.Lock()
	have, known := st.applied[conn]
	st.mu.Unlock()
	if known && have == want {
		return true, nil
	}
	ms := strconv.FormatInt(time.Duration(want).Milliseconds(), 10)
	if _, err := conn.Exec(ctx, "SELECT set_config('statement_timeout', $1, false)", ms); err != nil {
		return false, err // the pool discards the connection and tries another
	}
	st.mu.Lock()
	st.applied[conn] = want
	st.mu.Unlock()
	return true, nil
}

func (st *StatementTimeout) forget(conn *pgx.Conn) {
	st.mu.Lock()
	delete(st.applied, conn)
	st.mu.Unlock()
}

// Open builds the reading pool, on DATABASE_URL with at most DB_MAX_CONNS
// connections, whose statements are limited by st. It does not wait for the
// database: the pool connects on first use, so a server can start while the
// database is down and report itself not ready until it answers.
func Open(ctx context.Context, cfg Config, applicationName string, st *StatementTimeout) (*pgxpool.Pool, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return open(ctx, cfg, "DATABASE_URL", cfg.URL, cfg.MaxConns, applicationName, st, "")
}

// OpenHTTP builds the HTTP API's reading pool, on DATABASE_URL with at
// most DB_HTTP_MAX_CONNS connections (0: pgx's default), apart from gRPC's.
func OpenHTTP(ctx context.Context, cfg Config, applicationName string, st *StatementTimeout) (*pgxpool.Pool, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return open(ctx, cfg, "DATABASE_URL", cfg.URL, cfg.MaxHTTPConns, applicationName+"/http", st, "")
}

// OpenCheck builds the readiness check's pool: one connection to
// DATABASE_URL that nothing else uses, so that however many requests
// wait for the reading pools, the check asks the database itself whether
// it answers, and is answered.
func OpenCheck(ctx context.Context, cfg Config, applicationName string, st *StatementTimeout) (*pgxpool.Pool, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return open(ctx, cfg, "DATABASE_URL", cfg.URL, 1, applicationName+"/check", st, "")
}

// OpenWriter builds the writing pool: on DATABASE_WRITE_URL, or on
// DATABASE_URL when that is unset, always a pool of its own with at most
// DB_MAX_WRITE_CONNS connections, so that writers cannot take the readers'
// connections. Its sessions never commit asynchronously: where the
// database runs with synchronous_commit off they use local, so that a
// write's commit is flushed, and so streamed and covered by the position a
// consistency token names (Replica.WritePosition), when the write returns.
func OpenWriter(ctx context.Context, cfg Config, applicationName string, st *StatementTimeout) (*pgxpool.Pool, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	name, url := cfg.writeURL()
	return open(ctx, cfg, name, url, cfg.MaxWriteConns, applicationName+"/write", st, syncCommitSQL)
}

// OpenFence builds geofencing's pool (docs/GEOFENCE.md) on the primary, as
// the writing pool, but apart from it, so that imports and tracking never
// wait for each other's connections: 8 connections, one of them held by
// the relay's lock while this instance relays.
func OpenFence(ctx context.Context, cfg Config, applicationName string, st *StatementTimeout) (*pgxpool.Pool, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	name, url := cfg.writeURL()
	return open(ctx, cfg, name, url, 8, applicationName+"/fence", st, syncCommitSQL)
}

// syncCommitSQL keeps a stronger synchronous_commit (on, remote_apply...)
// as the database has it, and makes off local.
const syncCommitSQL = `SELECT set_config('synchronous_commit', 'local', false) WHERE current_setting('synchronous_commit') = 'off'`

// OpenProbe builds the Replica's pool on the primary (DATABASE_WRITE_URL,
// else DATABASE_URL): two connections for short statements only (the
// primary's WAL position), apart from the writing pool, whose connections
// imports may hold for minutes.
func OpenProbe(ctx context.Context, cfg Config, applicationName string, st *StatementTimeout) (*pgxpool.Pool, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	name, url := cfg.writeURL()
	return open(ctx, cfg, name, url, 2, applicationName+"/probe", st, "")
}

func (c Config) writeURL() (name, url string) {
	if c.WriteURL != "" {
		return "DATABASE_WRITE_URL", c.WriteURL
	}
	return "DATABASE_URL", c.URL
}

func open(ctx context.Context, cfg Config, name, url string, maxConns int32, applicationName string, st *StatementTimeout, afterConnect string) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("%s is not a valid PostgreSQL connection string", name)
	}
	if maxConns > 0 {
		pc.MaxConns = maxConns
	}
	if cfg.ConnectTimeout > 0 {
		pc.ConnConfig.ConnectTimeout = cfg.ConnectTimeout
	}
	if applicationName != "" {
		pc.ConnConfig.RuntimeParams["application_name"] = applicationName
	}
	// No JIT compilation for the service's statements, unless the URL
	// asks for it (jit=on): PostGIS's functions are costed high, so a
	// Locate passes jit_above_cost (at LOCATE_BATCH_SIZE's 100 points
	// already), and on a fresh connection compiling took most of its time
	// (5,000 points: 568 ms, 75 without) to save nothing on statements
	// this short (docs/BENCHMARKS.md).
	if _, set := pc.ConnConfig.RuntimeParams["jit"]; !set {
		pc.ConnConfig.RuntimeParams["jit"] = "off"
	}
	pc.PrepareConn = st.prepare
	if afterConnect != "" {
		pc.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
			_, err := conn.Exec(ctx, afterConnect)
			return err
		}
	}
	pc.BeforeClose = st.forget
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("create database pool: %w", err)
	}
	return pool, nil
}

// SearchService is the PostGIS implementation of geo.SearchService.
type SearchService struct {
	pool   *pgxpool.Pool // reads
	writer *pgxpool.Pool // Import; pool unless WithWriter
	stats  statsCache
	// collections keeps collections' counts and boxes (collections.go).
	collections *collectionCache
}

var _ geo.SearchService = (*SearchService)(nil)

// Option configures a SearchService.
type Option func(*SearchService)

// WithWriter makes Import write through pool (see OpenWriter) instead of
// the reading pool, so that imports cannot hold the connections searches
// need, and the reading role needs no more than SELECT.
func WithWriter(pool *pgxpool.Pool) Option {
	return func(s *SearchService) { s.writer = pool }
}

// NewSearchService returns a SearchService reading through pool, whose
// database must be migrated.
func NewSearchService(pool *pgxpool.Pool, opts ...Option) *SearchService {
	s := &SearchService{pool: pool, writer: pool, stats: statsCache{maxAge: statsMaxAge}, collections: &collectionCache{}}
	for _, o := range opts {
		o(s)
	}
	return s
}

// ReadingThrough returns a SearchService that reads through pool (another
// transport's pool of its own, see OpenHTTP) and shares s's writing pool
// and its cache of collections' counts.
func (s *SearchService) ReadingThrough(pool *pgxpool.Pool) *SearchService {
	return &SearchService{pool: pool, writer: s.writer, stats: statsCache{maxAge: statsMaxAge}, collections: s.collections}
}

// ReportPool sends the pools' gauges: db.pool.in_use, db.pool.idle and
// db.pool.total connections of the reading pool, and the same under
// db.write_pool for the writing pool when it is a pool of its own.
func (s *SearchService) ReportPool(m metrics.Metrics) {
	report := func(prefix string, p *pgxpool.Pool) {
		st := p.Stat()
		m.Gauge(prefix+".in_use", int64(st.AcquiredConns()))
		m.Gauge(prefix+".idle", int64(st.IdleConns()))
		m.Gauge(prefix+".total", int64(st.TotalConns()))
	}
	report("db.pool", s.pool)
	if s.writer != s.pool {
		report("db.write_pool", s.writer)
	}
}

// Ping reports whether the database answers.
func (s *SearchService) Ping(ctx context.Context) error {
	return classify(ctx, "ping database", s.pool.Ping(ctx))
}

// inTx runs fn in a transaction on the writing pool through pgx.BeginFunc:
// committed if fn returns nil, rolled back if it returns an error or panics,
// and the connection goes back to the pool either way. fn's own error is
// returned as it is; the transaction's are classified.
func (s *SearchService) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	var fnErr error
	err := pgx.BeginFunc(ctx, s.writer, func(tx pgx.Tx) error {
		fnErr = fn(tx)
		return fnErr
	})
	if fnErr != nil {
		return fnErr
	}
	return classify(ctx, "transaction", err)
}

// UnavailableCode reports whether a PostgreSQL error's SQLSTATE says the
// database is not there to answer for now: class 08 (connection
// exception), 53 (insufficient resources: too many connections) or 57P01
// to 57P03 (shutting down, starting up). The one list: classify maps these
// to Unavailable, and the command waits through them at start.
func UnavailableCode(code string) bool {
	return len(code) == 5 && (code[:2] == "08" || code[:2] == "53" || code == "57P01" || code == "57P02" || code == "57P03")
}

// classify turns a pgx error into a domain error, keeping the cause for the
// server's log. Context errors pass through unchanged.
func classify(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	var dom *geo.Error
	if errors.As(err, &dom) {
		return err
	}
	if ctxErr := ctx.Err(); ctxErr != nil && (errors.Is(err, ctxErr) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return fmt.Errorf("%s: %w", op, ctxErr)
	}
	err = fmt.Errorf("%s: %w", op, err)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == "42501": // insufficient_privilege: the server's setup, not the caller
			return geo.Wrap(geo.Misconfigured, err, "the server's database role may not do this (imports need DATABASE_WRITE_URL set to a role that can write); nothing was stored")
		case pgErr.Code == "40001", pgErr.Code == "40P01", pgErr.Code == "55P03": // serialization failure, deadlock, lock not available (lock_timeout)
			return geo.Wrap(geo.Aborted, err, "the database undid the work because of concurrent work; nothing was stored: retry")
		case pgErr.Code == "57014": // query_canceled: the statement timeout
			return geo.Wrap(geo.Timeout, err, "the database took too long to answer")
		case UnavailableCode(pgErr.Code):
			return geo.Wrap(geo.Unavailable, err, "the database is unavailable")
		}
		return geo.Wrap(geo.Internal, err, "internal error")
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	switch {
	case pgconn.Timeout(err):
		return geo.Wrap(geo.Timeout, err, "the database took too long to answer")
	case errors.As(err, &connectErr), errors.As(err, &netErr),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), pgconn.SafeToRetry(err):
		return geo.Wrap(geo.Unavailable, err, "the database is unavailable")
	}
	return geo.Wrap(geo.Internal, err, "internal error")
}
