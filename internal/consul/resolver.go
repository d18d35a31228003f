package consul

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
	"google.golang.org/grpc/attributes"
	"google.golang.org/grpc/resolver"
)

// Schemes of the gRPC targets the resolvers here understand:
//
//	consul-dns://127.0.0.1:8600/search-service   SRV + A through Consul DNS
//	consul://127.0.0.1:8500/search-service       HTTP API, blocking queries
//
// The consul:// target takes optional query parameters tag and dc.
const (
	DNSScheme  = "consul-dns"
	HTTPScheme = "consul"
)

// InstanceIDKey is the resolver.Address attribute holding the Consul
// service ID, for logs and listings.
type InstanceIDKey struct{}

// NoInstancesError says that discovery found no healthy instance.
type NoInstancesError struct {
	Service, Via string
}

func (e *NoInstancesError) Error() string {
	return fmt.Sprintf("no healthy instance of %q found through %s; check that servers are running and registered "+
		"(search-client instances, or the Consul UI) and that the service name and Consul address are right", e.Service, e.Via)
}

// DNSBuilder builds resolvers for consul-dns:// targets. Add it to a client
// with grpc.WithResolvers; it is not registered globally.
type DNSBuilder struct {
	// Interval is how often the name is resolved again (default 5s).
	Interval time.Duration
}

// Scheme returns "consul-dns".
func (DNSBuilder) Scheme() string { return DNSScheme }

// Build starts resolving target.
func (b DNSBuilder) Build(target resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	server := target.URL.Host
	service := strings.TrimPrefix(target.URL.Path, "/")
	if server == "" || service == "" {
		return nil, fmt.Errorf("consul-dns target %q: want consul-dns://DNS_HOST:PORT/SERVICE", target.URL.String())
	}
	interval := b.Interval
	if interval <= 0 {
		interval = 5 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &dnsResolver{
		cc:       cc,
		pub:      publisher{cc: cc},
		lookup:   DNSLookup{Server: server},
		service:  service,
		interval: interval,
		cancel:   cancel,
		now:      make(chan struct{}, 1),
	}
	r.wg.Add(1)
	go r.watch(ctx)
	return r, nil
}

// DNSLookup finds service instances through Consul's DNS interface with the
// standard library's resolver pointed at Server.
type DNSLookup struct {
	Server string // host:port of Consul DNS
}

func (l DNSLookup) resolver() *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, l.Server)
		},
	}
}

// Lookup returns the healthy instances of service as host:port addresses,
// sorted. Consul answers only passing instances over DNS. No instance is an
// empty list, not an error.
func (l DNSLookup) Lookup(ctx context.Context, service string) ([]string, error) {
	r := l.resolver()
	_, srvs, err := r.LookupSRV(ctx, "", "", service+".service.consul.")
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up %s in Consul DNS at %s: %w", service, l.Server, err)
	}
	var out []string
	for _, srv := range srvs {
		ips, err := r.LookupIPAddr(ctx, srv.Target)
		if err != nil {
			return nil, fmt.Errorf("look up %s in Consul DNS at %s: %w", srv.Target, l.Server, err)
		}
		for _, ip := range ips {
			out = append(out, net.JoinHostPort(ip.IP.String(), strconv.Itoa(int(srv.Port))))
		}
	}
	sort.Strings(out)
	return out, nil
}

type dnsResolver struct {
	cc       resolver.ClientConn
	pub      publisher
	lookup   DNSLookup
	service  string
	interval time.Duration
	cancel   context.CancelFunc
	now      chan struct{}
	wg       sync.WaitGroup
}

// emptyInterval is how often a resolver that found nobody asks again: an
// instance that comes back (after a restart) is called within this, not
// within the full interval.
const emptyInterval = 250 * time.Millisecond

// watch resolves at once, then every interval (emptyInterval while nobody
// is found) or when gRPC asks (at most once a second), until Close.
func (r *dnsResolver) watch(ctx context.Context) {
	defer r.wg.Done()
	const minGap = time.Second
	for {
		last := time.Now()
		wait := r.interval
		if !r.resolve(ctx) {
			wait = min(wait, emptyInterval)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		case <-r.now:
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Until(last.Add(minGap))):
			}
		}
	}
}

