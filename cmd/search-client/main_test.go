package main

import (
	"fmt"
	"os"
	"testing"

	"github.com/geosearch/search/internal/postgis/postgistest"
	"github.com/geosearch/search/internal/server/servertest"
)

// The CLI's tests run the search-client binary against a search-server
// process (servertest.StartBinary) on a database of the shared test
// cluster: what a user runs. The CLI binary is built with -race when the
// tests are; the server is not (see servertest.BuildBinaries).

func TestMain(m *testing.M) {
	os.Exit(func() int {
		dir, err := servertest.BuildBinaries(raceEnabled)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		return postgistest.Main(m, &servertest.Cluster)
	}())
}
