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
	"reflect"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sethvargo/go-envconfig"

	secrets "github.com/geosearch/search/internal/config"
	"github.com/geosearch/search/internal/consul"
	"github.com/geosearch/search/internal/grpcapi"
	"github.com/geosearch/search/internal/httpapi"
	"github.com/geosearch/search/internal/kafka"
	"github.com/geosearch/search/internal/postgis"
	"github.com/geosearch/search/internal/statsd"
)

// config is the whole server configuration: each component's Config, read
// from the environment (the interface envconsul drives), with flags on top
// and, with CONFIG_CONSUL_PREFIX, Consul KV below.
//
// Field tags: env (go-envconfig: the variable, its default), live:"true"
// (the setting can change while running), secret:"true" (never printed).
type config struct {
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
}

// configError marks errors in the configuration; the command exits with
// exitConfig for them.
type configError struct{ err error }

func (e configError) Error() string { return "configuration: " + e.err.Error() }
func (e configError) Unwrap() error { return e.err }

// loadConfig reads the configuration through l (layers of flags, the
// environment and Consul KV in main; a map in tests). It reports every
// variable that does not parse, not just the first.
func loadConfig(ctx context.Context, l envconfig.Lookuper) (config, error) {
	var c config
	bad := map[string]bool{}
	if errs := parseEach(ctx, reflect.TypeOf(c), l, bad); len(errs) > 0 {
		// Report the others too: validate with the unparsable ones at their
		// defaults.
		masked := envconfig.LookuperFunc(func(name string) (string, bool) {
			if bad[name] {
				return "", false
			}
			return l.Lookup(name)
		})
		if envconfig.ProcessWith(ctx, &envconfig.Config{Target: &c, Lookuper: masked}) == nil {
			if err := c.validate(); err != nil {
				errs = append(errs, errors.Unwrap(err))
			}
		}
		return c, configError{errors.Join(errs...)}
	}
	if err := envconfig.ProcessWith(ctx, &envconfig.Config{Target: &c, Lookuper: l}); err != nil {
		return c, configError{err}
	}
	if c.InstanceID == "" {
		c.InstanceID = newInstanceID()
	}
	return c, nil
}

// parseEach decodes every env-tagged field of t on its own, so that each
// bad variable is reported with its name and reason; bad collects their
// names.
func parseEach(ctx context.Context, t reflect.Type, l envconfig.Lookuper, bad map[string]bool) []error {
	var errs []error
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
		if name == "" {
			if f.Type.Kind() == reflect.Struct {
				errs = append(errs, parseEach(ctx, f.Type, l, bad)...)
			}
			continue
		}
		one := reflect.New(reflect.StructOf([]reflect.StructField{{Name: f.Name, Type: f.Type, Tag: f.Tag}}))
		if err := envconfig.ProcessWith(ctx, &envconfig.Config{Target: one.Interface(), Lookuper: l}); err != nil {
			_, reason, _ := strings.Cut(err.Error(), ": ")
			errs = append(errs, fmt.Errorf("%s: %s", name, reason))
			bad[name] = true
		}
	}
	return errs
}

// validate reports every invalid setting at once.
func (c config) validate() error {
	if err := errors.Join(validatePprofAddr(c.PprofAddr), c.DB.Validate(), c.GRPC.Validate(), c.HTTP.Validate(), c.Consul.Validate(), c.StatsD.Validate(), c.Kafka.Validate()); err != nil {
		return configError{err}
	}
	return nil
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

// setting describes one variable of the configuration.
type setting struct {
	Var     string // the environment variable
	Key     string // its Consul KV key: the lower-case name
	Default string
	Value   string // formatted; secrets redacted
	raw     string // formatted, never redacted: for comparisons only
	Live    bool
	Secret  bool
}

// settings lists every variable of c, in declaration order.
func settings(c config) []setting {
	var out []setting
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("env")
			name, opts, _ := strings.Cut(tag, ",")
			if name == "" {
				if f.Type.Kind() == reflect.Struct {
					walk(v.Field(i))
				}
				continue
			}
			s := setting{Var: name, Key: strings.ToLower(name), Live: f.Tag.Get("live") == "true", Secret: f.Tag.Get("secret") == "true"}
			for _, o := range strings.Split(opts, ",") {
				if d, ok := strings.CutPrefix(strings.TrimSpace(o), "default="); ok {
					s.Default = d
				}
			}
			s.Value = formatValue(v.Field(i).Interface())
			s.raw = s.Value
			if s.Secret {
				s.Value = secrets.Redact(s.Value)
			}
			out = append(out, s)
		}
	}
	walk(reflect.ValueOf(c))
	return out
}

func formatValue(v any) string {
	switch v := v.(type) {
	case time.Duration:
		return v.String()
	case []string:
		return strings.Join(v, ",")
	case slog.Level:
		return strings.ToLower(v.String())
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	default:
		return fmt.Sprint(v)
	}
}

// settingsByVar indexes settings by variable name.
func settingsByVar(c config) map[string]setting {
	m := map[string]setting{}
	for _, s := range settings(c) {
		m[s.Var] = s
	}
	return m
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
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
