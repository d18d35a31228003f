// Package statsd sends the service's metrics to a StatsD daemon over UDP
// with github.com/cactus/go-statsd-client/v5's buffered sender.
package statsd

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	cactus "github.com/cactus/go-statsd-client/v5/statsd"

	"github.com/geosearch/search/internal/metrics"
)

// Config is the StatsD configuration, read from the environment.
type Config struct {
	// Addr is the daemon's host:port; empty turns metrics off.
	Addr string `env:"STATSD_ADDR"`
	// Prefix starts every metric name.
	Prefix string `env:"STATSD_PREFIX, default=search-service"`
	// FlushInterval is the longest a metric waits in the send buffer.
	FlushInterval time.Duration `env:"STATSD_FLUSH_INTERVAL, default=300ms"`
	// GaugeInterval is how often gauges (pool, log shipper) are reported.
	GaugeInterval time.Duration `env:"STATSD_GAUGE_INTERVAL, default=10s"`
	// SampleRate is the fraction of counter and timer events sent (the
	// daemon scales counters back up); lower it to cut traffic.
	SampleRate float64 `env:"STATSD_SAMPLE_RATE, default=1" live:"true"`
}

// Validate reports every invalid setting.
func (c Config) Validate() error {
	var errs []error
	if c.FlushInterval <= 0 {
		errs = append(errs, fmt.Errorf("STATSD_FLUSH_INTERVAL must be positive, got %s", c.FlushInterval))
	}
	if c.GaugeInterval <= 0 {
		errs = append(errs, fmt.Errorf("STATSD_GAUGE_INTERVAL must be positive, got %s", c.GaugeInterval))
	}
	if c.SampleRate <= 0 || c.SampleRate > 1 {
		errs = append(errs, fmt.Errorf("STATSD_SAMPLE_RATE must be in (0, 1], got %v", c.SampleRate))
	}
	return errors.Join(errs...)
}

// Client is a metrics.Metrics sending to StatsD. UDP never blocks the caller
// on the daemon; an address that does not resolve yet (a container not up)
// is retried in the background while measurements are discarded. A Client
// without an address discards everything: it is the no-op client.
type Client struct {
	statter atomic.Pointer[cactus.Statter]
	rate    atomic.Uint64 // float32 sample rate bits, as the client wants it
	enabled bool
	stop    chan struct{}
	wg      sync.WaitGroup
	once    sync.Once
}

var _ metrics.Metrics = (*Client)(nil)

// New returns a Client for cfg and the function that flushes and closes it.
// It never fails: without an address it discards everything, and an
// unresolvable address is logged and retried every five seconds.
func New(cfg Config, logger *slog.Logger) (*Client, func()) {
	c := &Client{stop: make(chan struct{}), enabled: cfg.Addr != ""}
	c.SetSampleRate(cfg.SampleRate)
	if cfg.Addr == "" {
		return c, func() {}
	}
	ccfg := &cactus.ClientConfig{
		Address:       cfg.Addr,
		Prefix:        cfg.Prefix,
		UseBuffered:   true,
		FlushInterval: cfg.FlushInterval,
		ResInterval:   30 * time.Second, // follow DNS changes of a host name
	}
	connect := func() bool {
		s, err := cactus.NewClientWithConfig(ccfg)
		if err != nil {
			logger.Warn("statsd: cannot use address yet; metrics are discarded until it resolves", "addr", cfg.Addr, "error", err.Error())
			return false
		}
		c.statter.Store(&s)
		return true
	}
	if !connect() {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			t := time.NewTicker(5 * time.Second)
			defer t.Stop()
			for {
				select {
				case <-c.stop:
					return
				case <-t.C:
					if connect() {
						logger.Info("statsd: address resolved; sending metrics", "addr", cfg.Addr)
						return
					}
				}
			}
		}()
	}
	return c, c.close
}

// Enabled reports whether measurements are sent (or will be, once the
// address resolves).
func (c *Client) Enabled() bool { return c.enabled }

// SetSampleRate sets the fraction of counter and timer events sent, in
// (0, 1]; the daemon scales sampled counters back up. Gauges are always sent.
func (c *Client) SetSampleRate(r float64) {
	if r <= 0 || r > 1 {
		r = 1
	}
	c.rate.Store(uint64(math.Float32bits(float32(r))))
}

func (c *Client) sampleRate() float32 { return math.Float32frombits(uint32(c.rate.Load())) }

// SampleRate returns the fraction of counter and timer events sent.
func (c *Client) SampleRate() float64 { return float64(c.sampleRate()) }

func (c *Client) get() cactus.Statter {
	if p := c.statter.Load(); p != nil {
		return *p
	}
	return nil
}

// Count adds n to counter name.
func (c *Client) Count(name string, n int64) {
	if s := c.get(); s != nil {
		_ = s.Inc(name, n, c.sampleRate())
	}
}

// Timing records d under timer name, in milliseconds.
func (c *Client) Timing(name string, d time.Duration) {
	if s := c.get(); s != nil {
		_ = s.TimingDuration(name, d, c.sampleRate())
	}
}

// Gauge sets gauge name to v.
func (c *Client) Gauge(name string, v int64) {
	if s := c.get(); s != nil {
		_ = s.Gauge(name, v, 1)
	}
}

// close stops retrying and flushes what is buffered. Calling it again does
// nothing.
func (c *Client) close() {
	c.once.Do(func() {
		close(c.stop)
		c.wg.Wait()
		if s := c.get(); s != nil {
			_ = s.Close()
		}
	})
}
