package server_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/sethvargo/go-envconfig"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/geosearch/search/internal/server"
	"github.com/geosearch/search/internal/server/servertest"
)

func TestMain(m *testing.M) { os.Exit(servertest.Main(m)) }

func TestHealthIsNotServingWithoutDatabase(t *testing.T) {
	t.Parallel()
	ts := servertest.Start(t, map[string]string{
		"DATABASE_URL":       "postgres://nobody@127.0.0.1:1/none?sslmode=disable",
		"DB_CONNECT_TIMEOUT": "1s",
	}, false)
	ts.WaitHealth(t, healthpb.HealthCheckResponse_NOT_SERVING)
	_, errOut, code := ts.RunClient(t, "search", "--query", "x")
	if code != 1 || !strings.Contains(errOut, "Unavailable: the database is unavailable") {
		t.Errorf("search without database: exit %d, stderr %q", code, errOut)
	}
	if servertest.CountRecords(servertest.LogRecords(ts.Logs.String()), map[string]any{"level": "ERROR"}) > 0 {
		t.Errorf("an unavailable database is logged as an internal error:\n%s", ts.Logs.String())
	}
}

func TestShutdownLogsItsOrder(t *testing.T) {
	t.Parallel()
	logs := &servertest.SyncBuffer{}
	vars := map[string]string{"DATABASE_URL": servertest.Cluster.NewDatabase(t), "LISTEN_ADDR": "127.0.0.1:0", "CONSUL_REGISTER": "false"}
	cfg, err := server.LoadConfig(context.Background(), envconfig.MapLookuper(vars))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, cfg, logs, servertest.Version)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var steps []string
	for _, rec := range servertest.LogRecords(logs.String()) {
		if step, ok := rec["step"].(string); ok {
			steps = append(steps, step)
		}
	}
	want := "health NOT_SERVING|draining in-flight RPCs|closing database pool|flushing metrics and logs"
	if got := strings.Join(steps, "|"); got != want {
		t.Errorf("shutdown steps %q, want %q", got, want)
	}
}
