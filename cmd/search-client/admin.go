package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	searchv1 "github.com/geosearch/search/proto/search/v1"
)

func newMonitorCommand(o *options) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "monitor",
		Short: "Show the server's counts and identity",
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
