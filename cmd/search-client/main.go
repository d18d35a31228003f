// Command search-client queries a search-server, imports GeoJSON into it and
// checks its health.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/geosearch/search/internal/consul"
	"github.com/geosearch/search/internal/grpcapi"
)

// Exit codes: 1 for a failed call, 2 for bad usage, 3 when an import
// succeeded but rejected some features.
const (
	exitFailure  = 1
	exitUsage    = 2
	exitRejected = 3
)

// exitError carries an exit code other than exitFailure.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := newRootCommand(os.Stdout, os.Stderr, os.Getenv).ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "search-client:", describe(err))
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		os.Exit(exitFailure)
	}
}

// describe renders gRPC errors as "Code: message" with the server's own
// message; what the client added around it (retries) follows in brackets.
func describe(err error) string {
	var se interface{ GRPCStatus() *status.Status }
	if !errors.As(err, &se) {
		return err.Error()
	}
	s := se.GRPCStatus()
	out := fmt.Sprintf("%s: %s", s.Code(), s.Message())
	if outer, _, found := strings.Cut(err.Error(), ": rpc error: "); found {
		out += " (" + outer + ")"
	}
	return out
}

// options are the flags every subcommand shares.
type options struct {
	addr       string
	consulDNS  string
	consulHTTP string
	service    string
	// consulToken is the Consul ACL token (CONSUL_HTTP_TOKEN).
	consulToken string
	// token is the bearer token sent to the server.
	token     string
	tokenFile string
	tls       bool
	tlsConf   grpcapi.ClientTLS
	timeout   time.Duration
	stdout    io.Writer
	stderr    io.Writer
}

func envOr(getenv func(string) string, name, def string) string {
	if v := getenv(name); v != "" {
		return v
	}
	return def
}

func newRootCommand(stdout, stderr io.Writer, getenv func(string) string) *cobra.Command {
	o := &options{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:           "search-client",
		Short:         "Search, import into and check a geo search server",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&o.addr, "addr", getenv("SEARCH_ADDR"),
		"server host:port, or consul://HTTP_ADDR/SERVICE to discover through the HTTP API; empty: discover through Consul DNS (env SEARCH_ADDR)")
	pf.StringVar(&o.consulDNS, "consul-dns", envOr(getenv, "CONSUL_DNS_ADDR", "127.0.0.1:8600"), "Consul DNS server (env CONSUL_DNS_ADDR)")
	pf.StringVar(&o.consulHTTP, "consul-http", envOr(getenv, "CONSUL_HTTP_ADDR", "127.0.0.1:8500"), "Consul HTTP API, for instances (env CONSUL_HTTP_ADDR)")
	pf.StringVar(&o.service, "service", envOr(getenv, "SERVICE_NAME", "search-service"), "service name in Consul (env SERVICE_NAME)")
	pf.DurationVar(&o.timeout, "timeout", 30*time.Second, "deadline of each call (0: none; import has none unless given)")
	pf.BoolVar(&o.tls, "tls", getenv("SEARCH_TLS") == "true", "use TLS, verifying the server against the system's CAs (env SEARCH_TLS=true); implied by the other --tls flags")
	pf.StringVar(&o.tlsConf.CAFile, "tls-ca", getenv("SEARCH_TLS_CA"), "CA certificates (PEM) that sign the server's certificate (env SEARCH_TLS_CA)")
	pf.StringVar(&o.tlsConf.ServerName, "tls-server-name", getenv("SEARCH_TLS_SERVER_NAME"), "name the server's certificate must carry; default: the host dialled (env SEARCH_TLS_SERVER_NAME)")
	pf.StringVar(&o.tlsConf.CertFile, "tls-cert", getenv("SEARCH_TLS_CERT"), "client certificate (PEM), for servers that require one (env SEARCH_TLS_CERT)")
	pf.StringVar(&o.tlsConf.KeyFile, "tls-key", getenv("SEARCH_TLS_KEY"), "the client certificate's key (PEM) (env SEARCH_TLS_KEY)")
	// The token itself is no flag: command lines are visible to every user
	// of the host.
	pf.StringVar(&o.tokenFile, "token-file", getenv("SEARCH_TOKEN_FILE"), "file holding the bearer token sent to the server (env SEARCH_TOKEN_FILE; or the token itself in SEARCH_TOKEN)")
	o.token = getenv("SEARCH_TOKEN")
	o.consulToken = getenv("CONSUL_HTTP_TOKEN")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return exitError{exitUsage, err} })
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newSearchCommand(o), newLocateCommand(o), newImportCommand(o), newGetCommand(o), newDeleteCommand(o), newDeleteCollectionCommand(o), newCollectionsCommand(o), newMonitorCommand(o), newHealthCommand(o), newInstancesCommand(o), newLogsCommand(o, getenv),
		newTrackCommand(o), newEventsCommand(o, getenv))
	return root
}

