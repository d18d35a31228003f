// Package batching fills batches from a channel: as many items as arrive
// within a wait of the batch's first, up to a size. gRPC Locate and
// POST /locate both read their points this way.
package batching

import (
	"context"
	"time"
)

// Fill appends to b what take makes of the messages arriving on msgs until
// b holds size items or wait has passed (started now, with b's first item
// already in). take returns the item of a message, eof at the end of the
// input, or an error, which ends the batch with nothing; a closed msgs is
// the end too. eof says the input ended; b is then what arrived before.
func Fill[M, T any](ctx context.Context, b []T, size int, wait time.Duration, msgs <-chan M, take func(M) (item T, eof bool, err error)) (_ []T, eof bool, _ error) {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for len(b) < size {
		select {
		case m, ok := <-msgs:
			if !ok {
				return b, true, nil
			}
			item, eof, err := take(m)
			if err != nil {
				return nil, false, err
			}
			if eof {
				return b, true, nil
			}
			b = append(b, item)
		case <-timer.C:
			return b, false, nil
		case <-ctx.Done():
			return nil, false, context.Cause(ctx)
		}
	}
	return b, false, nil
}
