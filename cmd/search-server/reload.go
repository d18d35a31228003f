package main

import (
	"context"
	"log/slog"
	"maps"
	"strings"
	"time"

	"github.com/sethvargo/go-envconfig"

	secrets "github.com/geosearch/search/internal/config"
	"github.com/geosearch/search/internal/consul"
	"github.com/geosearch/search/internal/metrics"
)

// The configuration has three layers, first match wins:
//
//  1. flags (--database-url, --listen-addr, --log-level);
//  2. environment variables (what envconsul sets);
//  3. Consul KV under CONFIG_CONSUL_PREFIX, keys being the lower-case
//     variable names (max_page_size for MAX_PAGE_SIZE), read at start and
//     then watched;
//
// then the defaults. Layers 1 and 2 are the base: fixed for the life of the
// process.

// kvLookuper exposes KV keys under their variable names.
func kvLookuper(kv map[string]string) envconfig.Lookuper {
	return envconfig.LookuperFunc(func(name string) (string, bool) {
		v, ok := kv[strings.ToLower(name)]
		return v, ok
	})
}

// configNotice is something about the configuration worth logging once the
// logger exists.
type configNotice struct {
	level    slog.Level
	msg      string
	attrs    []any
	rejected bool // a KV change refused as invalid
}

// startupConfig builds the configuration at start: base, and, when
// CONFIG_CONSUL_PREFIX is set, the KV keys (read once, with a short timeout;
// Consul being down is no reason not to start). Invalid KV values are left
// out, with a notice; an invalid base is a configError.
func startupConfig(ctx context.Context, base envconfig.Lookuper) (config, map[string]string, []configNotice, error) {
	cfg, err := loadConfig(ctx, base)
	if err != nil {
		return cfg, nil, nil, err
	}
	if err := cfg.validate(); err != nil {
		return cfg, nil, nil, err
	}
	if cfg.ConfigPrefix == "" {
		return cfg, nil, nil, nil
	}
	client, err := consul.NewClient(cfg.Consul)
	if err != nil {
		return cfg, nil, nil, configError{err}
	}
	gctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	kv, err := consul.NewKVWatcher(client, cfg.ConfigPrefix).Get(gctx)
	cancel()
	if err != nil {
		return cfg, map[string]string{}, []configNotice{{level: slog.LevelWarn,
			msg: "cannot read configuration from Consul KV; starting without it and watching", attrs: []any{"error", err.Error()}}}, nil
	}
	r := newReloader(withInstanceID(base, cfg.InstanceID), cfg, nil)
	next, notices := r.merge(ctx, kv)
	return next, r.accepted, notices, nil
}

// withInstanceID pins a generated instance ID, so that reloading the
// configuration does not generate another.
func withInstanceID(base envconfig.Lookuper, id string) envconfig.Lookuper {
	return envconfig.MultiLookuper(envconfig.MapLookuper(map[string]string{"INSTANCE_ID": id}), base)
}

// reloader turns KV snapshots into configuration changes.
type reloader struct {
	base     envconfig.Lookuper
	accepted map[string]string // the KV keys in effect
	current  config
	apply    func(config) // applies the live settings; nil at start-up
}

func newReloader(base envconfig.Lookuper, current config, apply func(config)) *reloader {
	return &reloader{base: base, accepted: map[string]string{}, current: current, apply: apply}
}

// merge takes a KV snapshot and returns the configuration it yields. A
// changed key is accepted only if the configuration with it is valid; a
// rejected key keeps its previous value. Keys are tried in passes until no
// more can be accepted, so that changes which are only valid together (a
// smaller maximum with a smaller default) apply in any order. Keys whose
// variable is set in the base are ignored: flags and the environment win.
func (r *reloader) merge(ctx context.Context, kv map[string]string) (config, []configNotice) {
	known := settingsByVar(r.current)
	var notices []configNotice
	next := maps.Clone(r.accepted)
	all := maps.Clone(kv)
	maps.Copy(all, r.accepted)
	var pending []string
	for _, key := range sortedKeys(all) {
		value, present := kv[key]
		old, had := r.accepted[key]
		if present == had && value == old {
			continue
		}
		name := strings.ToUpper(key)
		if _, ok := known[name]; !ok {
			notices = append(notices, configNotice{level: slog.LevelWarn, msg: "unknown configuration key in Consul KV; ignored", attrs: []any{"key", key}})
			continue
		}
		if _, inBase := r.base.Lookup(name); inBase {
			notices = append(notices, configNotice{level: slog.LevelInfo,
				msg: "configuration key in Consul KV ignored: the variable is set in the environment, which wins", attrs: []any{"key", key, "variable", name}})
			continue
		}
		pending = append(pending, key)
	}
	with := func(base map[string]string, key string) map[string]string {
		trial := maps.Clone(base)
		if value, present := kv[key]; present {
			trial[key] = value
		} else {
			delete(trial, key)
		}
		return trial
	}
	for progress := true; progress && len(pending) > 0; {
		progress = false
		rest := pending[:0]
		for _, key := range pending {
			if trial := with(next, key); r.valid(ctx, trial) {
				next, progress = trial, true
			} else {
				rest = append(rest, key)
			}
		}
		pending = rest
	}
	for _, key := range pending {
		_, err := r.load(ctx, with(next, key))
		shown := kv[key]
		if known[strings.ToUpper(key)].Secret {
			shown = secrets.Redact(shown)
		}
		notices = append(notices, configNotice{level: slog.LevelWarn, rejected: true,
			msg: "configuration change rejected; the previous value stays", attrs: []any{"key", key, "value", shown, "reason", err.Error()}})
	}
	cfg, err := r.load(ctx, next)
	if err != nil { // cannot happen: next only ever holds valid states
		return r.current, append(notices, configNotice{level: slog.LevelError, msg: "configuration from Consul KV is invalid", attrs: []any{"error", err.Error()}})
	}
	r.accepted = next
	return cfg, notices
}

