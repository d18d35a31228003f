package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/geosearch/search/internal/config"
	"github.com/geosearch/search/internal/server"
)

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := server.LoadConfig(context.Background(), envconfig.MapLookuper(map[string]string{"DATABASE_URL": "postgres://localhost/x"}))
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
	_, err := server.LoadConfig(context.Background(), envconfig.MapLookuper(map[string]string{
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
	_, err = server.LoadConfig(context.Background(), envconfig.MapLookuper(map[string]string{"DB_STATEMENT_TIMEOUT": "soon"}))
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), `DB_STATEMENT_TIMEOUT: "soon" is not a duration`) {
		t.Errorf("unparsable duration: %v", err)
	}
}

func TestConfigErrorNeverShowsThePassword(t *testing.T) {
	t.Parallel()
	_, err := server.LoadConfig(context.Background(), envconfig.MapLookuper(map[string]string{"DATABASE_URL": "postgres://u:hunter2@host:notaport/db"}))
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
			_, err := server.LoadConfig(context.Background(), envconfig.MapLookuper(map[string]string{
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

// looksSecret says whether a variable's name names a secret: a token, a
// password, a key or a credential, or a database URL (which may hold a
// password). A name ending in _FILE names a file, whose path is no secret.
var looksSecret = regexp.MustCompile(`TOKEN|PASS|SECRET|CREDENTIAL|PRIVATE|(^|_)KEY(S)?($|_)|^DATABASE(_[A-Z]+)?_URL$`)

// TestEverySecretLookingSettingIsRedacted walks every setting of the
// server (config.Settings, so a new one is included): each whose name looks
// secret must be tagged secret, and a value set for it, valid or refused,
// must appear in no configuration dump (search-server config and the start
// log print config.Settings), no rejection (Monitor's rejected_settings,
// the config.rejected log records) and no notice.
func TestEverySecretLookingSettingIsRedacted(t *testing.T) {
	t.Parallel()
	const sentinel = "s3ntinel-9f2c"
	valid := map[string]string{"DATABASE_URL": "postgres://u@127.0.0.1:1/db"}
	refused := map[string]string{"DATABASE_URL": "postgres://u@127.0.0.1:1/db"}
	var secrets []string
	for _, s := range config.Settings(server.Config{}) {
		if !looksSecret.MatchString(s.Var) || strings.HasSuffix(s.Var, "_FILE") {
			continue
		}
		if !s.Secret {
			t.Errorf("%s looks secret but is not tagged secret:\"true\": its value would be printed", s.Var)
		}
		secrets = append(secrets, s.Var)
		if strings.HasSuffix(s.Var, "_URL") {
			valid[s.Var] = "postgres://u:" + sentinel + "@127.0.0.1:1/db?sslpassword=" + sentinel
			refused[s.Var] = "postgres://u:" + sentinel + "@[::1/db" // does not parse
		} else {
			valid[s.Var] = sentinel + "-a," + sentinel + "-b"
			refused[s.Var] = sentinel + "\x00"
		}
	}
	if len(secrets) < 5 {
		t.Fatalf("found only %v as secret-looking settings", secrets)
	}
	for name, env := range map[string]map[string]string{"valid": valid, "refused": refused} {
		st, err := server.LoadStartup(context.Background(), envconfig.MapLookuper(nil), envconfig.MapLookuper(env))
		var shown strings.Builder
		if err != nil {
			shown.WriteString(err.Error())
		} else {
			for _, s := range config.Settings(st.Config) {
				fmt.Fprintf(&shown, "%s=%s\n", s.Var, s.Value)
			}
			for _, r := range st.Rejected {
				fmt.Fprintf(&shown, "rejected %s=%s: %s\n", r.Var, r.Value, r.Reason)
			}
			for _, n := range st.Notices {
				fmt.Fprintf(&shown, "%s %v\n", n.Msg, n.Attrs)
			}
		}
		if strings.Contains(shown.String(), sentinel) {
			t.Errorf("%s secret values of %v are shown:\n%s", name, secrets, shown.String())
		}
	}
}