// dial returns a client connection balanced over every instance found: by
// --addr when given, else through Consul DNS. Through DNS it first waits
// for an instance to be listed, until ctx ends (at most --timeout, 30s
// when there is none), so that a moment with nobody passing (every
// instance restarting at once under envconsul) is waited out, and nobody
// at all is a clear message rather than a failed call. Idempotent calls
// through discovery wait for a ready instance too (waitForReady in
// grpcapi.ClientServiceConfig); a plain --addr fails fast instead.
func (o *options) dial(ctx context.Context) (*grpc.ClientConn, error) {
	target := o.addr
	direct := target != "" && !strings.HasPrefix(target, consul.HTTPScheme+"://") && !strings.HasPrefix(target, consul.DNSScheme+"://")
	if target == "" {
		if err := o.waitForInstances(ctx); err != nil {
			return nil, err
		}
		target = consul.DNSTarget(o.consulDNS, o.service)
	}
	opts, err := o.credentials()
	if err != nil {
		return nil, exitError{exitUsage, err}
	}
	opts = append(opts,
		grpc.WithResolvers(consul.DNSBuilder{}, consul.HTTPBuilder{Config: consul.Config{Token: o.consulToken}}),
		grpc.WithDefaultServiceConfig(grpcapi.ClientServiceConfig),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxRecvBytes)))
	if direct {
		opts = append(opts, grpc.WithDefaultCallOptions(grpc.WaitForReady(false)))
	}
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		return nil, exitError{exitUsage, fmt.Errorf("--addr %q: %w", o.addr, err)}
	}
	return conn, nil
}

// maxRecvBytes is the largest answer the CLI takes, above grpc-go's 4 MiB
// default: a Get of a detailed geometry, or the import summary of a server
// from before summaries were bounded, which listed every problem (60,000
// repaired polygons made 5 MB).
const maxRecvBytes = 64 << 20

// dnsPoll is how often the CLI asks Consul DNS again while it lists nobody.
const dnsPoll = 200 * time.Millisecond

// waitForInstances waits until Consul DNS lists an instance of the service,
// until ctx ends or, without a deadline, for 30s. A DNS server that does not
// answer fails at once: that is no passing moment.
func (o *options) waitForInstances(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
	}
	for {
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		addrs, err := consul.DNSLookup{Server: o.consulDNS}.Lookup(lctx, o.service)
		cancel()
		if err != nil && !ended(ctx) {
			return fmt.Errorf("%w (is a Consul agent running? --consul-dns sets its DNS address; --addr skips discovery)", err)
		}
		if len(addrs) > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return &consul.NoInstancesError{Service: o.service, Via: "Consul DNS at " + o.consulDNS}
		case <-time.After(dnsPoll):
		}
	}
}

// ended says whether ctx is done or past its deadline. A lookup cut by the
// deadline fails on its socket's deadline, which can come a moment before
// ctx.Err() is set (on a loaded machine, long enough to be seen): that
// failure is the wait ending, not a DNS server that does not answer.
func ended(ctx context.Context) bool {
	d, ok := ctx.Deadline()
	return ctx.Err() != nil || ok && !time.Now().Before(d)
}

// credentials returns the transport security and per-call token options.
func (o *options) credentials() ([]grpc.DialOption, error) {
	if o.tokenFile != "" {
		b, err := os.ReadFile(o.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("--token-file: %w", err)
		}
		o.token = strings.TrimSpace(string(b))
	}
	useTLS := o.tls || o.tlsConf != (grpcapi.ClientTLS{})
	if !useTLS {
		if o.token != "" {
			return nil, errors.New("SEARCH_TOKEN needs TLS (--tls or --tls-ca): a token must not travel in clear text")
		}
		return []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, nil
	}
	opts, err := o.tlsConf.DialOptions(o.token)
	if err != nil {
		return nil, fmt.Errorf("--tls: %w", err)
	}
	return opts, nil
}

// call dials the server and runs fn, both under --timeout, closing the
// connection afterwards.
func (o *options) call(ctx context.Context, fn func(ctx context.Context, conn *grpc.ClientConn) error) error {
	ctx, cancel := o.callContext(ctx)
	defer cancel()
	conn, err := o.dial(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return fn(ctx, conn)
}

// callContext applies --timeout to ctx.
func (o *options) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if o.timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, o.timeout)
}
