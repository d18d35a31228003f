package kafka_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/geosearch/search/internal/kafka"
	"github.com/geosearch/search/internal/kafka/kafkatest"
)

func config(brokers ...string) kafka.Config {
	return kafka.Config{Brokers: brokers, Topic: "logs", QueueSize: 1000, FlushTimeout: 2 * time.Second}
}

// readAll reads the topic to its current end.
func readAll(t *testing.T, broker string) []kafka.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []kafka.Record
	err := kafka.Tail(ctx, kafka.TailOptions{Brokers: []string{broker}, Topic: "logs"}, func(r kafka.Record) error {
		out = append(out, r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestRecordsReachTheTopicKeyedByInstance(t *testing.T) {
	t.Parallel()
	b := kafkatest.Start(t)
	var stdout bytes.Buffer
	out := slog.NewJSONHandler(&stdout, nil)
	s := kafka.NewShipper(config(b.Addr()), "inst-1", slog.LevelInfo, out)
	logger := slog.New(s.Handler(out)).With("service", "svc", "instance", "inst-1")
	logger.Info("hello", "n", 1)
	logger.WithGroup("req").Warn("careful", "id", "x")
	logger.Debug("not enabled")
	s.Close(context.Background())

	recs := readAll(t, b.Addr())
	if len(recs) != 2 {
		t.Fatalf("%d records, want 2: %v", len(recs), recs)
	}
	var first, second map[string]any
	if err := json.Unmarshal(recs[0].Value, &first); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(recs[1].Value, &second); err != nil {
		t.Fatal(err)
	}
	if recs[0].Key != "inst-1" || first["msg"] != "hello" || first["level"] != "INFO" || first["n"] != 1.0 ||
		first["service"] != "svc" || first["instance"] != "inst-1" || first["time"] == nil {
		t.Errorf("first record %s, key %s", recs[0].Value, recs[0].Key)
	}
	if req, _ := second["req"].(map[string]any); second["msg"] != "careful" || req["id"] != "x" {
		t.Errorf("second record %s", recs[1].Value)
	}
	// stdout got both too.
	if n := strings.Count(stdout.String(), "\n"); n != 2 {
		t.Errorf("stdout has %d lines, want 2:\n%s", n, stdout.String())
	}
}

func TestOutageDropsAndCountsWithoutBlockingThenRecovers(t *testing.T) {
	t.Parallel()
	b := kafkatest.Start(t)
	out := slog.NewJSONHandler(io.Discard, nil)
	cfg := config(b.Addr())
	cfg.QueueSize = 100
	s := kafka.NewShipper(cfg, "inst-2", slog.LevelInfo, out)
	defer s.Close(context.Background())
	logger := slog.New(s.Handler(out))
	logger.Info("before")
	eventually(t, "the first record", func() bool { return len(readAll(t, b.Addr())) == 1 })

	b.Stop()
	for i := range 20_000 { // far more than the queue holds: every call returns
		logger.Info("during the outage", "i", i)
	}
	if s.Dropped() == 0 {
		t.Errorf("no drops counted with a full queue and no broker (queued %d)", s.Queued())
	}
	t.Logf("dropped %d records during the outage", s.Dropped())

	b.Restart(t) // empty: whatever arrives now was shipped after recovery
	eventually(t, "records to flow again", func() bool {
		logger.Info("after")
		for _, r := range readAll(t, b.Addr()) {
			var rec struct{ Msg string }
			if json.Unmarshal(r.Value, &rec) == nil && rec.Msg == "after" {
				return true
			}
		}
		return false
	})
}

func TestNoBrokerAtStartNeitherFailsNorHangs(t *testing.T) {
	t.Parallel()
	out := slog.NewJSONHandler(io.Discard, nil)
	s := kafka.NewShipper(config("127.0.0.1:1"), "inst-3", slog.LevelInfo, out)
	logger := slog.New(s.Handler(out))
	for i := range 5000 {
		logger.Info("nobody listens", "i", i)
	}
	closed := make(chan struct{})
	go func() { s.Close(context.Background()); close(closed) }()
	select {
	case <-closed:
	case <-time.After(30 * time.Second): // a hang detector, far above the 2s flush timeout
		t.Fatal("Close did not return")
	}
	if s.Dropped() == 0 {
		t.Error("undeliverable records were not counted as dropped")
	}
}

// TestFlushDuringAnOutageWaitsInsteadOfSpinning guards the final flush:
// with the broker unreachable (every attempt fails at once), Close retries
// until its deadline, and those retries must wait between attempts. It
// measures CPU time used, which a waiting loop keeps near zero however
// loaded the machine is, while a spinning loop burns a core for the whole
// flush timeout. Not parallel, so that the process's CPU time is this test's.
func TestFlushDuringAnOutageWaitsInsteadOfSpinning(t *testing.T) {
	out := slog.NewJSONHandler(io.Discard, nil)
	cfg := config("127.0.0.1:1") // connection refused, immediately
	cfg.FlushTimeout = 2 * time.Second
	s := kafka.NewShipper(cfg, "inst-4", slog.LevelInfo, out)
	slog.New(s.Handler(out)).Info("stranded")
	before := cpuTime()
	s.Close(context.Background())
	if used := cpuTime() - before; used > time.Second {
		t.Errorf("Close used %s of CPU during a %s flush: the retry loop spins", used, cfg.FlushTimeout)
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