// resolve looks the service up once and says whether it found anyone.
func (r *dnsResolver) resolve(ctx context.Context) bool {
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	addrs, err := r.lookup.Lookup(lctx, r.service)
	cancel()
	if ctx.Err() != nil {
		return true
	}
	if err != nil {
		// Keep the last known instances; gRPC retries resolution.
		r.cc.ReportError(err)
		return true
	}
	r.pub.publish(addrs, nil, &NoInstancesError{Service: r.service, Via: "Consul DNS at " + r.lookup.Server})
	return len(addrs) > 0
}

// publisher hands instances to gRPC.
type publisher struct {
	cc        resolver.ClientConn
	published bool // a non-empty list was published last
}

// publish hands the instances to gRPC. When the last instance leaves, the
// empty list is published too, so that gRPC drops instances that are gone or
// unhealthy instead of calling them on; the error then tells callers why
// nobody is left. Before any instance was seen, only the error is reported,
// which gRPC passes on to callers as it is.
func (p *publisher) publish(addrs []string, ids []string, none error) {
	cc := p.cc
	if len(addrs) == 0 {
		if p.published {
			_ = cc.UpdateState(resolver.State{})
			p.published = false
		}
		cc.ReportError(none)
		return
	}
	p.published = true
	state := resolver.State{Addresses: make([]resolver.Address, len(addrs))}
	for i, a := range addrs {
		state.Addresses[i] = resolver.Address{Addr: a}
		if ids != nil {
			//lint:ignore SA1019 the resolver publishes addresses, not endpoints; the handover balancer reads the instance ID from here
			state.Addresses[i].BalancerAttributes = attributes.New(InstanceIDKey{}, ids[i])
		}
	}
	_ = cc.UpdateState(state) // an error here only means "resolve again", which the loop does
}

// ResolveNow asks for a prompt resolution.
func (r *dnsResolver) ResolveNow(resolver.ResolveNowOptions) {
	select {
	case r.now <- struct{}{}:
	default:
	}
}

// Close stops resolving.
func (r *dnsResolver) Close() {
	r.cancel()
	r.wg.Wait()
}

// HTTPBuilder builds resolvers for consul:// targets, which watch the
// service's passing instances through the HTTP API with blocking queries.
// Add it to a client with grpc.WithResolvers.
type HTTPBuilder struct {
	// Config is the base API configuration (token, TLS); the target's host
	// replaces its address.
	Config Config
	// MinInterval bounds the rate of queries when the index moves quickly
	// (default 250ms).
	MinInterval time.Duration
}

// Scheme returns "consul".
func (HTTPBuilder) Scheme() string { return HTTPScheme }

// Build starts watching target.
func (b HTTPBuilder) Build(target resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	service := strings.TrimPrefix(target.URL.Path, "/")
	if target.URL.Host == "" || service == "" {
		return nil, fmt.Errorf("consul target %q: want consul://HTTP_HOST:PORT/SERVICE[?tag=T&dc=D]", target.URL.String())
	}
	cfg := b.Config
	cfg.HTTPAddr = target.URL.Host
	client, err := NewClient(cfg)
	if err != nil {
		return nil, err
	}
	minInterval := b.MinInterval
	if minInterval <= 0 {
		minInterval = 250 * time.Millisecond
	}
	q := target.URL.Query()
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{health: client.Health(), Service: service, Tag: q.Get("tag"), Datacenter: q.Get("dc"), MinInterval: minInterval}
	r := &httpResolver{cancel: cancel}
	via := "the Consul HTTP API at " + target.URL.Host
	pub := publisher{cc: cc}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		w.Watch(ctx, func(eps []Endpoint, err error) {
			if err != nil {
				cc.ReportError(err)
				return
			}
			addrs, ids := make([]string, len(eps)), make([]string, len(eps))
			for i, ep := range eps {
				addrs[i], ids[i] = ep.Addr(), ep.ServiceID
			}
			pub.publish(addrs, ids, &NoInstancesError{Service: service, Via: via})
		})
	}()
	return r, nil
}

type httpResolver struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// ResolveNow does nothing: the blocking query already reports every change.
func (*httpResolver) ResolveNow(resolver.ResolveNowOptions) {}

// Close stops the watch.
func (r *httpResolver) Close() {
	r.cancel()
	r.wg.Wait()
}

