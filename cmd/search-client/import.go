package main

import (
	"bufio"
	"cmp"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync/atomic"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/structpb"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/geojson"
)

func newImportCommand(o *options) *cobra.Command {
	var f importFlags
	cmd := &cobra.Command{
		Use:   "import FILE.geojson[.gz]",
		Short: "Stream the features of a GeoJSON FeatureCollection into the server, all or nothing",
		Long: `Import streams every feature of FILE ("-" for stdin; gzip is detected) to the
server, which stores them in one transaction: if the import fails or is
interrupted, nothing is stored. Features the server cannot store are listed
with their index and the reason; the exit status is then 3.

Without --key-property or --key-from-id features have no key and every
import adds new things. With a key, importing a feature whose key exists
replaces that thing, so re-running an import does not duplicate it. Keys
are unique within a collection.

--collection puts the features into that collection (created if needed;
without it: "default"). --replace makes the collection exactly this file's
stored features: things of the collection that the import does not store
are deleted in the same transaction. Searches running meanwhile see the
old collection or the new one, never a mix; an interrupted replace changes
nothing.

While it runs, a progress line on standard error shows the features sent,
the rate, the time elapsed and how much of FILE was read, when standard
error is a terminal; at the end, the server's acknowledgement. A one-line
summary goes to standard error: features sent and acknowledged, time, rate.`,
		Example: `  search-client import testdata/ne_50m_countries.geojson --key-property name
  search-client import countries.geojson --collection countries --key-property name --replace`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.run(cmd.Context(), o, cmd.Flags().Changed("timeout"), args[0])
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&f.scan.NameProperty, "name-property", "name", "feature property holding the name")
	fs.StringVar(&f.scan.KeyProperty, "key-property", "", "feature property holding the key")
	fs.BoolVar(&f.keyFromID, "key-from-id", false, "use each feature's GeoJSON id as its key")
	fs.BoolVarP(&f.verbose, "verbose", "v", false, "list every repair")
	fs.StringVar(&f.collection, "collection", "", `collection to import into (default "default")`)
	fs.BoolVar(&f.replace, "replace", false, "make the collection exactly the imported features, deleting the others, atomically")
	return cmd
}

// importFlags are the import command's flags.
type importFlags struct {
	scan       geojson.ScanOptions
	keyFromID  bool
	verbose    bool
	collection string
	replace    bool
}

// run imports the file at path; timeoutSet says whether --timeout was
// given (an import has no deadline otherwise).
func (fl *importFlags) run(parent context.Context, o *options, timeoutSet bool, path string) error {
	if fl.keyFromID && fl.scan.KeyProperty != "" {
		return exitError{exitUsage, errors.New("--key-property and --key-from-id exclude each other")}
	}
	in, err := openInput(path)
	if err != nil {
		return exitError{exitUsage, err}
	}
	defer in.close()

	conn, err := o.dial(parent)
	if err != nil {
		return err
	}
	defer conn.Close()
	// An import is one transaction and may take long: no deadline
	// unless --timeout is given.
	ctx, cancel := context.WithCancel(parent)
	if timeoutSet {
		ctx, cancel = o.callContext(parent)
	}
	defer cancel() // on any error below this cancels the stream: the server rolls back
	stream, err := searchv1.NewSearchServiceClient(conn).Import(ctx)
	if err != nil {
		return err
	}
	prog := newProgress(o.stderr, nil, "import", "features", false, in)
	defer prog.stop()
	// The options travel with the first feature, or alone when
	// there is none (an empty fl.replace empties the fl.collection).
	var opts *searchv1.ImportOptions
	if fl.collection != "" || fl.replace {
		opts = &searchv1.ImportOptions{Collection: fl.collection, Replace: fl.replace}
	}
	// Features the file itself makes unreadable (properties that are
	// not an object, say) are rejected here and not sent; sent[i] is
	// the file index of the server's feature i.
	var local []*searchv1.ImportProblem
	var sent []int64
	err = geojson.Scan(in, fl.scan, func(f geo.RawFeature) error {
		if f.Problem != "" {
			local = append(local, &searchv1.ImportProblem{Index: int64(f.Index), Reason: f.Problem})
			return nil
		}
		sent = append(sent, int64(f.Index))
		req := &searchv1.ImportRequest{Name: f.Name, GeometryGeojson: string(f.GeometryJSON), Options: opts}
		opts = nil
		if fl.keyFromID || fl.scan.KeyProperty != "" {
			req.Key = f.Key
		}
		if len(f.Properties) > 0 {
			props, err := structpb.NewStruct(f.Properties)
			if err != nil {
				return fmt.Errorf("feature %d: properties: %w", f.Index, err)
			}
			req.Properties = props
		}
		if err := stream.Send(req); err != nil {
			return fmt.Errorf("send feature %d: %w", f.Index, err)
		}
		prog.addSent()
		return nil
	})
	if errors.Is(err, io.EOF) {
		// The server ended the stream; CloseAndRecv has its status.
		err = nil
	}
	if err == nil && opts != nil {
		err = stream.Send(&searchv1.ImportRequest{Options: opts})
		if errors.Is(err, io.EOF) {
			err = nil
		}
	}
	if err != nil {
		return fmt.Errorf("%s: %w (nothing was imported)", path, err)
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return err
	}
	acked := resp.GetImported() + rejectedCount(resp)
	prog.acknowledge(acked)
	prog.stop()
	fmt.Fprintf(o.stderr, "sent %d features (%d acknowledged) %s\n", prog.sent.Load(), acked, prog.timing())
	return reportImport(o, inFileOrder(resp, sent, local), int64(len(local)), fl.verbose)
}

