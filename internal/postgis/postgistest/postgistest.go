// Package postgistest runs a throwaway PostgreSQL server with PostGIS for
// tests: a temporary data directory copied from one initialized and
// migrated once (cache.go), a server on a free loopback port, the schema in
// a template database, and a fresh clone of the template per test.
//
// It needs the PostgreSQL server binaries and PostGIS installed. When they
// are missing it fails with the command that installs them; it never skips.
package postgistest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/geosearch/search/internal/postgis"
)

// InstallHint is the command that installs what the harness needs on Debian.
const InstallHint = "apt-get install -y postgresql-15 postgresql-15-postgis-3 (make test runs it when root)"

const templateDB = "search_template"

// Cluster is a running PostgreSQL server owned by a test binary.
type Cluster struct {
	dir     string
	bindir  string
	port    int
	cmd     *exec.Cmd
	exited  chan struct{}
	cred    *syscall.Credential
	counter atomic.Int64

	sharedMu sync.Mutex
	shared   map[string]*sharedDB
}

type sharedDB struct {
	once sync.Once
	name string
	err  error
}

// Main starts a cluster, stores it in *c, runs the tests and stops the
// cluster. Use it from TestMain: os.Exit(postgistest.Main(m, &cluster)).
func Main(m *testing.M, c **Cluster) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	cl, err := Start(ctx)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "postgistest: cannot start PostgreSQL with PostGIS: %v\n", err)
		return 1
	}
	*c = cl
	code := m.Run()
	if err := cl.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "postgistest: stop: %v\n", err)
	}
	return code
}

// Start starts a server on a copy of the migrated data directory (see
// restoreMigrated), whose template database holds the schema.
func Start(ctx context.Context) (*Cluster, error) {
	bindir, err := findBindir()
	if err != nil {
		return nil, err
	}
	c := &Cluster{bindir: bindir}
	c.dir, err = os.MkdirTemp("", "postgistest-")
	if err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root: run it as the postgres user.
		if c.cred, err = postgresUser(); err != nil {
			_ = os.RemoveAll(c.dir)
			return nil, err
		}
		if err := os.Chown(c.dir, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			_ = os.RemoveAll(c.dir)
			return nil, err
		}
	}
	if err := c.restoreMigrated(ctx); err != nil {
		_ = os.RemoveAll(c.dir)
		return nil, err
	}
	if err := c.start(ctx); err != nil {
		_ = c.Close()
		return nil, err
	}
	return c, nil
}

func findBindir() (string, error) {
	if d := os.Getenv("PG_BINDIR"); d != "" {
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgMajor(dirs[i]) > pgMajor(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin (set PG_BINDIR or run: %s)", InstallHint)
}

func pgMajor(bindir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(bindir)))
	return n
}

func postgresUser() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root needs the postgres user to run the server: %w (run: %s)", err, InstallHint)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func (c *Cluster) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(c.bindir, name), args...)
	cmd.Dir = c.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred, Pdeathsig: syscall.SIGQUIT}
	return cmd
}

func (c *Cluster) dataDir() string { return filepath.Join(c.dir, "data") }

// initdbArgs are initdb's arguments after the data directory.
var initdbArgs = []string{"-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"}

func (c *Cluster) initdb(ctx context.Context) error {
	cmd := c.command(ctx, "initdb", append([]string{"-D", c.dataDir()}, initdbArgs...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, out)
	}
	return nil
}

// start runs the server on a free port, retrying with another port if the
// one it picked was taken in the meantime.
func (c *Cluster) start(ctx context.Context) error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if c.port == 0 || attempt > 0 {
			if c.port, err = freePort(); err != nil {
				return err
			}
		}
		if err = c.startOnce(ctx); err == nil {
			return nil
		}
	}
	return err
}

