package main

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/sethvargo/go-envconfig"

	"github.com/geosearch/search/internal/server/servertest"
)

// lateDatabase returns a server of the test's own, stopped, and the URL of
// an empty (unmigrated) database on it.
func lateDatabase(t *testing.T) (own interface{ Start(context.Context) error }, url string) {
	t.Helper()
	c := servertest.OwnCluster(t)
	conn := servertest.Connect(t, c.URL("postgres"))
	if _, err := conn.Exec(context.Background(), "CREATE DATABASE late"); err != nil {
		t.Fatal(err)
	}
	_ = conn.Close(context.Background())
	c.Stop()
	return c, c.URL("late")
}

// TestMigrateWaitsForTheDatabase runs the migrate command against a
// database that is down: with --wait 0 it fails at once; with the default
// wait it says it waits (on stderr), the database starts, and it migrates.
func TestMigrateWaitsForTheDatabase(t *testing.T) {
	t.Parallel()
	own, url := lateDatabase(t)
	env := envconfig.MapLookuper(map[string]string{"DATABASE_URL": url})

	var out bytes.Buffer
	cmd := newRootCommand(env, &out)
	cmd.SetArgs([]string{"migrate", "--wait", "0"})
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	if err := cmd.ExecuteContext(context.Background()); err == nil {
		t.Fatal("migrate --wait 0 succeeded with the database down")
	}

	waiting := make(chan struct{})
	stderr := &firstWrite{signal: waiting}
	out.Reset()
	cmd = newRootCommand(env, &out)
	cmd.SetArgs([]string{"migrate"})
	cmd.SetOut(&out)
	cmd.SetErr(stderr)
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(context.Background()) }()
	select {
	case <-waiting:
	case err := <-done:
		t.Fatalf("migrate ended before the database started: %v", err)
	}
	if err := own.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("migrate after the database started: %v", err)
	}
	if !strings.HasPrefix(out.String(), "schema version ") {
		t.Errorf("migrate printed %q, want the schema version", out.String())
	}
}

// firstWrite closes signal on its first write.
type firstWrite struct {
	once   sync.Once
	signal chan struct{}
}

func (w *firstWrite) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.signal) })
	return len(p), nil
}
