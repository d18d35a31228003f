// Package consul registers the search server with the local Consul agent,
// keeps it registered, and lets clients find servers through Consul, by DNS
// or by the HTTP API, as gRPC resolvers.
package consul

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/consul/api"
)

// Config is the Consul configuration of a server, read from the
// environment.
type Config struct {
	// Register turns registration on; off for plain local runs.
	Register bool `env:"CONSUL_REGISTER, default=true"`
	// HTTPAddr is the agent's HTTP API ("host:port", or with an http://,
	// https:// or unix:// scheme), as in the official api package.
	HTTPAddr string `env:"CONSUL_HTTP_ADDR, default=127.0.0.1:8500"`
	// Token is the ACL token; a secret, never logged.
	Token string `env:"CONSUL_HTTP_TOKEN" secret:"true"`
	// ServiceName is the name clients look up.
	ServiceName string `env:"SERVICE_NAME, default=search-service"`
	// Tags are extra service tags, comma separated.
	Tags []string `env:"SERVICE_TAGS"`
	// AdvertiseAddr is the address (host, or host:port) others reach this
	// instance at. Empty: the listen host if it is a specific IP, else the
	// first non-loopback IPv4 of this host, else 127.0.0.1. Never 0.0.0.0.
	AdvertiseAddr string `env:"ADVERTISE_ADDR"`
	// CheckInterval and CheckTimeout drive Consul's gRPC health check.
	CheckInterval time.Duration `env:"CONSUL_CHECK_INTERVAL, default=5s"`
	CheckTimeout  time.Duration `env:"CONSUL_CHECK_TIMEOUT, default=2s"`
	// CheckTLSServerName is the name Consul expects in the server's
	// certificate when the server serves TLS; empty: the advertised host.
	CheckTLSServerName string `env:"CONSUL_CHECK_TLS_SERVER_NAME"`
	// CheckTLSSkipVerify lets Consul's check accept any server certificate:
	// only for agents that cannot be given the CA (see docs/SECURITY.md).
	CheckTLSSkipVerify bool `env:"CONSUL_CHECK_TLS_SKIP_VERIFY, default=false"`
	// DeregisterAfter removes an instance whose check stays critical this
	// long (Consul's DeregisterCriticalServiceAfter; Consul's minimum is 1m).
	DeregisterAfter time.Duration `env:"CONSUL_DEREGISTER_CRITICAL_AFTER, default=1m"`
	// ResyncInterval is how often the registration is verified, so an agent
	// that restarted and forgot it gets it again.
	ResyncInterval time.Duration `env:"CONSUL_RESYNC_INTERVAL, default=10s"`
	// HandoverTimeout bounds how long an instance told to stop keeps
	// serving while it waits for its turn to leave and for another instance
	// to be passing (see Handover); 0 turns the handover off.
	HandoverTimeout time.Duration `env:"CONSUL_HANDOVER_TIMEOUT, default=10s"`
}

// FollowDefaults lets a check setting left at its default fit the one that
// was set (isSet says which were): the check timeout never exceeds the
// interval. So CONSUL_CHECK_INTERVAL=1s alone is valid (the timeout follows
// it down), and so is CONSUL_CHECK_TIMEOUT=10s (the interval follows it up).
func (c *Config) FollowDefaults(isSet func(name string) bool) {
	switch {
	case !isSet("CONSUL_CHECK_TIMEOUT") && c.CheckTimeout > c.CheckInterval && c.CheckInterval > 0:
		c.CheckTimeout = c.CheckInterval
	case !isSet("CONSUL_CHECK_INTERVAL") && c.CheckInterval < c.CheckTimeout:
		c.CheckInterval = c.CheckTimeout
	}
}

