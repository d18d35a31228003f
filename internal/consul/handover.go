package consul

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
)

// Handover lets the instances of a service leave one at a time, each only
// once another instance is passing: what keeps the service up when every
// instance is told to stop at the same moment (envconsul restarts them all
// when a KV key changes; splay only spreads them at random).
//
// An instance told to stop calls Wait before it turns NOT_SERVING. Wait
// takes a Consul lock on the service's handover key (one holder at a time),
// then waits until some other instance of the service is passing; the
// instance keeps serving meanwhile. It returns within the timeout whatever
// happens (a holder that hangs, nobody coming up), so shutdown always
// finishes. A lone instance does not wait: one that has seen no other
// instance of its service passing for a minute (Run watches), nor does one
// that cannot reach Consul. "For a minute", not "now": with splay, the
// peer may have left a few seconds before this instance is told to stop,
// its replacement not yet up. The lock is released when the instance has left (Release),
// and Consul releases it on its own if the process dies (the session's
// TTL).
type Handover struct {
	client    *api.Client
	key       string
	service   string
	serviceID string
	timeout   time.Duration
	logger    *slog.Logger
	poll      time.Duration

	lock *api.Lock // held between Wait and Release

	mu       sync.Mutex
	peers    bool      // another instance was passing at the last report
	lastPeer time.Time // when one was last seen passing
}

// peerWindow is how recently another instance must have been passing for
// Wait to expect one again.
const peerWindow = time.Minute

// HandoverKey is the KV key instances of service lock to leave one at a
// time. It is outside the configuration prefix on purpose: a lock taken
// under search-service/config would restart every instance under envconsul.
func HandoverKey(service string) string { return service + "/handover/lock" }

// NewHandover prepares the handover of the instance registered as
// serviceID, waiting at most cfg.HandoverTimeout (0: Wait returns at once).
func NewHandover(cfg Config, serviceID string, logger *slog.Logger) (*Handover, error) {
	client, err := NewClient(cfg)
	if err != nil {
		return nil, err
	}
	return &Handover{client: client, key: HandoverKey(cfg.ServiceName), service: cfg.ServiceName, serviceID: serviceID,
		timeout: cfg.HandoverTimeout, logger: logger, poll: 100 * time.Millisecond}, nil
}

// Wait returns when it is this instance's turn to leave and another
// instance is passing, or when the timeout has passed, or ctx ends. It
// reports whether it waited for anything.
func (h *Handover) Wait(ctx context.Context) bool {
	if h.timeout <= 0 {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	if !h.PeerSeen() {
		return false
	}
	lock, err := h.client.LockOpts(&api.LockOptions{
		Key:          h.key,
		Value:        []byte(h.serviceID),
		SessionName:  "search handover " + h.serviceID,
		SessionTTL:   "10s", // Consul's minimum: a dead holder frees the key soon
		LockWaitTime: time.Second,
	})
	if err == nil {
		stop := make(chan struct{})
		go func() { <-ctx.Done(); close(stop) }()
		var lost <-chan struct{}
		if lost, err = lock.Lock(stop); err == nil && lost != nil {
			h.lock = lock
		}
	}
	switch {
	case err != nil:
		h.logger.Warn("handover: cannot take the Consul lock; leaving without it", "key", h.key, "error", err.Error())
		return true
	case h.lock == nil:
		h.logger.Warn("handover: no turn to leave within the timeout; leaving anyway", "key", h.key, "timeout", h.timeout.String())
		return true
	}
	for !h.othersPassing(ctx) {
		select {
		case <-ctx.Done():
			h.logger.Warn("handover: no other instance passing within the timeout; leaving anyway", "timeout", h.timeout.String())
			return true
		case <-time.After(h.poll):
		}
	}
	return true
}

// Release gives up this instance's turn, if it holds it, once Consul's
// catalog no longer names this instance passing (at most a few seconds
// after it deregistered: the agent syncs the catalog in the background), so
// that the next instance does not count it as the peer it waits for.
func (h *Handover) Release() {
	if h.lock == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for h.selfPassing(ctx) && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-time.After(h.poll):
		}
	}
	if err := h.lock.Unlock(); err != nil {
		h.logger.Warn("handover: cannot release the Consul lock; its session expires on its own", "key", h.key, "error", err.Error())
	}
	h.lock = nil
}

// Run follows the service's passing instances until ctx ends, so that Wait
// can tell whether this instance has peers.
func (h *Handover) Run(ctx context.Context) {
	w := &watcher{health: h.client.Health(), Service: h.service, MinInterval: 250 * time.Millisecond}
	w.Watch(ctx, func(eps []Endpoint, err error) {
		if err != nil {
			return // keep what was known
		}
		others := false
		for _, ep := range eps {
			others = others || ep.ServiceID != h.serviceID
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		if others || h.peers {
			h.lastPeer = time.Now() // seen now, or seen until now
		}
		h.peers = others
	})
}

// PeerSeen reports whether another instance of the service is passing, or
// was within the last minute: whether Wait has a peer to hand over to.
func (h *Handover) PeerSeen() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.peers || !h.lastPeer.IsZero() && time.Since(h.lastPeer) < peerWindow
}

// othersPassing says whether another instance of the service is passing.
func (h *Handover) othersPassing(ctx context.Context) bool {
	eps, err := h.endpoints(ctx)
	if err != nil {
		return false
	}
	for _, ep := range eps {
		if ep.ServiceID != h.serviceID && ep.Health == api.HealthPassing {
			return true
		}
	}
	return false
}

// selfPassing says whether the catalog still names this instance passing.
func (h *Handover) selfPassing(ctx context.Context) bool {
	eps, err := h.endpoints(ctx)
	if err != nil {
		return false
	}
	for _, ep := range eps {
		if ep.ServiceID == h.serviceID && ep.Health == api.HealthPassing {
			return true
		}
	}
	return false
}

func (h *Handover) endpoints(ctx context.Context) ([]Endpoint, error) {
	qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return ListEndpoints(qctx, h.client, h.service)
}
