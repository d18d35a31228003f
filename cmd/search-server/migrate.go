package main

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/sethvargo/go-envconfig"
	"github.com/spf13/cobra"

	"github.com/geosearch/search/internal/config"
	"github.com/geosearch/search/internal/postgis"
	"github.com/geosearch/search/internal/server"
)

// newMigrateCommand is search-server migrate: the schema migrations, run
// once the database accepts connections.
func newMigrateCommand(env envconfig.Lookuper, fv *flagValues) *cobra.Command {
	var all bool
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "migrate [up | down [N] | version | force V]",
		Short: "Apply (up, the default) or revert (down: the last one, N, or --all) the schema migrations, as DATABASE_WRITE_URL's role if set (else DATABASE_URL's; --database-url wins)",
		Args:  cobra.MaximumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := server.LoadStartup(cmd.Context(), fv.lookuper(cmd), env)
			if err != nil {
				return err
			}
			cfg := st.Config
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
