package main

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	searchv1 "github.com/geosearch/search/proto/search/v1"
)

func newGetCommand(o *options) *cobra.Command {
	var (
		req    searchv1.GetThingRequest
		asJSON bool
		fields []string
	)
	cmd := &cobra.Command{
		Use:   "get (--id N | --collection NAME --key KEY)",
		Short: "Show one thing, by id or by collection and key",
		Example: `  search-client get --id 42
  search-client get --collection countries --key France --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			idSet := cmd.Flags().Changed("id")
			if idSet == (req.Key != "") {
				return exitError{exitUsage, errors.New("give --id, or --collection and --key")}
			}
			if idSet && req.Collection != "" {
				return exitError{exitUsage, errors.New("--id and --collection exclude each other")}
			}
			req.ReadMask = readMask(fields)
			return o.call(cmd.Context(), func(ctx context.Context, conn *grpc.ClientConn) error {
				th, err := searchv1.NewSearchServiceClient(conn).GetThing(ctx, &req)
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(o.stdout, th)
				}
				tw := newThingTable(o.stdout, fields, false)
				tw.row(th)
				return tw.Flush()
			})
		},
	}
	f := cmd.Flags()
	f.Int64Var(&req.Id, "id", 0, "the thing's id")
	f.StringVar(&req.Collection, "collection", "", `the key's collection (default "default")`)
	f.StringVar(&req.Key, "key", "", "the thing's key within the collection")
	f.BoolVar(&req.IncludeGeometry, "geometry", false, "include the geometry as GeoJSON (with --json)")
	consistencyTokenFlag(f, &req.ConsistencyToken)
	f.BoolVar(&asJSON, "json", false, "print protojson")
	f.StringSliceVar(&fields, "fields", nil, "only these fields, comma-separated (id,name,key,collection,properties,bbox,geometry_geojson; * for all)")
	return cmd
}

func newDeleteCommand(o *options) *cobra.Command {
	var req searchv1.DeleteThingsRequest
	cmd := &cobra.Command{
		Use:   "delete (--collection NAME --key KEY [--key KEY...] | --id N [--id N...])",
		Short: "Delete things by key within a collection, or by id, with their parts, in one transaction",
		Example: `  search-client delete --collection countries --key France --key Spain
  search-client delete --id 42`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case len(req.Keys) == 0 && len(req.Ids) == 0:
				return exitError{exitUsage, errors.New("give --collection and --key, or --id")}
			case len(req.Keys) > 0 && len(req.Ids) > 0:
				return exitError{exitUsage, errors.New("--key and --id exclude each other")}
			case len(req.Keys) > 0 && req.Collection == "":
				return exitError{exitUsage, errors.New("--key needs --collection")}
			}
			return o.call(cmd.Context(), func(ctx context.Context, conn *grpc.ClientConn) error {
				resp, err := searchv1.NewSearchServiceClient(conn).DeleteThings(ctx, &req)
				if err != nil {
					return err
				}
				fmt.Fprintf(o.stdout, "deleted %d things\n", resp.GetDeleted())
				printConsistencyToken(o, resp.GetConsistencyToken())
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Collection, "collection", "", "the keys' collection")
	f.StringArrayVar(&req.Keys, "key", nil, "key of a thing to delete (repeatable)")
	f.Int64SliceVar(&req.Ids, "id", nil, "id of a thing to delete (repeatable)")
	return cmd
}

func newDeleteCollectionCommand(o *options) *cobra.Command {
	return &cobra.Command{
		Use:     "delete-collection NAME",
		Short:   "Delete a collection and all its things in one transaction",
		Example: `  search-client delete-collection postal-zones`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.call(cmd.Context(), func(ctx context.Context, conn *grpc.ClientConn) error {
				resp, err := searchv1.NewSearchServiceClient(conn).DeleteCollection(ctx, &searchv1.DeleteCollectionRequest{Name: args[0]})
				if err != nil {
					return err
				}
				fmt.Fprintf(o.stdout, "deleted collection %s and its %d things\n", args[0], resp.GetDeleted())
				printConsistencyToken(o, resp.GetConsistencyToken())
				return nil
			})
		},
	}
}

func newCollectionsCommand(o *options) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "collections",
		Short: "List the collections with their number of things, bounding box and last change",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.call(cmd.Context(), func(ctx context.Context, conn *grpc.ClientConn) error {
				resp, err := searchv1.NewSearchServiceClient(conn).ListCollections(ctx, &searchv1.ListCollectionsRequest{})
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(o.stdout, resp)
				}
				if len(resp.GetCollections()) == 0 {
					fmt.Fprintln(o.stdout, "no collections")
					return nil
				}
				tw := tabwriter.NewWriter(o.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tTHINGS\tBBOX (min lng, min lat, max lng, max lat)\tUPDATED")
				for _, c := range resp.GetCollections() {
					bbox := "-"
					if b := c.GetBbox(); b != nil {
						bbox = fmt.Sprintf("%.4f, %.4f, %.4f, %.4f", b.GetMinLng(), b.GetMinLat(), b.GetMaxLng(), b.GetMaxLat())
					}
					fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", c.GetName(), c.GetCount(), bbox, c.GetUpdateTime().AsTime().UTC().Format(time.RFC3339))
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print protojson")
	return cmd
}
