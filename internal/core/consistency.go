package core

import (
	"context"

	"github.com/geosearch/search/internal/geo"
)

// ConsistencyHeader is the HTTP header that carries a consistency token, as
// gRPC messages carry it in their consistency_token fields: in a request,
// the write position a read waits for; in an answer, the position it
// reflects.
const ConsistencyHeader = "Consistency-Token"

// AwaitToken waits until reads see the write position token names (field
// names it in the caller's protocol, for the error), before a read runs: an
// empty token waits for nothing. It returns an Invalid error for a token
// this service did not issue, and rw.WaitFor's errors (Unavailable,
// Timeout). A nil rw is a store that does not lag. Once waited, the
// position is recorded in ctx's ReadMark (geo.WithReadMark), if it has one,
// so a store answering from memory honours the token too. Both edges call it, so a token means the same over each.
func AwaitToken(ctx context.Context, rw geo.ReadYourWrites, token, field string) error {
	if token == "" {
		return nil
	}
	p, err := geo.DecodeConsistencyToken(token, field)
	if err != nil || rw == nil {
		return err
	}
	if err := rw.WaitFor(ctx, p); err != nil {
		return err
	}
	geo.MarkRead(ctx, p)
	return nil
}
