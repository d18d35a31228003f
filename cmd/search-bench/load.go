package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/postgis"
)

// randomPoints returns n points uniform over lng [-180, 180], lat [-90, 90]
// (land and sea), the same for the same seed.
func randomPoints(seed uint64, n int) []geo.Point {
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	pts := make([]geo.Point, n)
	for i := range pts {
		pts[i] = geo.Point{Lng: r.Float64()*360 - 180, Lat: r.Float64()*180 - 90}
	}
	return pts
}

// pointQuery is the point search every round sends: the server's default
// page size, no geometry, as a client asking "what is here?" does; scoped
// to collections when any are given.
func pointQuery(p geo.Point, collections ...string) geo.Query {
	return geo.Query{Filter: geo.Filter{Point: &p, Collections: collections}, Limit: defaultPageSize}
}

// defaultPageSize is the server's DEFAULT_PAGE_SIZE, which the gRPC requests
// get by leaving page_size 0.
const defaultPageSize = 50

// op is one request of a round: it returns how many results it got.
type op func(ctx context.Context, i int) (int, error)

// grpcPoint searches points[i] through the full gRPC path, in collections
// when any are given.
func grpcPoint(conn *grpc.ClientConn, points []geo.Point, collections ...string) op {
	c := searchv1.NewSearchServiceClient(conn)
	return func(ctx context.Context, i int) (int, error) {
		p := points[i%len(points)]
		resp, err := c.Search(ctx, &searchv1.SearchRequest{Point: &searchv1.Point{Lat: p.Lat, Lng: p.Lng}, Collections: collections})
		return len(resp.GetThings()), err
	}
}

// grpcHealth calls the standard health check through the same connection:
// a gRPC round trip that does not reach the database (readiness is cached),
// the floor under any search through gRPC.
func grpcHealth(conn *grpc.ClientConn) op {
	c := healthpb.NewHealthClient(conn)
	return func(ctx context.Context, _ int) (int, error) {
		_, err := c.Check(ctx, &healthpb.HealthCheckRequest{})
		return 0, err
	}
}

// directPoint sends the server's own statement for points[i] straight to
// the database, with the server's bind values, and scans the rows as the
// server does: the database's limit for this query.
func directPoint(pool *pgxpool.Pool, points []geo.Point, collections ...string) op {
	return func(ctx context.Context, i int) (int, error) {
		sql, args := postgis.SearchStatement(pointQuery(points[i%len(points)], collections...))
		return queryThings(ctx, pool, sql, args)
	}
}

// naivePoint sends the whole-geometry reference query with the same values.
func naivePoint(pool *pgxpool.Pool, points []geo.Point) op {
	return func(ctx context.Context, i int) (int, error) {
		sql, args := postgis.WholeGeometryStatement(pointQuery(points[i%len(points)]))
		return queryThings(ctx, pool, sql, args)
	}
}

func queryThings(ctx context.Context, pool *pgxpool.Pool, sql string, args []any) (int, error) {
	rows, err := pool.Query(ctx, sql, args...)
	if err != nil {
		return 0, err
	}
	things, err := pgx.CollectRows(rows, postgis.ScanThing)
	return len(things), err
}

// nameQueries are the name searches of the name rounds: common letter
// pairs and words, from a few matches to most of the countries.
var nameQueries = []string{"an", "ia", "la", "re", "in", "united", "is", "guinea", "o", "ar", "st", "republic", "ma", "ke", "u"}

// namePageSize is small so that name rounds page: a walk for "a" is
// twenty requests.
const namePageSize = 10

// grpcNameWalk walks every page of a name search through gRPC; each page is
// one request of the round, so one op call is one page.
func grpcNameWalk(conn *grpc.ClientConn, seed uint64) func(worker int) op {
	c := searchv1.NewSearchServiceClient(conn)
	return func(worker int) op {
		r := rand.New(rand.NewPCG(seed, uint64(worker)))
		var q, token string
		return func(ctx context.Context, _ int) (int, error) {
			if token == "" {
				q = nameQueries[r.IntN(len(nameQueries))]
			}
			resp, err := c.Search(ctx, &searchv1.SearchRequest{Query: q, PageSize: namePageSize, PageToken: token})
			if err != nil {
				token = ""
				return 0, err
			}
			token = resp.GetNextPageToken()
			return len(resp.GetThings()), nil
		}
	}
}

