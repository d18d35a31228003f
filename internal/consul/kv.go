package consul

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
)

// KVWatcher follows the keys under a Consul KV prefix with blocking queries,
// by the same rules as the health watcher.
type KVWatcher struct {
	kv          *api.KV
	prefix      string
	MinInterval time.Duration
}

// NewKVWatcher watches prefix (a trailing slash is added) through client.
func NewKVWatcher(client *api.Client, prefix string) *KVWatcher {
	return &KVWatcher{kv: client.KV(), prefix: strings.TrimSuffix(prefix, "/") + "/", MinInterval: 250 * time.Millisecond}
}

// Get returns the keys under the prefix once, without blocking: the name
// relative to the prefix to its value. Keys in sub-folders are left out.
func (w *KVWatcher) Get(ctx context.Context) (map[string]string, error) {
	pairs, _, err := w.kv.List(w.prefix, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("read Consul KV %s: %w", w.prefix, err)
	}
	return w.values(pairs), nil
}

func (w *KVWatcher) values(pairs api.KVPairs) map[string]string {
	out := map[string]string{}
	for _, p := range pairs {
		name := strings.TrimPrefix(p.Key, w.prefix)
		if name == "" || strings.Contains(name, "/") {
			continue
		}
		out[name] = string(p.Value)
	}
	return out
}

// Watch calls fn with the keys under the prefix each time they change (and
// once at start), or with an error when a query fails (then the caller keeps
// what it had), until ctx ends.
func (w *KVWatcher) Watch(ctx context.Context, fn func(map[string]string, error)) {
	var last map[string]string
	blockingLoop(ctx, w.MinInterval, func(q *api.QueryOptions) (uint64, error) {
		pairs, meta, err := w.kv.List(w.prefix, q)
		if err != nil {
			fn(nil, fmt.Errorf("watch Consul KV %s: %w", w.prefix, err))
			return 0, err
		}
		values := w.values(pairs)
		if last == nil || !maps.Equal(values, last) {
			fn(values, nil)
			last = values
		}
		return meta.LastIndex, nil
	})
}