// Validate reports every invalid setting.
func (c Config) Validate() error {
	if !c.Register {
		return nil
	}
	var errs []error
	check := func(bad bool, format string, args ...any) {
		if bad {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(c.HTTPAddr == "", "CONSUL_HTTP_ADDR must not be empty when CONSUL_REGISTER is true")
	check(c.ServiceName == "", "SERVICE_NAME must not be empty")
	check(c.CheckInterval <= 0, "CONSUL_CHECK_INTERVAL must be positive, got %s", c.CheckInterval)
	check(c.CheckTimeout <= 0, "CONSUL_CHECK_TIMEOUT must be positive, got %s", c.CheckTimeout)
	check(c.CheckTimeout > c.CheckInterval, "CONSUL_CHECK_TIMEOUT (%s) must not exceed CONSUL_CHECK_INTERVAL (%s)", c.CheckTimeout, c.CheckInterval)
	check(c.DeregisterAfter <= 0, "CONSUL_DEREGISTER_CRITICAL_AFTER must be positive, got %s", c.DeregisterAfter)
	check(c.ResyncInterval <= 0, "CONSUL_RESYNC_INTERVAL must be positive, got %s", c.ResyncInterval)
	check(c.HandoverTimeout < 0, "CONSUL_HANDOVER_TIMEOUT must not be negative, got %s", c.HandoverTimeout)
	if c.AdvertiseAddr != "" {
		host := c.AdvertiseAddr
		if h, _, err := net.SplitHostPort(c.AdvertiseAddr); err == nil {
			host = h
		}
		ip := net.ParseIP(host)
		check(host == "" || ip != nil && ip.IsUnspecified(), "ADVERTISE_ADDR %q must name a reachable host, not an unspecified address", c.AdvertiseAddr)
	}
	return errors.Join(errs...)
}

// NewClient returns an API client for cfg. The official package's own
// environment variables (CONSUL_HTTP_SSL, CONSUL_CACERT, ...) apply too;
// HTTPAddr and Token, when set, take precedence.
func NewClient(cfg Config) (*api.Client, error) {
	ac := api.DefaultConfig()
	if cfg.HTTPAddr != "" {
		ac.Address = cfg.HTTPAddr
	}
	if cfg.Token != "" {
		ac.Token = cfg.Token
	}
	c, err := api.NewClient(ac)
	if err != nil {
		return nil, fmt.Errorf("consul client: %w", err)
	}
	return c, nil
}

// AdvertiseHostPort resolves where others reach an instance listening on
// listen (the bound address, e.g. "[::]:50051").
func AdvertiseHostPort(cfg Config, listen net.Addr) (string, int, error) {
	_, portStr, err := net.SplitHostPort(listen.String())
	if err != nil {
		return "", 0, err
	}
	port, _ := strconv.Atoi(portStr)
	if cfg.AdvertiseAddr != "" {
		host, p, err := net.SplitHostPort(cfg.AdvertiseAddr)
		if err != nil {
			return cfg.AdvertiseAddr, port, nil // a bare host
		}
		n, err := strconv.Atoi(p)
		if err != nil {
			return "", 0, fmt.Errorf("ADVERTISE_ADDR port %q: %w", p, err)
		}
		return host, n, nil
	}
	if tcp, ok := listen.(*net.TCPAddr); ok && !tcp.IP.IsUnspecified() {
		return tcp.IP.String(), port, nil
	}
	return hostIPv4(), port, nil
}

// hostIPv4 is the first up, non-loopback IPv4 address of this host, or
// 127.0.0.1 when there is none.
func hostIPv4() string {
	ifaces, err := net.Interfaces()
	if err != nil {
		return "127.0.0.1"
	}
	for _, iface := range ifaces {
		if iface.Flags&net.FlagUp == 0 || iface.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := iface.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLinkLocalUnicast() {
				return ipn.IP.String()
			}
		}
	}
	return "127.0.0.1"
}

// backoff is capped exponential backoff with full jitter.
type backoff struct {
	min, max time.Duration
	attempt  int
}

func (b *backoff) next() time.Duration {
	d := b.min << min(b.attempt, 20)
	if d > b.max || d <= 0 {
		d = b.max
	}
	b.attempt++
	return d/2 + rand.N(d/2+1)
}

func (b *backoff) reset() { b.attempt = 0 }
