// Package statsd sends the service's metrics to a StatsD daemon over UDP
// with github.com/cactus/go-statsd-client/v5's buffered sender.
package statsd

import (
	"fmt"
	"log/slog"
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
}

// Validate names the first invalid setting.
func (c Config) Validate() error {
	if c.FlushInterval <= 0 || c.GaugeInterval <= 0 {
		return fmt.Errorf("STATSD_FLUSH_INTERVAL and STATSD_GAUGE_INTERVAL must be positive")
	}
	return nil
}

// Client is a metrics.Metrics sending to StatsD. UDP never blocks the caller
// on the daemon; an address that does not resolve yet (a container not up)
// is retried in the background while measurements are discarded.
type Client struct {
	statter atomic.Pointer[cactus.Statter]
	stop    chan struct{}
	wg      sync.WaitGroup
}

// New returns metrics.Nop when cfg.Addr is empty, else a Client. It does not
// fail: an unresolvable address is logged and retried every five seconds.
func New(cfg Config, logger *slog.Logger) (metrics.Metrics, func()) {
	if cfg.Addr == "" {
		return metrics.Nop{}, func() {}
	}
	c := &Client{stop: make(chan struct{})}
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

func (c *Client) get() cactus.Statter {
	if p := c.statter.Load(); p != nil {
		return *p
	}
	return nil
}

// Count adds n to counter name.
func (c *Client) Count(name string, n int64) {
	if s := c.get(); s != nil {
		_ = s.Inc(name, n, 1)
	}
}

// Timing records d under timer name, in milliseconds.
func (c *Client) Timing(name string, d time.Duration) {
	if s := c.get(); s != nil {
		_ = s.TimingDuration(name, d, 1)
	}
}

// Gauge sets gauge name to v.
func (c *Client) Gauge(name string, v int64) {
	if s := c.get(); s != nil {
		_ = s.Gauge(name, v, 1)
	}
}

// close stops retrying and flushes what is buffered.
func (c *Client) close() {
	close(c.stop)
	c.wg.Wait()
	if s := c.get(); s != nil {
		_ = s.Close()
	}
}