// inFileOrder renumbers the server's problems with the features' indexes in
// the file (sent[i] for the server's feature i) and merges in the features
// rejected before sending, in file order.
func inFileOrder(resp *searchv1.ImportResponse, sent []int64, local []*searchv1.ImportProblem) *searchv1.ImportResponse {
	renumber := func(ps []*searchv1.ImportProblem) {
		for _, p := range ps {
			if i := p.GetIndex(); i >= 0 && i < int64(len(sent)) {
				p.Index = sent[i]
			}
		}
	}
	renumber(resp.GetRejected())
	renumber(resp.GetRepairs())
	if len(local) > 0 {
		resp.Rejected = append(resp.Rejected, local...)
		slices.SortStableFunc(resp.Rejected, func(a, b *searchv1.ImportProblem) int { return cmp.Compare(a.GetIndex(), b.GetIndex()) })
	}
	return resp
}

// rejectedCount is how many features the server rejected: its count, or
// for a server from before the count, the length of its complete list.
func rejectedCount(resp *searchv1.ImportResponse) int64 {
	return max(resp.GetRejectedCount(), int64(len(resp.GetRejected())))
}

// reportImport prints the summary of resp, whose rejected list has the
// local rejections (features the client did not send) merged in.
func reportImport(o *options, resp *searchv1.ImportResponse, local int64, verbose bool) error {
	rejected := max(resp.GetRejectedCount()+local, int64(len(resp.GetRejected())))
	fmt.Fprintf(o.stdout, "imported %d features into %s (%d repaired), rejected %d",
		resp.GetImported(), resp.GetCollection(), resp.GetRepaired(), rejected)
	if n := resp.GetDeleted(); n > 0 {
		fmt.Fprintf(o.stdout, ", deleted %d things the replace did not import", n)
	}
	fmt.Fprintln(o.stdout)
	printConsistencyToken(o, resp.GetConsistencyToken())
	if verbose {
		for _, p := range resp.GetRepairs() {
			fmt.Fprintf(o.stdout, "  repaired feature %d (%s): %s\n", p.GetIndex(), p.GetName(), p.GetReason())
		}
	}
	for _, p := range resp.GetRejected() {
		fmt.Fprintf(o.stdout, "  rejected feature %d (%s): %s\n", p.GetIndex(), p.GetName(), p.GetReason())
	}
	if resp.GetTruncated() {
		fmt.Fprintf(o.stdout, "  (the server lists the problems of the first features only: %d of %d rejections and %d of %d repairs)\n",
			int64(len(resp.GetRejected()))-local, resp.GetRejectedCount(), len(resp.GetRepairs()), resp.GetRepairsCount())
	}
	if rejected > 0 {
		return exitError{exitRejected, fmt.Errorf("%d of %d features were rejected", rejected, rejected+resp.GetImported())}
	}
	return nil
}

// openInput opens path ("-" for stdin), decompressing gzip when the data
// starts with its magic number. It also says the input's size, when it is
// a regular file, and counts the bytes read from it, for progress.
func openInput(path string) (*input, error) {
	var f *os.File
	if path == "-" {
		f = os.Stdin
	} else {
		var err error
		if f, err = os.Open(path); err != nil {
			return nil, err
		}
	}
	in := &input{read: new(atomic.Int64)}
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		in.size = fi.Size()
	}
	br := bufio.NewReaderSize(countingReader{f, in.read}, 1<<16)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		in.Reader, in.close = zr, func() { zr.Close(); f.Close() }
		return in, nil
	}
	in.Reader, in.close = br, func() { f.Close() }
	return in, nil
}
