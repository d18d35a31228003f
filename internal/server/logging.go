package server

import (
	"io"
	"log/slog"
	"time"

	"github.com/geosearch/search/internal/kafka"
	"github.com/geosearch/search/internal/logbuffer"
)

// Access log batching: the per-RPC records wait at most accessLogDelay, or
// until accessLogBatch bytes are waiting.
const (
	accessLogDelay = 100 * time.Millisecond
	accessLogBatch = 64 << 10
)

// newLogging builds the server's loggers: JSON lines on stdout through a
// buffer (access records deferred and batched), and, with KAFKA_BROKERS,
// shipped to Kafka too. level changes live (LOG_LEVEL).
func newLogging(cfg Config, stdout io.Writer) (logOut *logbuffer.Buffer, level *slog.LevelVar, shipper *kafka.Shipper, logger, access *slog.Logger) {
	level = new(slog.LevelVar)
	level.Set(cfg.LogLevel)
	logOut = logbuffer.New(stdout, accessLogDelay, accessLogBatch)
	out := slog.NewJSONHandler(logOut, &slog.HandlerOptions{Level: level})
	accessOut := slog.NewJSONHandler(logOut.Deferred(), &slog.HandlerOptions{Level: level})
	h, ha := slog.Handler(out), slog.Handler(accessOut)
	if len(cfg.Kafka.Brokers) > 0 {
		attrs := []slog.Attr{slog.String("service", "search-server"), slog.String("instance", cfg.InstanceID)}
		shipper = kafka.NewShipper(cfg.Kafka, cfg.InstanceID, level, out.WithAttrs(attrs))
		h, ha = shipper.Handler(out), shipper.Handler(accessOut)
	}
	logger = slog.New(h).With("service", "search-server", "instance", cfg.InstanceID)
	access = slog.New(ha).With("service", "search-server", "instance", cfg.InstanceID)
	return logOut, level, shipper, logger, access
}
