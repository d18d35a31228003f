package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/geosearch/search/internal/config"
)

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := loadConfig(context.Background(), envconfig.MapLookuper(map[string]string{"DATABASE_URL": "postgres://localhost/x"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.GRPC.ListenAddr != ":50051" || cfg.GRPC.DefaultPageSize != 50 || cfg.GRPC.MaxPageSize != 1000 ||
		cfg.DB.StatementTimeout != 10*time.Second || cfg.InstanceID == "" {
		t.Errorf("defaults: %+v", cfg)
	}
}

func TestConfigErrorsNameEveryBadVariable(t *testing.T) {
	t.Parallel()
	_, err := loadConfig(context.Background(), envconfig.MapLookuper(map[string]string{
		"DEFAULT_PAGE_SIZE": "0",
	}))
	var ce *config.Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %v is not a *config.Error", err)
	}
	for _, name := range []string{"DATABASE_URL", "DEFAULT_PAGE_SIZE"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
	_, err = loadConfig(context.Background(), envconfig.MapLookuper(map[string]string{"DB_STATEMENT_TIMEOUT": "soon"}))
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), `DB_STATEMENT_TIMEOUT: "soon" is not a duration`) {
		t.Errorf("unparsable duration: %v", err)
	}
}

func TestConfigErrorNeverShowsThePassword(t *testing.T) {
	t.Parallel()
	_, err := loadConfig(context.Background(), envconfig.MapLookuper(map[string]string{"DATABASE_URL": "postgres://u:hunter2@host:notaport/db"}))
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("load: %v", err)
	}
}

func TestFlagsOverrideEnvironment(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	cmd := newRootCommand(envconfig.MapLookuper(map[string]string{
		"DATABASE_URL": "postgres://localhost/x",
		"LISTEN_ADDR":  "127.0.0.1:1",
	}), &out)
	// A listen address that cannot be bound proves the flag won over the
	// variable without serving anything.
	cmd.SetArgs([]string{"--listen-addr", "127.0.0.1:99999"})
	err := cmd.ExecuteContext(context.Background())
	if err == nil || !strings.Contains(err.Error(), "99999") {
		t.Errorf("serve with --listen-addr: %v, want a listen error naming the flag's address", err)
	}
	cmd = newRootCommand(envconfig.MapLookuper(map[string]string{"DATABASE_URL": "postgres://localhost/x"}), &out)
	cmd.SetArgs([]string{"--log-level", "loud"})
	var ce *config.Error
	if err := cmd.ExecuteContext(context.Background()); !errors.As(err, &ce) {
		t.Errorf("bad --log-level: %v, want a configuration error", err)
	}
}

func TestPprofAddrMustBeLoopback(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"", true},
		{"127.0.0.1:6060", true},
		{"127.0.0.2:0", true},
		{"[::1]:6060", true},
		{"localhost:6060", true},
		{":6060", false},
		{"0.0.0.0:6060", false},
		{"10.1.2.3:6060", false},
		{"example.com:6060", false},
		{"127.0.0.1", false},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			_, err := loadConfig(context.Background(), envconfig.MapLookuper(map[string]string{
				"DATABASE_URL": "postgres://localhost/x", "PPROF_ADDR": tc.addr,
			}))
			if tc.ok != (err == nil) {
				t.Fatalf("PPROF_ADDR=%q: validate: %v, want ok=%v", tc.addr, err, tc.ok)
			}
			if err != nil && !strings.Contains(err.Error(), "PPROF_ADDR") {
				t.Errorf("error %q does not name PPROF_ADDR", err)
			}
		})
	}
}
