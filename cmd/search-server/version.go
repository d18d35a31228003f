package main

import (
	"fmt"
	"runtime/debug"
)

// stampedVersion is set at link time where the Go tool cannot stamp VCS
// information, as in the Docker build (-ldflags "-X main.stampedVersion=...").
var stampedVersion string

// buildVersion is the version stamped at link time, else the module version
// or the VCS revision the binary was built from.
func buildVersion() string {
	if stampedVersion != "" {
		return stampedVersion
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = "-dirty"
			}
		}
	}
	if (v == "" || v == "(devel)") && rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		return fmt.Sprintf("devel-%s%s", rev, modified)
	}
	if v == "" {
		return "unknown"
	}
	return v
}
