package main

import (
	"os"
	"testing"

	"github.com/geosearch/search/internal/server/servertest"
)

// TestMain starts what the tests of the command share (servertest.Main):
// the PostgreSQL cluster, the Consul agent and the binaries.
func TestMain(m *testing.M) { os.Exit(servertest.Main(m)) }
