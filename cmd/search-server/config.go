package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"runtime/debug"
	"strings"

	"github.com/sethvargo/go-envconfig"

	"github.com/geosearch/search/internal/consul"
	"github.com/geosearch/search/internal/grpcapi"
	"github.com/geosearch/search/internal/kafka"
	"github.com/geosearch/search/internal/postgis"
	"github.com/geosearch/search/internal/statsd"
)

// config is the whole server configuration: each component's Config, read
// from the environment (the interface envconsul drives), then overridden by
// flags.
type config struct {
	// LogLevel is debug, info, warn or error.
	LogLevel slog.Level `env:"LOG_LEVEL, default=info"`
	// InstanceID names this process in logs and Monitor; a unique one is
	// generated when unset.
	InstanceID string `env:"INSTANCE_ID"`

	DB     postgis.Config
	GRPC   grpcapi.Config
	Consul consul.Config
	StatsD statsd.Config
	Kafka  kafka.Config
}

// configError marks errors in the configuration; the command exits with
// exitConfig for them.
type configError struct{ err error }

func (e configError) Error() string { return "configuration: " + e.err.Error() }
func (e configError) Unwrap() error { return e.err }

// loadConfig reads the configuration through l (the process environment in
// main, a map in tests) and fills in generated values.
func loadConfig(ctx context.Context, l envconfig.Lookuper) (config, error) {
	var c config
	if err := envconfig.ProcessWith(ctx, &envconfig.Config{Target: &c, Lookuper: l}); err != nil {
		return c, configError{withVariableName(err, reflect.TypeOf(c))}
	}
	if c.InstanceID == "" {
		c.InstanceID = newInstanceID()
	}
	return c, nil
}

// withVariableName rewrites go-envconfig's "Field: Sub: reason" errors to
// name the environment variable an operator sets, "VAR: reason".
func withVariableName(err error, t reflect.Type) error {
	msg := err.Error()
	var walk func(t reflect.Type, path string) (string, bool)
	walk = func(t reflect.Type, path string) (string, bool) {
		for i := range t.NumField() {
			f := t.Field(i)
			p := path + f.Name + ": "
			if !strings.HasPrefix(msg, p) {
				continue
			}
			if name, _, _ := strings.Cut(f.Tag.Get("env"), ","); name != "" {
				return name + ": " + strings.TrimPrefix(msg, p), true
			}
			if f.Type.Kind() == reflect.Struct {
				return walk(f.Type, p)
			}
		}
		return "", false
	}
	if m, ok := walk(t, ""); ok {
		return errors.New(m)
	}
	return err
}

// validate reports every invalid setting at once.
func (c config) validate() error {
	if err := errors.Join(c.DB.Validate(), c.GRPC.Validate(), c.Consul.Validate(), c.StatsD.Validate(), c.Kafka.Validate()); err != nil {
		return configError{err}
	}
	return nil
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

// buildVersion is the module version or the VCS revision the binary was
// built from.
func buildVersion() string {
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
