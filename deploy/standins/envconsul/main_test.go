package main

import (
	"os"
	"testing"
	"time"

	"github.com/hashicorp/hcl"
)

// TestReadsTheImagesConfig: the stand-in reads deploy/envconsul.hcl, the
// file the image runs it with, into the settings envconsul would use.
func TestReadsTheImagesConfig(t *testing.T) {
	text, err := os.ReadFile("../../envconsul.hcl")
	if err != nil {
		t.Fatal(err)
	}
	var c config
	if err := hcl.Unmarshal(text, &c); err != nil {
		t.Fatal(err)
	}
	o, err := options(c)
	if err != nil {
		t.Fatalf("%v (%+v)", err, c)
	}
	if o.Prefix != "search-service/config" || o.Command != "/usr/local/bin/search-server" || o.Splay != 10*time.Second || o.KillTimeout != 40*time.Second {
		t.Errorf("options = %+v", o)
	}
}
