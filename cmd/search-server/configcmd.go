package main

import (
	"fmt"
	"strconv"
	"text/tabwriter"

	"github.com/sethvargo/go-envconfig"
	"github.com/spf13/cobra"

	"github.com/geosearch/search/internal/config"
	"github.com/geosearch/search/internal/server"
)

// newConfigCommand is search-server config: the effective settings, where
// each comes from, and the values refused.
func newConfigCommand(env envconfig.Lookuper, fv *flagValues) *cobra.Command {
	return &cobra.Command{
		Use:   "config",
		Short: "Print the effective configuration (secrets redacted), where each value comes from, whether it can change live, and the values refused",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			flags := fv.lookuper(cmd)
			st, err := server.LoadStartup(cmd.Context(), flags, env)
			if err != nil {
				return err
			}
			for _, n := range st.Notices {
				fmt.Fprintf(cmd.ErrOrStderr(), "%s: %s %v\n", n.Level, n.Msg, n.Attrs)
			}
			rejected := map[string]config.Rejection{}
			for _, r := range st.Rejected {
				rejected[r.Var] = r
			}
			if st.Reloader != nil {
				for _, r := range st.Reloader.Rejected() {
					rejected[r.Var] = r
				}
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "VARIABLE\tKV KEY\tVALUE\tSOURCE\tLIVE\tREJECTED")
			for _, s := range config.Settings(st.Config) {
				source := config.Source(s.Var, flags, env, st.KV)
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
