package server_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/geosearch/search/internal/config"
	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/server"
	"github.com/geosearch/search/internal/server/servertest"
)

// TestEveryLiveSettingAppliesThroughKV changes every live setting (walked
// with config.Settings, so a new one must be added here) through Consul KV
// at once, and reads each back from the component that applies it: the
// gRPC server's configuration in effect (its handlers read their limits
// from it at each call), the HTTP API's limits, the log level, the StatsD
// sample rate, the statement timeouts (the writing pool's read back from
// its sessions), the replica's lag bound, the
// tokens and the in-memory index's switch and budget. A live setting that no component applies stays at its old value
// and fails here, instead of silently doing nothing.
func TestEveryLiveSettingAppliesThroughKV(t *testing.T) {
	t.Parallel()
	const prefix = "live-every/config"
	// The environment wins over KV: the settings this test changes are
	// not in it (servertest sets LOG_LEVEL, and MEMINDEX under make
	// test-memindex-on).
	ts := servertest.Start(t, map[string]string{
		"CONFIG_CONSUL_PREFIX": prefix, "CONSUL_HTTP_ADDR": servertest.Agent.HTTPAddr(), "LOG_LEVEL": servertest.Unset,
		"MEMINDEX": servertest.Unset, "HTTP_LISTEN_ADDR": "127.0.0.1:0",
	}, true)
	s := ts.Srv.Parts()
	// inGRPC reads a setting of grpcapi.Config in effect, and, when the
	// HTTP API has a limit of the same name (they follow gRPC's), that too.
	inGRPC := func(v string) func() string {
		return func() string {
			cfg := reflect.ValueOf(s.API.Config())
			for i := range cfg.NumField() {
				f := cfg.Type().Field(i)
				if name, _, _ := strings.Cut(f.Tag.Get("env"), ","); name != v {
					continue
				}
				got := fmt.Sprint(cfg.Field(i).Interface())
				if lim := reflect.ValueOf(s.HTTP.Limits()).FieldByName(f.Name); lim.IsValid() {
					got += " http " + fmt.Sprint(lim.Interface())
				}
				return got
			}
			return "not in grpcapi.Config"
		}
	}
	// tokenWorks says whether token is accepted where another is not.
	tokenWorks := func(need geo.Access, token string) func() string {
		return func() string {
			tokens := s.Auth.Tokens()
			return fmt.Sprint(tokens.Check(need, token, true) == nil && tokens.Check(need, "another", true) != nil)
		}
	}
	// live says, for each live setting, the KV value set, how to read what
	// is in effect, and what that reads once the value applies.
	live := map[string]struct {
		value, want string
		read        func() string
	}{
		"LOG_LEVEL":            {"warn", "WARN", func() string { return s.Level.Level().String() }},
		"STATSD_SAMPLE_RATE":   {"0.5", "0.5", func() string { return fmt.Sprint(s.StatsD.SampleRate()) }},
		"DB_STATEMENT_TIMEOUT": {"7s", "7s", func() string { return s.Timeout.Get().String() }},
		"DB_WRITE_STATEMENT_TIMEOUT": {"7m", "7min", func() string {
			// What the writing pool's sessions run under (and not the
			// readers' bound).
			var v string
			if err := s.Writer.QueryRow(context.Background(), "SHOW statement_timeout").Scan(&v); err != nil {
				return err.Error()
			}
			return v
		}},
		"MAX_REPLICA_LAG":        {"7s", "7s", func() string { return s.Replica.MaxLag().String() }},
		"READ_TOKENS":            {"live-read", "true", tokenWorks(geo.Read, "live-read")},
		"WRITE_TOKENS":           {"live-write", "true", tokenWorks(geo.Write, "live-write")},
		"DEFAULT_PAGE_SIZE":      {"7", "7 http 7", inGRPC("DEFAULT_PAGE_SIZE")},
		"MAX_PAGE_SIZE":          {"70", "70 http 70", inGRPC("MAX_PAGE_SIZE")},
		"MAX_PAGE_BYTES":         {"131072", "131072 http 131072", inGRPC("MAX_PAGE_BYTES")},
		"LOCATE_BATCH_SIZE":      {"70", "70 http 70", inGRPC("LOCATE_BATCH_SIZE")},
		"LOCATE_BATCH_WAIT":      {"7ms", "7ms http 7ms", inGRPC("LOCATE_BATCH_WAIT")},
		"MAX_FEATURE_VERTICES":   {"5000", "5000", inGRPC("MAX_FEATURE_VERTICES")},
		"MAX_IMPORT_FEATURES":    {"500", "500", inGRPC("MAX_IMPORT_FEATURES")},
		"MAX_CONCURRENT_IMPORTS": {"3", "3", inGRPC("MAX_CONCURRENT_IMPORTS")},
		"IMPORT_IDLE_TIMEOUT":    {"7s", "7s", inGRPC("IMPORT_IDLE_TIMEOUT")},
		"IMPORT_MAX_DURATION":    {"7m", "7m0s", inGRPC("IMPORT_MAX_DURATION")},
		"STREAM_SEND_TIMEOUT":    {"7s", "7s", inGRPC("STREAM_SEND_TIMEOUT")},
		"MEMINDEX":               {"on", "true", func() string { return fmt.Sprint(s.Index.Enabled()) }},
		"MEMINDEX_BUDGET_BYTES":  {"7000000", "7000000", func() string { return fmt.Sprint(s.Index.Budget()) }},
	}
	kv := servertest.Agent.Client().KV()
	var vars []string
	for _, st := range config.Settings(server.Config{}) {
		if !st.Live {
			continue
		}
		vars = append(vars, st.Var)
		l, ok := live[st.Var]
		if !ok {
			t.Errorf("%s is live but this test does not change it: add it, with how to read it back from the component that applies it", st.Var)
			continue
		}
		if got := l.read(); got == l.want {
			t.Fatalf("%s already reads %q before the change: pick another value", st.Var, got)
		}
		servertest.PutKV(t, kv, prefix+"/"+st.Key, l.value)
	}
	for v := range live {
		if !strings.Contains(" "+strings.Join(vars, " ")+" ", " "+v+" ") {
			t.Errorf("%s is listed here but is no live setting", v)
		}
	}
	var stale []string
	deadline := time.Now().Add(10 * time.Second)
	for {
		stale = stale[:0]
		for _, v := range vars {
			if l, ok := live[v]; ok && l.read() != l.want {
				stale = append(stale, fmt.Sprintf("%s=%s reads %q, want %q", v, l.value, l.read(), l.want))
			}
		}
		if len(stale) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(stale) > 0 {
		t.Errorf("live settings changed in KV but not applied within 10s:\n%s", strings.Join(stale, "\n"))
	}
}
