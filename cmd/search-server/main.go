// Command search-server serves point-in-polygon and name searches over
// PostGIS through gRPC, and applies the database migrations.
//
// Configuration comes from the environment (see README.md), with flags on
// top and, when CONFIG_CONSUL_PREFIX is set, Consul KV below. Without a
// subcommand it serves.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/sethvargo/go-envconfig"
	"github.com/spf13/cobra"

	"github.com/geosearch/search/internal/config"
	"github.com/geosearch/search/internal/server"
)

// Exit codes: 1 for a failure while running, 2 for bad configuration or
// usage, so that supervisors (envconsul, systemd) can tell a crash from a
// misconfiguration.
const (
	exitFailure = 1
	exitConfig  = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := newRootCommand(envconfig.OsLookuper(), os.Stdout).ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "search-server:", err)
		var ce *config.Error
		if errors.As(err, &ce) {
			os.Exit(exitConfig)
		}
		os.Exit(exitFailure)
	}
}

// flagValues holds the flags that override environment variables.
type flagValues struct {
	databaseURL, listenAddr, logLevel string
}

// lookuper returns the flags the user gave, under their variables' names.
func (f *flagValues) lookuper(cmd *cobra.Command) envconfig.Lookuper {
	m := map[string]string{}
	for flag, v := range map[string]struct {
		name  string
		value string
	}{
		"database-url": {"DATABASE_URL", f.databaseURL},
		"listen-addr":  {"LISTEN_ADDR", f.listenAddr},
		"log-level":    {"LOG_LEVEL", f.logLevel},
	} {
		if fl := cmd.Flags().Lookup(flag); fl != nil && fl.Changed {
			m[v.name] = v.value
		}
	}
	return envconfig.MapLookuper(m)
}

func newRootCommand(env envconfig.Lookuper, stdout io.Writer) *cobra.Command {
	var fv flagValues
	root := &cobra.Command{
		Use:           "search-server",
		Short:         "Serve geo searches over gRPC (the default), print the configuration, or migrate the database",
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := server.LoadStartup(cmd.Context(), fv.lookuper(cmd), env)
			if err != nil {
				return err
			}
			srv, err := server.New(cmd.Context(), st.Config, stdout, buildVersion())
			if err != nil {
				return err
			}
			defer srv.Close()
			srv.ReportConfig(cmd.Context(), st)
			return srv.Run(cmd.Context())
		},
	}
	root.PersistentFlags().StringVar(&fv.databaseURL, "database-url", "", "PostgreSQL URL (overrides DATABASE_URL)")
	root.PersistentFlags().StringVar(&fv.logLevel, "log-level", "", "debug, info, warn or error (overrides LOG_LEVEL)")
	root.PersistentFlags().StringVar(&fv.listenAddr, "listen-addr", "", "address to listen on (overrides LISTEN_ADDR, default :50051)")
	root.AddCommand(newMigrateCommand(env, &fv), newConfigCommand(env, &fv))
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &config.Error{Err: err} })
	return root
}