// loadResult is what one timed run of requests measured.
type loadResult struct {
	Requests  int
	Errors    int
	FirstErr  string
	Results   int // things returned, over all requests
	Elapsed   time.Duration
	Latencies []time.Duration // sorted
}

// runLoad runs concurrency workers that call newOp(worker) in a loop until
// d has passed. Requests are numbered from one counter starting at 0, so
// rounds over the same points send the same points in the same order.
func runLoad(ctx context.Context, concurrency int, d time.Duration, newOp func(worker int) op) loadResult {
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		res     loadResult
		next    atomic.Int64
		stopped atomic.Bool
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	timer := time.AfterFunc(d, func() { stopped.Store(true) })
	defer timer.Stop()
	for w := range concurrency {
		call := newOp(w)
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 1<<14)
			var errs, results int
			var firstErr error
			for !stopped.Load() && ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
				t0 := time.Now()
				n, err := call(rctx, i)
				lat = append(lat, time.Since(t0))
				rcancel()
				results += n
				if err != nil {
					errs++
					if firstErr == nil {
						firstErr = err
					}
				}
			}
			mu.Lock()
			defer mu.Unlock()
			res.Latencies = append(res.Latencies, lat...)
			res.Errors += errs
			res.Results += results
			if firstErr != nil && res.FirstErr == "" {
				res.FirstErr = firstErr.Error()
			}
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.Requests = len(res.Latencies)
	slices.Sort(res.Latencies)
	return res
}

// same returns a constructor giving every worker the same op.
func same(o op) func(int) op { return func(int) op { return o } }

// percentile returns the q-quantile (0..1) of sorted latencies, nearest rank.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// verifyPoints checks, for points, that the gRPC path (unless conn is nil),
// the direct statement and, with naive, the whole-geometry reference return
// the same things in the same order, so that a faster but wrong server
// cannot win.
func verifyPoints(ctx context.Context, conn *grpc.ClientConn, pool *pgxpool.Pool, points []geo.Point, naive bool, collections ...string) (hits int, err error) {
	var errs []error
	for i, p := range points {
		sql, args := postgis.SearchStatement(pointQuery(p, collections...))
		direct, err := queryIDs(ctx, pool, sql, args)
		if err != nil {
			return 0, fmt.Errorf("verify point %d %v directly: %w", i, p, err)
		}
		if conn != nil {
			resp, err := searchv1.NewSearchServiceClient(conn).Search(ctx, &searchv1.SearchRequest{Point: &searchv1.Point{Lat: p.Lat, Lng: p.Lng}, Collections: collections})
			if err != nil {
				return 0, fmt.Errorf("verify point %d %v through gRPC: %w", i, p, err)
			}
			var viaGRPC []int64
			for _, t := range resp.GetThings() {
				viaGRPC = append(viaGRPC, t.GetId())
			}
			if !slices.Equal(viaGRPC, direct) {
				errs = append(errs, fmt.Errorf("point %d %v: gRPC returned %v, the direct statement %v", i, p, viaGRPC, direct))
			}
		}
		if naive {
			wsql, wargs := postgis.WholeGeometryStatement(pointQuery(p, collections...))
			whole, err := queryIDs(ctx, pool, wsql, wargs)
			if err != nil {
				return 0, fmt.Errorf("verify point %d %v with whole geometries: %w", i, p, err)
			}
			if !slices.Equal(direct, whole) {
				errs = append(errs, fmt.Errorf("point %d %v: the parts returned %v, whole geometries %v", i, p, direct, whole))
			}
		}
		if len(direct) > 0 {
			hits++
		}
		if len(errs) >= 10 {
			break
		}
	}
	return hits, errors.Join(errs...)
}

