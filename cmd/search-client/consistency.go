package main

import (
	"fmt"

	"github.com/spf13/pflag"
)

// A write (import, delete, delete-collection) prints its consistency
// token; a read given it with --consistency-token reflects that write on
// any instance, even one reading from a replica that has not replayed it
// yet (the server waits for it, within the deadline). See docs/REPLICAS.md.

// printConsistencyToken prints a write's token, when the server gave one.
func printConsistencyToken(o *options, token string) {
	if token != "" {
		fmt.Fprintf(o.stdout, "consistency token: %s\n", token)
	}
}

// consistencyTokenFlag adds --consistency-token to a read command.
func consistencyTokenFlag(f *pflag.FlagSet, token *string) {
	f.StringVar(token, "consistency-token", "", "the consistency token a write printed: answer only once this write is visible (waits for a replica to replay it)")
}
