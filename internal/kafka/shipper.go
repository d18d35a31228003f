// Package kafka ships the server's log records to a Kafka topic with
// github.com/segmentio/kafka-go, without ever blocking the code that logs,
// and reads them back for `search-client logs`; and carries geofencing
// (docs/GEOFENCE.md) with github.com/twmb/franz-go, which has what that
// needs and kafka-go lacks: transactions (the relay of events) and
// consumer groups with offsets kept outside Kafka (the positions
// consumer).
package kafka

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/geosearch/search/internal/metrics"
)

// Config is the log shipping configuration, read from the environment.
type Config struct {
	// Brokers are the bootstrap brokers; empty turns shipping off.
	Brokers []string `env:"KAFKA_BROKERS"`
	// Topic receives the records, keyed by instance ID.
	Topic string `env:"LOG_TOPIC, default=search-service-logs"`
	// QueueSize bounds the records waiting to be shipped; when it is full,
	// new records are dropped (and counted), never waited for.
	QueueSize int `env:"LOG_QUEUE_SIZE, default=10000"`
	// FlushTimeout bounds the final flush at shutdown.
	FlushTimeout time.Duration `env:"LOG_FLUSH_TIMEOUT, default=5s"`
}

// Validate reports every invalid setting.
func (c Config) Validate() error {
	var errs []error
	if len(c.Brokers) > 0 && c.Topic == "" {
		errs = append(errs, errors.New("LOG_TOPIC must not be empty when KAFKA_BROKERS is set"))
	}
	if c.QueueSize < 1 {
		errs = append(errs, fmt.Errorf("LOG_QUEUE_SIZE must be at least 1, got %d", c.QueueSize))
	}
	if c.FlushTimeout <= 0 {
		errs = append(errs, fmt.Errorf("LOG_FLUSH_TIMEOUT must be positive, got %s", c.FlushTimeout))
	}
	return errors.Join(errs...)
}

// maxBatch is the most records sent in one produce request.
const maxBatch = 500

// entry is a record waiting to be shipped, with the formatting handler that
// carries the attributes and groups of the logger it came from.
type entry struct {
	h slog.Handler
	r slog.Record
}

// Shipper moves log records from a bounded queue to Kafka in a background
// goroutine: it batches them, retries a failed batch with backoff (the
// kafka-go writer reconnects on its own), counts records dropped when the
// queue is full, and reports the drops to stdout at most every ten seconds.
type Shipper struct {
	queue   chan entry
	dropped atomic.Int64
	writer  *kafkago.Writer
	key     []byte
	stdout  slog.Handler
	flush   time.Duration

	buf    bytes.Buffer // formatting buffer, used by the shipping goroutine only
	format slog.Handler // JSON into buf

	stop     chan struct{}
	done     chan struct{}
	deadline atomic.Pointer[time.Time] // set by Close: give up retrying after it
	once     sync.Once
}

// NewShipper starts shipping to cfg.Brokers. key (the instance ID) keys
// every record. stdout receives the drop reports. Shipping starts at once;
// brokers that are down, or never existed, only cause drops.
func NewShipper(cfg Config, key string, level slog.Leveler, stdout slog.Handler) *Shipper {
	s := &Shipper{
		queue:  make(chan entry, cfg.QueueSize),
		key:    []byte(key),
		stdout: stdout,
		flush:  cfg.FlushTimeout,
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
		writer: &kafkago.Writer{
			Addr:                   kafkago.TCP(cfg.Brokers...),
			Topic:                  cfg.Topic,
			Balancer:               &kafkago.Hash{}, // one instance's records stay in order in one partition
			BatchSize:              maxBatch,
			BatchTimeout:           5 * time.Millisecond, // batches are formed here; don't wait for more
			RequiredAcks:           kafkago.RequireOne,
			MaxAttempts:            1, // retries are ours, with backoff
			WriteTimeout:           10 * time.Second,
			ReadTimeout:            10 * time.Second,
			AllowAutoTopicCreation: true,
			Transport:              &kafkago.Transport{DialTimeout: 3 * time.Second, IdleTimeout: time.Minute},
		},
	}
	s.format = slog.NewJSONHandler(&s.buf, &slog.HandlerOptions{Level: level})
	go s.run()
	return s
}

// Handler returns a slog.Handler that writes every record to out (stdout)
// and queues it for Kafka. Queuing costs one non-blocking channel send;
// formatting happens in the shipping goroutine.
func (s *Shipper) Handler(out slog.Handler) slog.Handler {
	return &teeHandler{out: out, ship: s.format, s: s}
}

// Queued is the number of records waiting to be shipped.
func (s *Shipper) Queued() int { return len(s.queue) }

// Dropped is the number of records dropped since start.
func (s *Shipper) Dropped() int64 { return s.dropped.Load() }

