package config

import (
	"fmt"
	"log/slog"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/sethvargo/go-envconfig"
)

// Setting describes one variable of a configuration and its value.
type Setting struct {
	Var     string // the environment variable
	Key     string // its Consul KV key: the lower-case name
	Default string
	Value   string // formatted; secrets redacted
	Live    bool   // can change while running
	Secret  bool   // never printed
	// Essential settings stop the process when invalid; the others
	// (tunables) fall back to their default.
	Essential bool
	raw       string // formatted, never redacted: for comparisons only
}

// Settings lists every variable of cfg (a settings struct), in declaration
// order.
func Settings(cfg any) []Setting {
	v := reflect.ValueOf(cfg)
	specs := specsOf(v.Type())
	out := make([]Setting, 0, len(specs))
	for _, s := range specs {
		raw := formatValue(v.FieldByIndex(s.index).Interface())
		shown := raw
		if s.Secret {
			shown = Redact(raw)
		}
		out = append(out, Setting{Var: s.Var, Key: Key(s.Var), Default: s.Default, Value: shown,
			Live: s.Live, Secret: s.Secret, Essential: s.Essential, raw: raw})
	}
	return out
}

// settingsByVar indexes Settings(cfg) by variable.
func settingsByVar(cfg any) map[string]Setting {
	m := map[string]Setting{}
	for _, s := range Settings(cfg) {
		m[s.Var] = s
	}
	return m
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

// Source says where variable name's value comes from, the layers being
// flags, the environment, Consul KV (kv, keyed by KV key) and the default.
func Source(name string, flags, env envconfig.Lookuper, kv map[string]string) string {
	if _, ok := flags.Lookup(name); ok {
		return "flag"
	}
	if _, ok := env.Lookup(name); ok {
		return "environment"
	}
	if _, ok := kv[Key(name)]; ok {
		return "consul"
	}
	return "default"
}