func (c *Cluster) startOnce(ctx context.Context) error {
	logPath := filepath.Join(c.dir, "postgres.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	// The server outlives ctx, which only bounds the start-up. No JIT for
	// the tests' own connections (migrations, oracles): the service turns
	// it off on its connections itself (postgis.open; TestNoJITUnless...
	// sets a database's default to on to check that), and compiling the
	// tests' statements cost a tenth of internal/postgis's CPU.
	cmd := c.command(context.WithoutCancel(ctx), "postgres", "-D", c.dataDir(),
		"-p", strconv.Itoa(c.port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories="+c.dir,
		"-c", "max_connections=300",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "jit=off")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	c.cmd = cmd
	c.exited = make(chan struct{})
	go func() { _ = cmd.Wait(); close(c.exited) }()

	for {
		conn, err := pgx.Connect(ctx, c.URL("postgres"))
		if err == nil {
			_ = conn.Close(ctx)
			return nil
		}
		select {
		case <-c.exited:
			log, _ := os.ReadFile(logPath)
			return fmt.Errorf("postgres exited during start-up:\n%s", tail(log, 2000))
		case <-ctx.Done():
			c.stop()
			return fmt.Errorf("postgres did not accept connections: %w", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return bytes.TrimSpace(b)
}

func (c *Cluster) createTemplate(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+templateDB); err != nil {
		return fmt.Errorf("create template database: %w", err)
	}
	mg, err := postgis.NewMigrator(c.URL(templateDB))
	if err != nil {
		return err
	}
	defer mg.Close()
	if err := mg.Up(); err != nil {
		return fmt.Errorf("%w (is PostGIS installed? run: %s)", err, InstallHint)
	}
	return nil
}

// URL returns the connection URL of database db on this server, as the
// superuser.
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, db)
}

// SocketURL returns the URL of database db on this server through its Unix
// socket, as the superuser.
func (c *Cluster) SocketURL(db string) string {
	return fmt.Sprintf("postgres://postgres@/%s?host=%s&port=%d&sslmode=disable", db, c.dir, c.port)
}

// NewDatabase creates a migrated, empty database for t, dropped when t ends,
// and returns its URL.
func (c *Cluster) NewDatabase(t testing.TB) string {
	t.Helper()
	return c.newDatabase(t, templateDB)
}

// NewDatabaseFrom creates a database for t that is a copy of one that fill
// filled once per cluster and name, dropped when t ends, and returns its
// URL: a fixture that many tests write to, imported once for the package
// instead of once per test. fill must close every connection it opens
// (PostgreSQL copies a database only while nobody is connected to it) and
// report its failure as an error, as for Shared.
func (c *Cluster) NewDatabaseFrom(t testing.TB, name string, fill func(url string) error) string {
	t.Helper()
	db := c.fillOnce("template", name, fill)
	if db.err != nil {
		t.Fatalf("postgistest: template database %s: %v", name, db.err)
	}
	return c.newDatabase(t, db.name)
}

func (c *Cluster) newDatabase(t testing.TB, template string) string {
	t.Helper()
	ctx := context.Background()
	name, err := c.createDatabase(ctx, "test", template)
	if err != nil {
		t.Fatalf("postgistest: create database: %v", err)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, c.URL("postgres"))
		if err != nil {
			t.Errorf("postgistest: connect to drop %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("postgistest: drop %s: %v", name, err)
		}
	})
	return c.URL(name)
}

// createDatabase creates a database named prefix_N as a copy of template
// and returns its name.
func (c *Cluster) createDatabase(ctx context.Context, prefix, template string) (string, error) {
	name := fmt.Sprintf("%s_%d", prefix, c.counter.Add(1))
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "CREATE DATABASE "+name+" TEMPLATE "+template)
	return name, err
}

// fillOnce creates a migrated database named prefix_N and fills it with
// fill, once per cluster, prefix and name.
func (c *Cluster) fillOnce(prefix, name string, fill func(url string) error) *sharedDB {
	c.sharedMu.Lock()
	if c.shared == nil {
		c.shared = map[string]*sharedDB{}
	}
	key := prefix + " " + name
	db, ok := c.shared[key]
	if !ok {
		db = &sharedDB{}
		c.shared[key] = db
	}
	c.sharedMu.Unlock()
	db.once.Do(func() {
		if db.name, db.err = c.createDatabase(context.Background(), prefix, templateDB); db.err == nil {
			db.err = fill(c.URL(db.name))
		}
	})
	return db
}

// Shared returns the URL of a migrated database that fill fills once per
// cluster and name, for the tests that only read it: a costly fixture (the
// 1:10m countries) imported once for the package instead of once per
// test. It lives as long as the cluster. A failed fill fails every test
// that asks for it; fill must report its failure as an error (it runs
// on behalf of all of them).
func (c *Cluster) Shared(t testing.TB, name string, fill func(url string) error) string {
	t.Helper()
	db := c.fillOnce("shared", name, fill)
	if db.err != nil {
		t.Fatalf("postgistest: shared database %s: %v", name, db.err)
	}
	return c.URL(db.name)
}

// Stop shuts the server down (fast shutdown), as an outage; Start brings it
// back on the same port with the same data.
func (c *Cluster) Stop() { c.stop() }

// Start restarts a stopped server on its port.
func (c *Cluster) Start(ctx context.Context) error {
	if c.cmd != nil {
		return errors.New("postgistest: server already running")
	}
	return c.startOnce(ctx)
}

// stop shuts the server down (fast shutdown: sessions are cancelled), and
// kills it if it takes longer than ten seconds.
func (c *Cluster) stop() {
	if c.cmd == nil || c.cmd.Process == nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-c.exited:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
	c.cmd = nil
}

// Close stops the server and removes its files.
func (c *Cluster) Close() error {
	c.stop()
	if c.dir == "" {
		return errors.New("postgistest: cluster not started")
	}
	return os.RemoveAll(c.dir)
}

// Connect opens a connection to dbURL for the test; the caller closes it.
func Connect(t testing.TB, dbURL string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

// Fingerprint summarizes everything stored (things, their parts and the
// collections), to prove that bad input changed nothing.
func Fingerprint(t testing.TB, dbURL string) string {
	t.Helper()
	ctx := context.Background()
	conn := Connect(t, dbURL)
	defer conn.Close(ctx)
	var fp string
	err := conn.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM thing) || ':' || (SELECT count(*) FROM thing_part) || ':' ||
		coalesce((SELECT md5(string_agg(id || collection || name || coalesce(key, '') || properties::text || md5(ST_AsBinary(geom)), ',' ORDER BY id)) FROM thing), '') || ':' ||
		coalesce((SELECT string_agg(name || updated_at::text, ',' ORDER BY name) FROM collection), '')`).Scan(&fp)
	if err != nil {
		t.Fatal(err)
	}
	return fp
}