// Report sends the shipper's gauges: logs.queued and logs.dropped.
func (s *Shipper) Report(m metrics.Metrics) {
	m.Gauge("logs.queued", int64(s.Queued()))
	m.Gauge("logs.dropped", s.Dropped())
}

func (s *Shipper) enqueue(e entry) {
	select {
	case <-s.stop:
		s.dropped.Add(1)
		return
	default:
	}
	select {
	case s.queue <- e:
	default:
		s.dropped.Add(1)
	}
}

// run ships until Close, then flushes what is queued until the deadline.
func (s *Shipper) run() {
	defer close(s.done)
	batch := make([]kafkago.Message, 0, maxBatch)
	reported := int64(0)
	lastReport := time.Now()
	for {
		stopping := false
		select {
		case e := <-s.queue:
			batch = append(batch, s.message(e))
		case <-s.stop:
			stopping = true
		case <-time.After(time.Second):
		}
		for len(batch) < maxBatch {
			select {
			case e := <-s.queue:
				batch = append(batch, s.message(e))
				continue
			default:
			}
			break
		}
		if len(batch) > 0 {
			s.write(batch)
			batch = batch[:0]
		}
		if d := s.dropped.Load(); d != reported && time.Since(lastReport) >= 10*time.Second || stopping && d != reported {
			s.report(d - reported)
			reported, lastReport = d, time.Now()
		}
		if stopping && (len(s.queue) == 0 || s.pastDeadline()) {
			if n := len(s.queue); n > 0 {
				s.dropped.Add(int64(n))
				s.report(int64(n))
			}
			return
		}
	}
}

func (s *Shipper) pastDeadline() bool {
	d := s.deadline.Load()
	return d != nil && time.Now().After(*d)
}

// message formats one record as the same JSON object stdout gets.
func (s *Shipper) message(e entry) kafkago.Message {
	s.buf.Reset()
	_ = e.h.Handle(context.Background(), e.r)
	value := bytes.TrimRight(s.buf.Bytes(), "\n")
	return kafkago.Message{Key: s.key, Value: append([]byte(nil), value...), Time: e.r.Time}
}

// write sends a batch, retrying with backoff until it goes through, or,
// once Close was called, until its deadline, when the batch is dropped.
func (s *Shipper) write(batch []kafkago.Message) {
	backoff := 100 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if d := s.deadline.Load(); d != nil {
			ctx, cancel = context.WithDeadline(context.Background(), *d)
		}
		err := s.writer.WriteMessages(ctx, batch...)
		cancel()
		if err == nil {
			return
		}
		if s.pastDeadline() {
			s.dropped.Add(int64(len(batch)))
			return
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		backoff = min(2*backoff, 10*time.Second)
		// Close cuts a long wait short once; after that (stop is closed and
		// would always be ready) only the timer is waited on, so the final
		// flush retries at a bounded pace instead of spinning.
		stop := s.stop
		if s.deadline.Load() != nil {
			stop = nil
		}
		select {
		case <-time.After(wait):
		case <-stop:
			backoff = min(backoff, 200*time.Millisecond)
		}
	}
}

func (s *Shipper) report(n int64) {
	r := slog.NewRecord(time.Now(), slog.LevelWarn, "log shipping to Kafka dropped records", 0)
	r.AddAttrs(slog.Int64("dropped", n), slog.Int64("dropped_total", s.dropped.Load()))
	_ = s.stdout.Handle(context.Background(), r)
}

// Close stops queuing, flushes what is queued until ctx ends (or the
// configured flush timeout, whichever is first), and closes the writer,
// which is not waited for past the deadline: kafka-go's Close can hang while
// brokers are unreachable.
func (s *Shipper) Close(ctx context.Context) {
	s.once.Do(func() {
		deadline := time.Now().Add(s.flush)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		s.deadline.Store(&deadline)
		close(s.stop)
		select {
		case <-s.done:
		case <-time.After(time.Until(deadline) + 100*time.Millisecond):
		}
		closed := make(chan struct{})
		go func() { _ = s.writer.Close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(time.Until(deadline) + 100*time.Millisecond):
		}
	})
}

// teeHandler writes to stdout and queues for Kafka.
type teeHandler struct {
	out  slog.Handler
	ship slog.Handler
	s    *Shipper
}

func (h *teeHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.out.Enabled(ctx, l) }

func (h *teeHandler) Handle(ctx context.Context, r slog.Record) error {
	err := h.out.Handle(ctx, r)
	h.s.enqueue(entry{h: h.ship, r: r.Clone()})
	return err
}

func (h *teeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &teeHandler{out: h.out.WithAttrs(as), ship: h.ship.WithAttrs(as), s: h.s}
}

func (h *teeHandler) WithGroup(name string) slog.Handler {
	return &teeHandler{out: h.out.WithGroup(name), ship: h.ship.WithGroup(name), s: h.s}
}

// SplitBrokers parses a comma-separated broker list.
func SplitBrokers(list string) []string {
	var out []string
	for _, b := range strings.Split(list, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}