// verifyNames checks that walking every page of each name query through
// gRPC returns what one direct query of the server's statement returns.
func verifyNames(ctx context.Context, conn *grpc.ClientConn, pool *pgxpool.Pool) error {
	c := searchv1.NewSearchServiceClient(conn)
	for _, q := range nameQueries {
		var viaGRPC []int64
		token := ""
		for {
			resp, err := c.Search(ctx, &searchv1.SearchRequest{Query: q, PageSize: namePageSize, PageToken: token})
			if err != nil {
				return fmt.Errorf("verify name %q through gRPC: %w", q, err)
			}
			for _, t := range resp.GetThings() {
				viaGRPC = append(viaGRPC, t.GetId())
			}
			if token = resp.GetNextPageToken(); token == "" {
				break
			}
		}
		sql, args := postgis.SearchStatement(geo.Query{Filter: geo.Filter{Query: q}, Limit: 100_000})
		direct, err := queryIDs(ctx, pool, sql, args)
		if err != nil {
			return fmt.Errorf("verify name %q directly: %w", q, err)
		}
		if !slices.Equal(viaGRPC, direct) {
			return fmt.Errorf("name %q: gRPC pages returned %d things, the direct statement %d, or in another order", q, len(viaGRPC), len(direct))
		}
	}
	return nil
}

func queryIDs(ctx context.Context, pool *pgxpool.Pool, sql string, args []any) ([]int64, error) {
	rows, err := pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	things, err := pgx.CollectRows(rows, postgis.ScanThing)
	if err != nil {
		return nil, err
	}
	var ids []int64
	for _, t := range things {
		ids = append(ids, t.ID)
	}
	return ids, nil
}

// locateStreams gives each worker of a Locate round a bidirectional stream
// of its own, opened on its first call and kept for the round's later
// calls, as a bulk client keeps one stream for a whole file. close ends
// them all.
type locateStreams struct {
	client searchv1.SearchServiceClient
	opts   *searchv1.LocateOptions
	mu     sync.Mutex
	open   []context.CancelFunc
}

// grpcLocate sends points through Locate streams, batch points per call:
// call i sends points [i*batch, (i+1)*batch) (wrapping around), then reads
// their answers. With batch equal to the server's LOCATE_BATCH_SIZE, one
// call is one of the server's batches (one statement), so the latency of a
// call is that of a batch. It returns the number of things found.
func grpcLocate(conn *grpc.ClientConn, points []geo.Point, batch int, collections ...string) (*locateStreams, func(int) op) {
	ls := &locateStreams{client: searchv1.NewSearchServiceClient(conn)}
	if len(collections) > 0 {
		ls.opts = &searchv1.LocateOptions{Collections: collections}
	}
	return ls, func(int) op {
		var stream searchv1.SearchService_LocateClient
		msgs := make([]*searchv1.LocateRequest, batch)
		for j := range msgs {
			msgs[j] = &searchv1.LocateRequest{Point: &searchv1.Point{}}
		}
		return func(ctx context.Context, i int) (int, error) {
			if stream == nil {
				s, err := ls.start()
				if err != nil {
					return 0, err
				}
				stream = s
			}
			sent := make(chan error, 1)
			go func() {
				for j, m := range msgs {
					p := points[(i*batch+j)%len(points)]
					m.Id, m.Point.Lat, m.Point.Lng = strconv.Itoa(j), p.Lat, p.Lng
					if err := stream.Send(m); err != nil {
						sent <- err
						return
					}
				}
				sent <- nil
			}()
			found := 0
			for j := range batch {
				resp, err := stream.Recv()
				if err != nil {
					stream = nil // the stream is over; the next call opens another
					<-sent
					return found, fmt.Errorf("locate answer %d of %d: %w", j, batch, err)
				}
				if resp.GetError() != nil {
					err = fmt.Errorf("locate point %s: %s", resp.GetId(), resp.GetError().GetMessage())
				}
				found += len(resp.GetThings())
				if err != nil {
					<-sent
					return found, err
				}
			}
			return found, <-sent
		}
	}
}

// start opens a stream that lives until close, not for one call.
func (ls *locateStreams) start() (searchv1.SearchService_LocateClient, error) {
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := ls.client.Locate(ctx)
	if err == nil && ls.opts != nil {
		err = stream.Send(&searchv1.LocateRequest{Options: ls.opts})
	}
	if err != nil {
		cancel()
		return nil, err
	}
	ls.mu.Lock()
	ls.open = append(ls.open, cancel)
	ls.mu.Unlock()
	return stream, nil
}

