package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
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

// serverConfig is the whole server configuration: each component's Config,
// read from the environment (the interface envconsul drives), with flags on
// top and, with CONFIG_CONSUL_PREFIX, Consul KV below. internal/config reads,
// checks and lists it; see its package comment for the tags and for what
// happens to an invalid value.
type serverConfig struct {
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

// Validate checks the settings of serverConfig's own fields; the components
// check theirs.
func (c serverConfig) Validate() error {
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

// loadConfig reads the configuration through l strictly: any invalid value
// is an error. Tests use it; the server starts through startupConfig.
func loadConfig(ctx context.Context, l envconfig.Lookuper) (serverConfig, error) {
	c, err := config.Build[serverConfig](ctx, l)
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

// stampedVersion is set at link time where the Go tool cannot stamp VCS
// information, as in the Docker build (-ldflags "-X main.stampedVersion=...").
var stampedVersion string

// buildVersion is the version stamped at link time, else the module version
// or the VCS revision the binary was built from.
func buildVersion() string {
	if stampedVersion != "" {
		return stampedVersion
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = "-dirty"
			}
		}
	}
	if (v == "" || v == "(devel)") && rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		return fmt.Sprintf("devel-%s%s", rev, modified)
	}
	if v == "" {
		return "unknown"
	}
	return v
}

// startup is the configuration at start and what was said about it.
type startup struct {
	cfg serverConfig
	// rejected lists the environment's values that were refused.
	rejected []config.Rejection
	// reloader follows CONFIG_CONSUL_PREFIX from the keys read at start;
	// nil without a prefix.
	reloader *config.Reloader[serverConfig]
	notices  []config.Notice
	// kv holds the KV keys in effect at start (for `config`'s sources).
	kv map[string]string
}

// startupConfig builds the configuration at start from flags and env, and,
// when CONFIG_CONSUL_PREFIX is set, the KV keys (read once, with a short
// timeout; Consul being down is no reason not to start). An invalid
// tunable in the environment or KV is rejected with a notice; an invalid
// essential setting, or any invalid flag (typed by a person, now), is a
// *config.Error.
func startupConfig(ctx context.Context, flags, env envconfig.Lookuper) (startup, error) {
	loaded, err := config.Load[serverConfig](ctx, envconfig.MultiLookuper(flags, env))
	if err != nil {
		return startup{}, err
	}
	st := startup{cfg: loaded.Config, rejected: loaded.Rejected}
	for _, r := range loaded.Rejected {
		if _, isFlag := flags.Lookup(r.Var); isFlag {
			return startup{}, &config.Error{Err: fmt.Errorf("flag for %s: %s", r.Var, r.Reason)}
		}
		st.notices = append(st.notices, config.Notice{Level: slog.LevelError, Rejected: true,
			Msg:   "configuration value rejected; the setting starts at its default",
			Attrs: []any{"variable", r.Var, "key", r.Key, "value", r.Value, "reason", r.Reason}})
	}
	if st.cfg.InstanceID == "" {
		st.cfg.InstanceID = newInstanceID()
	}
	if st.cfg.ConfigPrefix == "" {
		return st, nil
	}
	// Reloading must not generate another instance ID.
	base := envconfig.MultiLookuper(envconfig.MapLookuper(map[string]string{"INSTANCE_ID": st.cfg.InstanceID}), loaded.Accepted)
	st.reloader = config.NewReloader(base, st.cfg, nil, nil)
	client, err := consul.NewClient(st.cfg.Consul)
	if err != nil {
		return startup{}, &config.Error{Err: err}
	}
	gctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	kv, err := consul.NewKVWatcher(client, st.cfg.ConfigPrefix).Get(gctx)
	cancel()
	if err != nil {
		st.notices = append(st.notices, config.Notice{Level: slog.LevelWarn,
			Msg: "cannot read configuration from Consul KV; starting without it and watching", Attrs: []any{"error", err.Error()}})
		return st, nil
	}
	next, notices := st.reloader.Merge(ctx, kv)
	st.cfg, st.kv = next, st.reloader.Accepted()
	st.notices = append(st.notices, notices...)
	return st, nil
}
