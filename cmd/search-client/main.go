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
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
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

// describe renders gRPC errors as "Code: message"; others as they are.
func describe(err error) string {
	if s, ok := status.FromError(err); ok {
		return fmt.Sprintf("%s: %s", s.Code(), s.Message())
	}
	return err.Error()
}

// options are the flags every subcommand shares.
type options struct {
	addr    string
	timeout time.Duration
	stdout  io.Writer
	stderr  io.Writer
}

func newRootCommand(stdout, stderr io.Writer, getenv func(string) string) *cobra.Command {
	o := &options{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:           "search-client",
		Short:         "Search, import into and check a geo search server",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	defaultAddr := getenv("SEARCH_ADDR")
	if defaultAddr == "" {
		defaultAddr = "localhost:50051"
	}
	root.PersistentFlags().StringVar(&o.addr, "addr", defaultAddr, "server address host:port (default from SEARCH_ADDR)")
	root.PersistentFlags().DurationVar(&o.timeout, "timeout", 30*time.Second, "deadline of each call (0: none; import has none unless given)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return exitError{exitUsage, err} })
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newSearchCommand(o), newImportCommand(o), newMonitorCommand(o), newHealthCommand(o))
	return root
}

// dial returns a client connection to the server. It does not wait for the
// server: the first call does, and fails with the server's status.
func (o *options) dial() (*grpc.ClientConn, error) {
	conn, err := grpc.NewClient(o.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, exitError{exitUsage, fmt.Errorf("--addr %q: %w", o.addr, err)}
	}
	return conn, nil
}

// call dials the server and runs fn under --timeout, closing the connection
// afterwards.
func (o *options) call(ctx context.Context, fn func(ctx context.Context, conn *grpc.ClientConn) error) error {
	conn, err := o.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := o.callContext(ctx)
	defer cancel()
	return fn(ctx, conn)
}

// callContext applies --timeout to ctx.
func (o *options) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if o.timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, o.timeout)
}