func (r *reloader) valid(ctx context.Context, kv map[string]string) bool {
	_, err := r.load(ctx, kv)
	return err == nil
}

func (r *reloader) load(ctx context.Context, kv map[string]string) (config, error) {
	cfg, err := loadConfig(ctx, envconfig.MultiLookuper(r.base, kvLookuper(kv)))
	if err != nil {
		return cfg, err
	}
	return cfg, cfg.validate()
}

// update applies a KV snapshot: live settings change at once, each logged
// once with its old and new value and counted (config.changes); other
// changes are logged as waiting for a restart.
func (r *reloader) update(ctx context.Context, kv map[string]string, logger *slog.Logger, m metrics.Metrics) {
	next, notices := r.merge(ctx, kv)
	for _, n := range notices {
		logger.Log(ctx, n.level, n.msg, n.attrs...)
		if n.rejected {
			m.Count("config.rejected", 1)
		}
	}
	before, after := settingsByVar(r.current), settingsByVar(next)
	live := false
	for _, name := range sortedKeys(after) {
		o, n := before[name], after[name]
		if o.raw == n.raw {
			continue
		}
		if n.Live {
			live = true
			logger.Info("configuration changed", "variable", name, "key", n.Key, "old", o.Value, "new", n.Value)
			m.Count("config.changes", 1)
		} else {
			logger.Warn("configuration changed; takes effect at the next restart", "variable", name, "key", n.Key, "old", o.Value, "new", n.Value)
		}
	}
	if live && r.apply != nil {
		r.apply(next)
	}
	r.current = next
}

// watchConfig follows the KV prefix until ctx ends. While Consul cannot be
// reached, the last good configuration stays.
func (s *Server) watchConfig(ctx context.Context) {
	client, err := consul.NewClient(s.cfg.Consul)
	if err != nil {
		s.logger.Error("cannot watch configuration in Consul KV", "error", err.Error())
		return
	}
	w := consul.NewKVWatcher(client, s.cfg.ConfigPrefix)
	failing := false
	w.Watch(ctx, func(kv map[string]string, err error) {
		if err != nil {
			if !failing {
				s.logger.Warn("cannot read configuration from Consul KV; keeping the current one and retrying", "error", err.Error())
			}
			failing = true
			return
		}
		if failing {
			s.logger.Info("reading configuration from Consul KV again")
			failing = false
		}
		s.reloader.update(ctx, kv, s.logger, s.metrics)
	})
}

// applyLive swaps in cfg's live settings.
func (s *Server) applyLive(cfg config) {
	s.level.Set(cfg.LogLevel)
	s.api.SetLimits(cfg.GRPC)
	if s.http != nil {
		s.http.SetLimits(httpLimits(cfg.GRPC))
	}
	s.auth.Set(cfg.GRPC) // the HTTP API shares the tokens
	s.timeout.Set(cfg.DB.StatementTimeout)
	s.statsd.SetSampleRate(cfg.StatsD.SampleRate)
}

// describeSource says where a variable's value comes from.
func describeSource(name string, flags, env envconfig.Lookuper, kv map[string]string) string {
	if _, ok := flags.Lookup(name); ok {
		return "flag"
	}
	if _, ok := env.Lookup(name); ok {
		return "environment"
	}
	if _, ok := kv[strings.ToLower(name)]; ok {
		return "consul"
	}
	return "default"
}
