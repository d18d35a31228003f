// Command search-server serves point-in-polygon and name searches over
// PostGIS through gRPC, and applies the database migrations.
//
// Configuration comes from the environment (see README.md); flags override
// it. Without a subcommand it serves.
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

	"github.com/geosearch/search/internal/postgis"
)

// Exit codes: 1 for a failure while running, 2 for bad configuration or
// usage, so that supervisors can tell a crash from a misconfiguration.
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
		var ce configError
		if errors.As(err, &ce) {
			os.Exit(exitConfig)
		}
		os.Exit(exitFailure)
	}
}

// flagOverrides are the flags that override environment variables.
type flagOverrides struct {
	databaseURL, listenAddr, logLevel string
}

func (f flagOverrides) apply(cmd *cobra.Command, c *config) error {
	flags := cmd.Flags()
	if flags.Changed("database-url") {
		c.DB.URL = f.databaseURL
	}
	if flags.Changed("listen-addr") {
		c.GRPC.ListenAddr = f.listenAddr
	}
	if flags.Changed("log-level") {
		if err := c.LogLevel.UnmarshalText([]byte(f.logLevel)); err != nil {
			return configError{fmt.Errorf("--log-level: %w", err)}
		}
	}
	return c.validate()
}

func newRootCommand(env envconfig.Lookuper, stdout io.Writer) *cobra.Command {
	var fo flagOverrides
	root := &cobra.Command{
		Use:           "search-server",
		Short:         "Serve geo searches over gRPC (the default) or migrate the database",
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd.Context(), env)
			if err != nil {
				return err
			}
			if err := fo.apply(cmd, &cfg); err != nil {
				return err
			}
			return serve(cmd.Context(), cfg, stdout)
		},
	}
	root.PersistentFlags().StringVar(&fo.databaseURL, "database-url", "", "PostgreSQL URL (overrides DATABASE_URL)")
	root.PersistentFlags().StringVar(&fo.logLevel, "log-level", "", "debug, info, warn or error (overrides LOG_LEVEL)")
	root.Flags().StringVar(&fo.listenAddr, "listen-addr", "", "address to listen on (overrides LISTEN_ADDR, default :50051)")
	root.AddCommand(newMigrateCommand(env, &fo))
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return configError{err} })
	return root
}

func serve(ctx context.Context, cfg config, stdout io.Writer) error {
	srv, err := NewServer(ctx, cfg, stdout)
	if err != nil {
		return err
	}
	defer srv.Close()
	return srv.Run(ctx)
}

func newMigrateCommand(env envconfig.Lookuper, fo *flagOverrides) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "migrate [up | down [N] | version]",
		Short: "Apply (up, the default) or revert (down: the last one, N, or --all) the schema migrations",
		Args:  cobra.MaximumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(cmd.Context(), env)
			if err != nil {
				return err
			}
			if err := fo.apply(cmd, &cfg); err != nil {
				return err
			}
			action := "up"
			if len(args) > 0 {
				action = args[0]
			}
			mg, err := postgis.NewMigrator(cfg.DB.URL)
			if err != nil {
				return err
			}
			defer mg.Close()
			switch action {
			case "up":
				err = mg.Up()
			case "down":
				n := 1
				if len(args) == 2 {
					if _, err := fmt.Sscanf(args[1], "%d", &n); err != nil || n < 1 {
						return configError{fmt.Errorf("migrate down: N must be a positive number, got %q", args[1])}
					}
				}
				if all {
					n = 0
				}
				err = mg.Down(n)
			case "version":
			default:
				return configError{fmt.Errorf("migrate: unknown action %q; want up, down or version", action)}
			}
			if err != nil {
				return err
			}
			v, dirty, err := mg.Version()
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "schema version %d", v)
			if dirty {
				fmt.Fprint(cmd.OutOrStdout(), " (dirty: a migration failed half-way; fix it, then force the version)")
			}
			fmt.Fprintln(cmd.OutOrStdout())
			return nil
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "with down: revert every migration")
	return cmd
}
