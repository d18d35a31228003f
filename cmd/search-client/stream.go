package main

import (
	"context"
	"errors"
	"io"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
)

// streamCall dials the server for a streaming call (locate, track) and
// returns the call's context: no deadline unless --timeout is given. The
// caller closes conn and calls cancel.
func (o *options) streamCall(cmd *cobra.Command) (conn *grpc.ClientConn, ctx context.Context, cancel context.CancelFunc, err error) {
	if conn, err = o.dial(cmd.Context()); err != nil {
		return nil, nil, nil, err
	}
	if cmd.Flags().Changed("timeout") {
		ctx, cancel = o.callContext(cmd.Context())
	} else {
		ctx, cancel = context.WithCancel(cmd.Context())
	}
	return conn, ctx, cancel, nil
}

// sender is the sending side of a client stream.
type sender[Req any] interface {
	Send(Req) error
	CloseSend() error
}

// sendAll sends every request next reads on stream, on a goroutine, and
// then closes the sending side; sent (when not nil) is called with each
// request sent.
// A line that cannot be read cancels the call (the answers stop too) and
// ends the run with exit 2. The result arrives on the channel once: nil
// when the input ended, or when the server ended the stream (its Recv says
// why).
func sendAll[Req any](stream sender[Req], next func() (Req, error), cancel context.CancelFunc, sent func(Req)) <-chan error {
	done := make(chan error, 1)
	go func() {
		var err error
		for err == nil {
			var req Req
			req, err = next()
			if errors.Is(err, io.EOF) {
				err = stream.CloseSend()
				break
			}
			if err != nil {
				err = exitError{exitUsage, err}
				cancel()
				break
			}
			if err = stream.Send(req); err == nil && sent != nil {
				sent(req)
			}
		}
		if errors.Is(err, io.EOF) { // the server ended the stream: Recv says why
			err = nil
		}
		done <- err
	}()
	return done
}
