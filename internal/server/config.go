package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/geosearch/search/internal/config"
	"github.com/geosearch/search/internal/consul"
	"github.com/geosearch/search/internal/grpcapi"
	"github.com/geosearch/search/internal/httpapi"
	"github.com/geosearch/search/internal/kafka"
	"github.com/geosearch/search/internal/memindex"
	"github.com/geosearch/search/internal/postgis"
	"github.com/geosearch/search/internal/statsd"
)

// Config is the whole server configuration: each component's Config,
// read from the environment (the interface envconsul drives), with flags on
// top and, with CONFIG_CONSUL_PREFIX, Consul KV below. internal/config reads,
// checks and lists it; see its package comment for the tags and for what
// happens to an invalid value.
type Config struct {
	// LogLevel is debug, info, warn or error.
	LogLevel slog.Level `env:"LOG_LEVEL, default=info" live:"true"`
	// InstanceID names this process in logs, Monitor and Consul; a unique
	// one is generated when unset.
	InstanceID string `env:"INSTANCE_ID"`
	// ConfigPrefix, when set, is the Consul KV prefix watched for live
	// configuration (keys are the lower-case variable names).
	ConfigPrefix string `env:"CONFIG_CONSUL_PREFIX"`
	// PprofAddr, when set, serves net/http/pprof on this loopback address
	// (profiles reveal internals, so never on an outside interface).
	PprofAddr string `env:"PPROF_ADDR"`

	DB     postgis.Config
	GRPC   grpcapi.Config
	HTTP   httpapi.Config
	Consul consul.Config
	StatsD statsd.Config
	Kafka  kafka.Config
	Index  memindex.Config
	Fence  kafka.FenceConfig
}

// Validate checks the settings of Config's own fields; the components
// check theirs.
func (c Config) Validate() error {
	if c.Fence.Enabled && len(c.Kafka.Brokers) == 0 {
		return errors.New("FENCE_ENABLED needs KAFKA_BROKERS: events are published to Kafka")
	}
	return validatePprofAddr(c.PprofAddr)
}

// validatePprofAddr accepts "" (off) or host:port with a loopback host:
// 127.0.0.0/8, ::1 or localhost.
func validatePprofAddr(addr string) error {
	if addr == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("PPROF_ADDR must be host:port, got %q", addr)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("PPROF_ADDR must be on loopback (127.0.0.1, ::1 or localhost), got %q: profiles reveal internals", addr)
	}
	return nil
}

// LoadConfig reads the configuration through l strictly: any invalid value
// is an error. Tests use it; the server starts through LoadStartup.
func LoadConfig(ctx context.Context, l envconfig.Lookuper) (Config, error) {
	c, err := config.Build[Config](ctx, l)
	if c.InstanceID == "" {
		c.InstanceID = newInstanceID()
	}
	return c, err
}

// newInstanceID returns hostname-random: unique per process, readable in logs.
func newInstanceID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "search-server"
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return host + "-" + hex.EncodeToString(b[:])
}

// Startup is the configuration at start and what was said about it.
type Startup struct {
	Config Config
	// Rejected lists the environment's values that were refused.
	Rejected []config.Rejection
	// Reloader follows CONFIG_CONSUL_PREFIX from the keys read at start;
	// nil without a prefix.
	Reloader *config.Reloader[Config]
	Notices  []config.Notice
	// KV holds the KV keys in effect at start (for `config`'s sources).
	KV map[string]string
}

// LoadStartup builds the configuration at start from flags and env, and,
// when CONFIG_CONSUL_PREFIX is set, the KV keys (read once, with a short
// timeout; Consul being down is no reason not to start). An invalid
// tunable in the environment or KV is rejected with a notice; an invalid
// essential setting, or any invalid flag (typed by a person, now), is a
// *config.Error.
func LoadStartup(ctx context.Context, flags, env envconfig.Lookuper) (Startup, error) {
	loaded, err := config.Load[Config](ctx, envconfig.MultiLookuper(flags, env))
	if err != nil {
		return Startup{}, err
	}
	st := Startup{Config: loaded.Config, Rejected: loaded.Rejected}
	for _, r := range loaded.Rejected {
		if _, isFlag := flags.Lookup(r.Var); isFlag {
			return Startup{}, &config.Error{Err: fmt.Errorf("flag for %s: %s", r.Var, r.Reason)}
		}
		st.Notices = append(st.Notices, config.Notice{Level: slog.LevelError, Rejected: true,
			Msg:   "configuration value rejected; the setting starts at its default",
			Attrs: []any{"variable", r.Var, "key", r.Key, "value", r.Value, "reason", r.Reason}})
	}
	if st.Config.InstanceID == "" {
		st.Config.InstanceID = newInstanceID()
	}
	if st.Config.ConfigPrefix == "" {
		return st, nil
	}
	// Reloading must not generate another instance ID.
	base := envconfig.MultiLookuper(envconfig.MapLookuper(map[string]string{"INSTANCE_ID": st.Config.InstanceID}), loaded.Accepted)
	st.Reloader = config.NewReloader(base, st.Config, nil, nil)
	client, err := consul.NewClient(st.Config.Consul)
	if err != nil {
		return Startup{}, &config.Error{Err: err}
	}
	gctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	kv, err := consul.NewKVWatcher(client, st.Config.ConfigPrefix).Get(gctx)
	cancel()
	if err != nil {
		st.Notices = append(st.Notices, config.Notice{Level: slog.LevelWarn,
			Msg: "cannot read configuration from Consul KV; starting without it and watching", Attrs: []any{"error", err.Error()}})
		return st, nil
	}
	next, notices := st.Reloader.Merge(ctx, kv)
	st.Config, st.KV = next, st.Reloader.Accepted()
	st.Notices = append(st.Notices, notices...)
	return st, nil
}
