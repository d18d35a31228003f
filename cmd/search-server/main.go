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
	"strconv"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/sethvargo/go-envconfig"
	"github.com/spf13/cobra"

	"github.com/geosearch/search/internal/config"
	"github.com/geosearch/search/internal/postgis"
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
			st, err := startupConfig(cmd.Context(), fv.lookuper(cmd), env)
			if err != nil {
				return err
			}
			srv, err := NewServer(cmd.Context(), st.cfg, stdout)
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

func newConfigCommand(env envconfig.Lookuper, fv *flagValues) *cobra.Command {
	return &cobra.Command{
		Use:   "config",
		Short: "Print the effective configuration (secrets redacted), where each value comes from, whether it can change live, and the values refused",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			flags := fv.lookuper(cmd)
			st, err := startupConfig(cmd.Context(), flags, env)
			if err != nil {
				return err
			}
			for _, n := range st.notices {
				fmt.Fprintf(cmd.ErrOrStderr(), "%s: %s %v\n", n.Level, n.Msg, n.Attrs)
			}
			rejected := map[string]config.Rejection{}
			for _, r := range st.rejected {
				rejected[r.Var] = r
			}
			if st.reloader != nil {
				for _, r := range st.reloader.Rejected() {
					rejected[r.Var] = r
				}
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "VARIABLE\tKV KEY\tVALUE\tSOURCE\tLIVE\tREJECTED")
			for _, s := range config.Settings(st.cfg) {
				source := config.Source(s.Var, flags, env, st.kv)
				note := ""
				if r, ok := rejected[s.Var]; ok {
					note = fmt.Sprintf("%q: %s", r.Value, r.Reason)
					if source == "environment" { // the value shown is the default
						source = "default"
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Var, s.Key, strconv.Quote(s.Value),
					source, map[bool]string{true: "live", false: "restart"}[s.Live], note)
			}
			return tw.Flush()
		},
	}
}

func newMigrateCommand(env envconfig.Lookuper, fv *flagValues) *cobra.Command {
	var all bool
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "migrate [up | down [N] | version | force V]",
		Short: "Apply (up, the default) or revert (down: the last one, N, or --all) the schema migrations, as DATABASE_WRITE_URL's role if set (else DATABASE_URL's; --database-url wins)",
		Args:  cobra.MaximumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := startupConfig(cmd.Context(), fv.lookuper(cmd), env)
			if err != nil {
				return err
			}
			cfg := st.cfg
			action := "up"
			if len(args) > 0 {
				action = args[0]
			}
			// Migrations need a role that may change the schema: the write
			// connection unless --database-url names one.
			url := cfg.DB.URL
			if cfg.DB.WriteURL != "" && !cmd.Flags().Changed("database-url") {
				url = cfg.DB.WriteURL
			}
			// A database started beside this job (docker compose) may not
			// accept connections yet: wait for it rather than fail the job.
			if err := postgis.WaitForDatabase(cmd.Context(), url, wait, func(attempt int, err error) {
				if attempt == 1 {
					fmt.Fprintf(cmd.ErrOrStderr(), "waiting up to %s for the database: %v\n", wait, err)
				}
			}); err != nil {
				return err
			}
			mg, err := postgis.NewMigrator(url)
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
					if n, err = strconv.Atoi(args[1]); err != nil || n < 1 {
						return &config.Error{Err: fmt.Errorf("migrate down: N must be a positive number, got %q", args[1])}
					}
				}
				if all {
					n = 0
				}
				err = mg.Down(n)
			case "version":
			case "force":
				// After a failed migration left the version dirty and the
				// operator made the schema match V.
				v, convErr := strconv.Atoi(args[len(args)-1])
				if len(args) != 2 || convErr != nil || v < 0 {
					return &config.Error{Err: errors.New("migrate force: give the version the schema is at, e.g. migrate force 5")}
				}
				err = mg.Force(v)
			default:
				return &config.Error{Err: fmt.Errorf("migrate: unknown action %q; want up, down, version or force", action)}
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
	cmd.Flags().DurationVar(&wait, "wait", time.Minute, "how long to retry the first connection while the database is starting (0: try once)")
	return cmd
}
