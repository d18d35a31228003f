package consul

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
)

// Instance describes the serving process to register.
type Instance struct {
	// ID is unique per process: two instances on one host never share it.
	ID      string
	Version string
	// Host and Port are where others reach the instance's gRPC server.
	Host string
	Port int
	// HealthService is the grpc.health.v1 service name Consul checks.
	HealthService string
	// HealthHTTPPath, when set, makes the instance an HTTP one: Consul
	// checks GET on this path (200 passes) instead of gRPC health.
	HealthHTTPPath string
	// TLS says the server serves TLS: Consul's check uses it too, and
	// verifies the certificate with the agent's own CA settings.
	TLS bool
}

// Registrar keeps one instance registered with the local Consul agent.
type Registrar struct {
	agent  *api.Agent
	reg    *api.AgentServiceRegistration
	resync time.Duration
	logger *slog.Logger

	mu         sync.Mutex
	registered bool
	stopped    bool
}

// NewRegistrar prepares the registration of inst under cfg.ServiceName with a
// gRPC health check against inst's health service, or an HTTP check on
// inst.HealthHTTPPath.
func NewRegistrar(cfg Config, inst Instance, logger *slog.Logger) (*Registrar, error) {
	client, err := NewClient(cfg)
	if err != nil {
		return nil, err
	}
	target := net.JoinHostPort(inst.Host, strconv.Itoa(inst.Port))
	check := &api.AgentServiceCheck{
		Interval:                       cfg.CheckInterval.String(),
		Timeout:                        cfg.CheckTimeout.String(),
		DeregisterCriticalServiceAfter: cfg.DeregisterAfter.String(),
	}
	protocol := "grpc"
	if inst.HealthHTTPPath != "" {
		protocol = "http"
		scheme := "http://"
		if inst.TLS {
			scheme = "https://"
		}
		check.HTTP = scheme + target + inst.HealthHTTPPath
		check.Method = "GET"
		check.Name = "HTTP readiness " + check.HTTP
	} else {
		if inst.HealthService != "" {
			target += "/" + inst.HealthService
		}
		check.GRPC = target
		check.GRPCUseTLS = inst.TLS
		check.Name = "gRPC health " + target
	}
	reg := &api.AgentServiceRegistration{
		ID:      cfg.ServiceName + "-" + inst.ID,
		Name:    cfg.ServiceName,
		Address: inst.Host,
		Port:    inst.Port,
		Tags:    append([]string{protocol}, cfg.Tags...),
		Meta:    map[string]string{"version": inst.Version, "instance": inst.ID},
		Check:   check,
	}
	if inst.TLS {
		// Unset, Consul would expect its own node name in the certificate.
		reg.Check.TLSServerName = cmp.Or(cfg.CheckTLSServerName, inst.Host)
		reg.Check.TLSSkipVerify = cfg.CheckTLSSkipVerify
	}
	return &Registrar{agent: client.Agent(), reg: reg, resync: cfg.ResyncInterval, logger: logger.With("consul_service_id", reg.ID)}, nil
}

// ServiceID is the ID the instance is registered under.
func (r *Registrar) ServiceID() string { return r.reg.ID }

// Run registers the instance, retrying with backoff while the agent cannot be
// reached, and then checks every resync interval that the agent still knows
// it, registering it again if the agent forgot (after a restart, say). It
// returns when ctx ends, without deregistering: that is Deregister's job, in
// its place in the shutdown order.
func (r *Registrar) Run(ctx context.Context) {
	b := backoff{min: 200 * time.Millisecond, max: 30 * time.Second}
	for {
		wait := r.resync
		if err := r.ensure(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			wait = b.next()
			r.logger.Warn("consul registration failed; retrying", "error", err.Error(), "retry_in", wait.String())
		} else {
			b.reset()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// ensure registers the instance unless the agent already has it.
func (r *Registrar) ensure(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return nil
	}
	q := (&api.QueryOptions{}).WithContext(ctx)
	if r.registered {
		svc, _, err := r.agent.Service(r.reg.ID, q)
		if err == nil && svc != nil {
			return nil
		}
		var se api.StatusError
		if err != nil && !(errors.As(err, &se) && se.Code == 404) {
			return fmt.Errorf("look up own registration: %w", err)
		}
		r.logger.Warn("consul agent no longer knows this instance; registering again")
	}
	opts := api.ServiceRegisterOpts{ReplaceExistingChecks: true}.WithContext(ctx)
	if err := r.agent.ServiceRegisterOpts(r.reg, opts); err != nil {
		r.registered = false
		return fmt.Errorf("register: %w", err)
	}
	if !r.registered {
		r.logger.Info("registered in consul", "service", r.reg.Name, "address", r.reg.Address, "port", r.reg.Port)
	}
	r.registered = true
	return nil
}

// Deregister removes the instance from the agent and stops Run from
// registering it again.
func (r *Registrar) Deregister(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopped = true
	if !r.registered {
		return nil
	}
	q := (&api.QueryOptions{}).WithContext(ctx)
	if err := r.agent.ServiceDeregisterOpts(r.reg.ID, q); err != nil {
		return fmt.Errorf("deregister %s: %w", r.reg.ID, err)
	}
	r.registered = false
	return nil
}