// close ends every stream opened so far.
func (ls *locateStreams) close() {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for _, cancel := range ls.open {
		cancel()
	}
	ls.open = nil
}

// setSQL sends Locate's set-based statement (postgis.LocateStatement) for
// batch points per call straight to the database and scans the rows as the
// server does: the ceiling for Locate. Call i takes the same points as a
// grpcLocate call i.
func setSQL(pool *pgxpool.Pool, points []geo.Point, batch int, collections ...string) op {
	return func(ctx context.Context, i int) (int, error) {
		pts := make([]geo.Point, batch)
		for j := range pts {
			pts[j] = points[(i*batch+j)%len(points)]
		}
		sql, args := postgis.LocateStatement(geo.LocateQuery{Points: pts, Limit: defaultPageSize,
			Filter: geo.Filter{Collections: collections}})
		rows, err := pool.Query(ctx, sql, args...)
		if err != nil {
			return 0, err
		}
		defer rows.Close()
		found := 0
		for rows.Next() {
			if _, _, err := postgis.ScanLocated(rows); err != nil {
				return found, err
			}
			found++
		}
		return found, rows.Err()
	}
}

// waitMemoryIndex waits until the server at conn says, in Monitor, that
// every collection is in its in-memory index with at least things things
// in all (what was imported: Monitor may show the set read before the
// import for a moment), so that rounds measure it and not the database it
// falls back to while loading. A server that lists no index for a few
// seconds has it off (MEMINDEX=off), and one that keeps a collection out
// (the budget) is measured as it is.
func waitMemoryIndex(ctx context.Context, conn *grpc.ClientConn, things int64, progress func(string, ...any)) error {
	c := searchv1.NewSearchServiceClient(conn)
	start := time.Now()
	for {
		resp, err := c.Monitor(ctx, &searchv1.MonitorRequest{})
		if err != nil {
			return fmt.Errorf("monitor: %w", err)
		}
		ms := resp.GetMemoryIndexes()
		all, out := len(ms) > 0, ""
		var n int64
		for _, m := range ms {
			n += m.GetThings()
			if !m.GetInMemory() {
				all = false
				if m.GetReason() != "" && !strings.Contains(m.GetReason(), "budget") {
					out = m.GetCollection() + ": " + m.GetReason()
				}
			}
		}
		switch {
		case all && n >= things:
			var bytes, vertices int64
			for _, m := range ms {
				bytes, vertices = bytes+m.GetBytes(), vertices+m.GetVertices()
			}
			progress("in-memory index loaded after %.1f s: %d collections, %d vertices, %.1f MB (%.1f B/vertex)",
				time.Since(start).Seconds(), len(ms), vertices, float64(bytes)/1e6, float64(bytes)/float64(max(vertices, 1)))
			return nil
		case out != "":
			progress("in-memory index: %s; measured on the database", out)
			return nil
		case len(ms) == 0 && time.Since(start) > 3*time.Second:
			progress("in-memory index off")
			return nil
		case time.Since(start) > 5*time.Minute:
			return fmt.Errorf("the in-memory index did not load in 5 minutes: %v", ms)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// importCountries imports the countries into a server of the bench's own
// (not into --server-addr's) and waits for its in-memory index to hold
// what was imported.
func (b *bench) importCountries(ctx context.Context, main endpoint, pool *pgxpool.Pool, r *report) error {
	if b.o.serverAddr == "" {
		ds, err := loadGeoJSON(b.o.countries)
		if err != nil {
			return err
		}
		b.progress("importing %s: %d features, %d vertices", ds.name, len(ds.requests), ds.vertices)
		imp, err := b.importAndAnalyze(ctx, main, ds, pool)
		if err != nil {
			return err
		}
		imp.TargetSeconds = countriesImportTarget
		r.Imports = append(r.Imports, imp)
	}
	var imported int64
	for _, imp := range r.Imports {
		imported += imp.Imported
	}
	return waitMemoryIndex(ctx, main.conn, imported, b.progress)
}
