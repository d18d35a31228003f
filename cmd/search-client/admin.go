package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/consul"
)

func newMonitorCommand(o *options) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "monitor",
		Short: "Show the server's counts, identity, geofencing, the in-memory index, and the configuration values it rejected",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.call(cmd.Context(), func(ctx context.Context, conn *grpc.ClientConn) error {
				resp, err := searchv1.NewSearchServiceClient(conn).Monitor(ctx, &searchv1.MonitorRequest{})
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(o.stdout, resp)
				}
				up := time.Duration(resp.GetUptimeSeconds() * float64(time.Second)).Round(time.Second)
				fmt.Fprintf(o.stdout, "things:    %d\nparts:     %d\ninstance:  %s\nversion:   %s\nuptime:    %s\n",
					resp.GetNThings(), resp.GetNParts(), resp.GetInstanceId(), resp.GetVersion(), up)
				if g := resp.GetGeofence(); g != nil {
					fmt.Fprintf(o.stdout, "geofence:  %d positions consumed (%d rejected, %d stale), %d events, %d published, lag %d, %d devices, outbox %d\n",
						g.GetPositionsConsumed(), g.GetPositionsRejected(), g.GetPositionsStale(), g.GetEvents(),
						g.GetEventsPublished(), g.GetConsumerLag(), g.GetDevicesTracked(), g.GetOutbox())
				}
				// The in-memory point index, per collection (MEMINDEX).
				for _, m := range resp.GetMemoryIndexes() {
					if m.GetInMemory() {
						fmt.Fprintf(o.stdout, "memory:    %s in memory: %d things, %d vertices, %d bytes, at %s\n",
							m.GetCollection(), m.GetThings(), m.GetVertices(), m.GetBytes(), m.GetLsn())
					} else {
						fmt.Fprintf(o.stdout, "memory:    %s on the database: %s\n", m.GetCollection(), m.GetReason())
					}
				}
				// Values the instance refused and runs without (at the
				// default, or the previous value): worth a look.
				for _, r := range resp.GetRejectedSettings() {
					fmt.Fprintf(o.stdout, "rejected:  %s=%q: %s\n", r.GetVariable(), r.GetValue(), r.GetReason())
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print protojson")
	return cmd
}

func newHealthCommand(o *options) *cobra.Command {
	var service string
	cmd := &cobra.Command{
		Use:   "health",
		Short: "Ask the standard gRPC health service; exit 1 unless SERVING",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.call(cmd.Context(), func(ctx context.Context, conn *grpc.ClientConn) error {
				resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
				if err != nil {
					return err
				}
				fmt.Fprintln(o.stdout, resp.GetStatus())
				if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
					return fmt.Errorf("%s is %s", o.addr, resp.GetStatus())
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&service, "service", "", `service to check ("" is the whole server; or search.v1.SearchService)`)
	return cmd
}

func newInstancesCommand(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "instances",
		Short: "List the registered instances of the service and their health, from the Consul HTTP API",
		Long: `Instances lists every registered instance with its health. Consul DNS, which
search and the other commands use by default, answers only the passing ones.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			client, err := consul.NewClient(consul.Config{HTTPAddr: o.consulHTTP, Token: o.consulToken})
			if err != nil {
				return err
			}
			ctx, cancel := o.callContext(cmd.Context())
			defer cancel()
			eps, err := consul.ListEndpoints(ctx, client, o.service)
			if err != nil {
				return fmt.Errorf("%w (is a Consul agent running? --consul-http sets its address)", err)
			}
			if len(eps) == 0 {
				return &consul.NoInstancesError{Service: o.service, Via: "the Consul HTTP API at " + o.consulHTTP}
			}
			tw := tabwriter.NewWriter(o.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ADDRESS\tHEALTH\tINSTANCE\tSERVICE ID\tVERSION")
			for _, ep := range eps {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", ep.Addr(), ep.Health, ep.Instance, ep.ServiceID, ep.Version)
			}
			return tw.Flush()
		},
	}
}
