package postgistest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"syscall"
	"time"

	"github.com/geosearch/search/migrations"
)

// A cluster starts from a copy of a data directory that was initialized
// and migrated once, not from initdb and the migrations: those took about
// 2.4 s of CPU per cluster (CREATE EXTENSION postgis most of it), and a
// make test starts about 25 clusters (one per test binary, and the tests
// that need a server of their own). The copy is what initdb, the server's
// start and createTemplate leave after a clean shutdown, so each cluster
// still begins identical and empty of test data.
//
// The copies live under $TMPDIR/postgistest-cache-<uid>/<key>, where the key is
// a hash of what makes them: the server binaries, the PostGIS library,
// the migrations and the initdb arguments. Test binaries running side by
// side build one copy between them: the first takes the key's lock, the
// others wait for it and then copy under a shared lock.

// cacheVersion changes whenever the way a cached directory is made changes
// in a way the key does not see (initdb's arguments are below).
const cacheVersion = "postgistest-cache-v1"

// pruneAfter is how long a cached directory of another key is kept.
const pruneAfter = 24 * time.Hour

// cacheKey names the cached directory for the server in bindir and the
// migrations compiled into this binary.
func cacheKey(bindir string) (string, error) {
	h := sha256.New()
	fmt.Fprintln(h, cacheVersion, bindir, initdbArgs)
	libs, _ := filepath.Glob(filepath.Join(filepath.Dir(bindir), "lib", "postgis*.so"))
	for _, p := range append([]string{filepath.Join(bindir, "postgres"), filepath.Join(bindir, "initdb")}, libs...) {
		st, err := os.Stat(p)
		if err != nil {
			return "", err
		}
		fmt.Fprintln(h, p, st.Size(), st.ModTime().UnixNano())
	}
	names, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil {
		return "", err
	}
	sort.Strings(names)
	for _, name := range names {
		b, err := migrations.FS.ReadFile(name)
		if err != nil {
			return "", err
		}
		fmt.Fprintln(h, name, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:20], nil
}

// restoreMigrated fills c's data directory with a copy of the cached,
// migrated one, making the cache first when it is missing.
func (c *Cluster) restoreMigrated(ctx context.Context) error {
	key, err := cacheKey(c.bindir)
	if err != nil {
		return fmt.Errorf("cache key: %w", err)
	}
	root := filepath.Join(os.TempDir(), fmt.Sprintf("postgistest-cache-%d", os.Geteuid()))
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	cached := filepath.Join(root, key)
	lock, err := os.OpenFile(cached+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	if _, err := os.Stat(filepath.Join(cached, "data", "PG_VERSION")); err != nil {
		if err := c.makeCache(ctx, root, cached); err != nil {
			return fmt.Errorf("make the migrated data directory: %w", err)
		}
		pruneCache(root, key)
	}
	// Others may copy now; nobody removes it while we do (pruneCache
	// takes the lock exclusively).
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_SH); err != nil {
		return fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	cmd := exec.CommandContext(ctx, "cp", "-a", filepath.Join(cached, "data"), c.dataDir())
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("copy the migrated data directory: %w\n%s", err, out)
	}
	return nil
}

// makeCache initializes a server in a directory beside cached, migrates
// its template database, shuts it down cleanly and renames the directory
// to cached.
func (c *Cluster) makeCache(ctx context.Context, root, cached string) error {
	dir, err := os.MkdirTemp(root, "making-")
	if err != nil {
		return err
	}
	s := &Cluster{bindir: c.bindir, cred: c.cred, dir: dir}
	defer func() { _ = os.RemoveAll(dir) }()
	if s.cred != nil {
		if err := os.Chown(dir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			return err
		}
	}
	if err := s.initdb(ctx); err != nil {
		return err
	}
	if err := s.start(ctx); err != nil {
		s.stop()
		return err
	}
	err = s.createTemplate(ctx)
	s.stop()
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(s.dataDir(), "postmaster.pid")); err == nil {
		return fmt.Errorf("the server did not shut down cleanly (see %s)", filepath.Join(dir, "postgres.log"))
	}
	_ = os.Remove(filepath.Join(dir, "postgres.log"))
	return os.Rename(dir, cached)
}

// pruneCache removes the cached directories of other keys that were made
// more than pruneAfter ago and that nobody is copying.
func pruneCache(root, keep string) {
	entries, _ := os.ReadDir(root)
	for _, e := range entries {
		if !e.IsDir() || e.Name() == keep || filepath.Ext(e.Name()) != "" {
			continue
		}
		info, err := e.Info()
		if err != nil || time.Since(info.ModTime()) < pruneAfter {
			continue
		}
		path := filepath.Join(root, e.Name())
		lock, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			continue
		}
		if syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			_ = os.RemoveAll(path)
			_ = os.Remove(path + ".lock")
		}
		lock.Close()
	}
}
