package config

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/sethvargo/go-envconfig"

	"github.com/geosearch/search/internal/metrics"
)

// The configuration has three layers, first match wins:
//
//  1. flags;
//  2. environment variables (what envconsul sets);
//  3. Consul KV under a prefix, keys being the lower-case variable names
//     (max_page_size for MAX_PAGE_SIZE), read at start and then watched;
//
// then the defaults. Layers 1 and 2 are the base: fixed for the life of the
// process. A Reloader applies layer 3.

// KVLookuper exposes Consul KV keys (relative to the prefix) under their
// variable names.
func KVLookuper(kv map[string]string) envconfig.Lookuper {
	return envconfig.LookuperFunc(func(name string) (string, bool) {
		v, ok := kv[Key(name)]
		return v, ok
	})
}

// Notice is something about the configuration worth logging.
type Notice struct {
	Level slog.Level
	Msg   string
	Attrs []any
	// Rejected marks a KV value refused as invalid.
	Rejected bool
}

// Reloader turns Consul KV snapshots into configurations of type T.
type Reloader[T any] struct {
	base  envconfig.Lookuper
	apply func(T) // applies the live settings; nil: nothing to apply

	mu       sync.Mutex
	accepted map[string]string // the KV keys in effect
	rejected []Rejection       // the KV keys refused in the last snapshot
	current  T
}

// NewReloader returns a Reloader over base (the fixed layers: flags and the
// environment, without values Load rejected), starting from current with
// the KV keys accepted in effect. apply, if not nil, is called with the
// new configuration when a live setting changes.
func NewReloader[T any](base envconfig.Lookuper, current T, accepted map[string]string, apply func(T)) *Reloader[T] {
	if accepted == nil {
		accepted = map[string]string{}
	}
	return &Reloader[T]{base: base, apply: apply, accepted: maps.Clone(accepted), current: current}
}

// Accepted returns the KV keys in effect.
func (r *Reloader[T]) Accepted() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.accepted)
}

// Rejected returns the KV values refused in the last snapshot: each keeps
// the setting's previous value until KV changes again.
func (r *Reloader[T]) Rejected() []Rejection {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.rejected)
}

// Merge takes a KV snapshot and returns the configuration it yields. A
// changed key is accepted only if the configuration with it is valid; a
// rejected key keeps its previous value. Keys are tried in passes until no
// more can be accepted, so that changes which are only valid together (a
// smaller maximum with a smaller default) apply in any order. Keys whose
// variable is set in the base are ignored: flags and the environment win.
func (r *Reloader[T]) Merge(ctx context.Context, kv map[string]string) (T, []Notice) {
	r.mu.Lock()
	defer r.mu.Unlock()
	known := settingsByVar(r.current)
	var notices []Notice
	next := maps.Clone(r.accepted)
	all := maps.Clone(kv)
	maps.Copy(all, r.accepted)
	var pending []string
	for _, key := range slices.Sorted(maps.Keys(all)) {
		value, present := kv[key]
		old, had := r.accepted[key]
		if present == had && value == old {
			continue
		}
		name := strings.ToUpper(key)
		if _, ok := known[name]; !ok {
			notices = append(notices, Notice{Level: slog.LevelWarn, Msg: "unknown configuration key in Consul KV; ignored", Attrs: []any{"key", key}})
			continue
		}
		if _, inBase := r.base.Lookup(name); inBase {
			notices = append(notices, Notice{Level: slog.LevelInfo,
				Msg: "configuration key in Consul KV ignored: the variable is set in the environment, which wins", Attrs: []any{"key", key, "variable", name}})
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
	r.rejected = nil
	for _, key := range pending {
		_, err := r.load(ctx, with(next, key))
		s := known[strings.ToUpper(key)]
		shown := kv[key]
		if s.Secret {
			shown = Redact(shown)
		}
		r.rejected = append(r.rejected, Rejection{Var: s.Var, Key: key, Value: shown, Reason: err.Error()})
		notices = append(notices, Notice{Level: slog.LevelError, Rejected: true,
			Msg: "configuration change rejected; the previous value stays", Attrs: []any{"key", key, "variable", s.Var, "value", shown, "reason", err.Error()}})
	}
	cfg, err := r.load(ctx, next)
	if err != nil { // cannot happen: next only ever holds valid states
		return r.current, append(notices, Notice{Level: slog.LevelError, Msg: "configuration from Consul KV is invalid", Attrs: []any{"error", err.Error()}})
	}
	r.accepted = next
	return cfg, notices
}

func (r *Reloader[T]) valid(ctx context.Context, kv map[string]string) bool {
	_, err := r.load(ctx, kv)
	return err == nil
}

func (r *Reloader[T]) load(ctx context.Context, kv map[string]string) (T, error) {
	return Build[T](ctx, envconfig.MultiLookuper(r.base, KVLookuper(kv)))
}

// Update applies a KV snapshot: live settings change at once, each logged
// once with its old and new value and counted (config.changes); other
// changes are logged as waiting for a restart; rejected values are logged
// at ERROR and counted (config.rejected).
func (r *Reloader[T]) Update(ctx context.Context, kv map[string]string, logger *slog.Logger, m metrics.Metrics) {
	next, notices := r.Merge(ctx, kv)
	for _, n := range notices {
		logger.Log(ctx, n.Level, n.Msg, n.Attrs...)
		if n.Rejected {
			m.Count("config.rejected", 1)
		}
	}
	r.mu.Lock()
	before, after := settingsByVar(r.current), settingsByVar(next)
	r.current = next
	apply := r.apply
	r.mu.Unlock()
	live := false
	for _, name := range slices.Sorted(maps.Keys(after)) {
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
	if live && apply != nil {
		apply(next)
	}
}

// OnLive sets the function called with the new configuration when a live
// setting changes.
func (r *Reloader[T]) OnLive(apply func(T)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.apply = apply
}