// watcher follows the passing instances of a service with blocking queries,
// following the rules in Consul's documentation: the index is reset when it
// goes backwards, a query never waits on index 0, errors back off, and
// queries are spaced by at least MinInterval.
type watcher struct {
	health      *api.Health
	Service     string
	Tag         string
	Datacenter  string
	MinInterval time.Duration
}

// Watch calls fn with the passing instances each time they change (and once
// at start), or with an error when a query fails, until ctx ends.
func (w *watcher) Watch(ctx context.Context, fn func([]Endpoint, error)) {
	var last string
	first := true
	blockingLoop(ctx, w.MinInterval, func(q *api.QueryOptions) (uint64, error) {
		q.Datacenter = w.Datacenter
		entries, meta, err := w.health.Service(w.Service, w.Tag, true, q)
		if err != nil {
			fn(nil, fmt.Errorf("query %s in Consul: %w", w.Service, err))
			return 0, err
		}
		eps := endpointsOf(entries)
		if key := fmt.Sprint(eps); first || key != last {
			fn(eps, nil)
			first, last = false, key
		}
		return meta.LastIndex, nil
	})
}

// blockingLoop runs query as a Consul blocking query until ctx ends, by the
// rules of Consul's documentation: the index is reset when it goes backwards,
// a query never waits on index 0 (that would return at once, forever),
// errors back off exponentially, and queries are spaced by at least
// minInterval however fast the index moves. After an error the index is
// reset too: an agent that restarted starts from a lower index, and waiting
// on the old one would block until the wait time runs out. query gets the options to use
// and returns the response's index.
func blockingLoop(ctx context.Context, minInterval time.Duration, query func(*api.QueryOptions) (uint64, error)) {
	var index uint64
	b := backoff{min: 100 * time.Millisecond, max: 10 * time.Second}
	for {
		started := time.Now()
		q := (&api.QueryOptions{WaitIndex: index, WaitTime: 5 * time.Minute}).WithContext(ctx)
		next, err := query(q)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			// The agent may have restarted in between with a lower index,
			// and a query waiting on an index the agent has not reached
			// blocks for the whole wait time: start over.
			index = 0
			sleep(ctx, b.next())
			continue
		}
		b.reset()
		switch {
		case next < index:
			index = 0 // went backwards (e.g. a restored snapshot): start over
		default:
			index = next
		}
		if index == 0 {
			index = 1
		}
		sleep(ctx, time.Until(started.Add(minInterval)))
	}
}

// Endpoint is one registered instance as discovery sees it.
type Endpoint struct {
	ServiceID string
	Instance  string // the process's instance ID, from the service meta
	Version   string
	Host      string
	Port      int
	// Health is the aggregated status of the instance's checks: passing,
	// warning or critical.
	Health string
}

// Addr is host:port.
func (e Endpoint) Addr() string { return net.JoinHostPort(e.Host, strconv.Itoa(e.Port)) }

// endpointsOf turns health entries into endpoints, sorted by service ID.
func endpointsOf(entries []*api.ServiceEntry) []Endpoint {
	out := make([]Endpoint, 0, len(entries))
	for _, e := range entries {
		host := e.Service.Address
		if host == "" {
			host = e.Node.Address
		}
		out = append(out, Endpoint{
			ServiceID: e.Service.ID, Instance: e.Service.Meta["instance"], Version: e.Service.Meta["version"],
			Host: host, Port: e.Service.Port, Health: e.Checks.AggregatedStatus(),
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ServiceID < out[j].ServiceID })
	return out
}

// ListEndpoints returns every registered instance of service, healthy or
// not, with its health.
func ListEndpoints(ctx context.Context, client *api.Client, service string) ([]Endpoint, error) {
	entries, _, err := client.Health().Service(service, "", false, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("list %s in Consul: %w", service, err)
	}
	return endpointsOf(entries), nil
}

func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// DNSTarget and HTTPTarget build gRPC targets for the resolvers here.
func DNSTarget(dnsServer, service string) string {
	return DNSScheme + "://" + dnsServer + "/" + url.PathEscape(service)
}

// HTTPTarget is the consul:// target of service at the agent httpAddr.
func HTTPTarget(httpAddr, service string) string {
	return HTTPScheme + "://" + httpAddr + "/" + url.PathEscape(service)
}
