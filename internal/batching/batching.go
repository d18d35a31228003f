// Package batching reads a stream on a goroutine of its own and hands its
// items over in batches: as many as arrive within a wait of the batch's
// first, up to a size. gRPC Locate, Track and Import and POST /locate read
// their input this way, so the rules (the wait, the size, read-ahead bound,
// the end of input, errors and cancelling) are written once.
package batching

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"
)

// ErrStopped is what emit returns once the Reader was stopped: the read
// function should return.
var ErrStopped = errors.New("batching: the reader was stopped")

// Options say how a Reader holds and batches its items.
type Options[T any] struct {
	// Buffer is how many items the reading goroutine may read ahead of the
	// consumer, beyond the one it holds (0: it hands each over as it is
	// taken).
	Buffer int
	// Weight is how much of a batch's size an item takes (nil: 1 each).
	Weight func(T) int
	// Check fails a batch for an item Batch takes (nil: every item is
	// fine). Items passed to Batch and taken with Next are not checked.
	Check func(T) error
}

// Reader reads a stream on a goroutine of its own (a Read or a gRPC Recv
// cannot be interrupted) and hands its items over one at a time or in
// batches. gRPC Locate, Track and Import read their messages with it, POST
// /locate the points of its body; the edges keep only the decoding.
//
// Memory is bounded: the goroutine holds one item and Options.Buffer more,
// then waits until they are taken, so a stream that sends faster than it is
// answered waits (its flow control fills) rather than growing the server.
type Reader[T any] struct {
	items chan T
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
	o     Options[T]
	// err is how reading ended (nil at the end of the input): set before
	// items is closed.
	err   error
	ended bool // the consumer saw the end
}

// Read starts reading: read calls emit with each item in order, and
// returns nil at the end of its input or the error that ended it. emit
// waits until the item is taken or has room in the buffer; it returns
// ErrStopped once Stop was called.
func Read[T any](read func(emit func(T) error) error, o Options[T]) *Reader[T] {
	r := &Reader[T]{items: make(chan T, o.Buffer), stop: make(chan struct{}), done: make(chan struct{}), o: o}
	go func() {
		defer close(r.done)
		r.err = read(r.emit)
		close(r.items)
	}()
	return r
}

func (r *Reader[T]) emit(item T) error {
	select {
	case r.items <- item:
		return nil
	case <-r.stop:
		return ErrStopped
	}
}

// Stop tells the reading goroutine to end at its next emit: call it when
// the consumer returns. It does not wait (Done does).
func (r *Reader[T]) Stop() { r.once.Do(func() { close(r.stop) }) }

// Done is closed when the reading goroutine has ended.
func (r *Reader[T]) Done() <-chan struct{} { return r.done }

// Err is how reading ended, nil at the end of the input; it is set once the
// consumer saw the end (Next or Batch) or Done is closed.
func (r *Reader[T]) Err() error {
	select {
	case <-r.done:
		return r.err
	default:
		if r.ended {
			return r.err
		}
		return nil
	}
}

// Next returns the next item; after the last, io.EOF at the end of the
// input or the error reading ended with. It waits as long as it takes, or
// until ctx ends.
func (r *Reader[T]) Next(ctx context.Context) (T, error) {
	var zero T
	item, ok, err := r.take(ctx, nil)
	switch {
	case err != nil:
		return zero, err
	case !ok && r.err != nil:
		return zero, r.err
	case !ok:
		return zero, io.EOF
	}
	return item, nil
}

// take returns the next item (ok false at the end), or ctx's cause when it
// ends first or timeout fires first (ok false, no error).
func (r *Reader[T]) take(ctx context.Context, timeout <-chan time.Time) (item T, ok bool, err error) {
	if r.ended {
		return item, false, nil
	}
	select {
	case item, ok = <-r.items:
		if !ok {
			r.ended = true
		}
		return item, ok, nil
	case <-timeout:
		return item, false, nil
	case <-ctx.Done():
		return item, false, context.Cause(ctx)
	}
}

func (r *Reader[T]) weight(item T) int {
	if r.o.Weight == nil {
		return 1
	}
	return r.o.Weight(item)
}

// Batch returns the next batch: b (items the caller took ahead, with Next)
// and the items that arrive until the batch's weight reaches size, wait has
// passed since its first item, or the input ends. With b empty it waits as
// long as it takes for a first item. end reports that the input has ended,
// the batch holding what came before (an empty batch comes only with end);
// Err then says how. err is ctx's cause or Options.Check's error, and
// comes with no batch.
func (r *Reader[T]) Batch(ctx context.Context, b []T, size int, wait time.Duration) (batch []T, end bool, err error) {
	n := 0
	for _, item := range b {
		n += r.weight(item)
	}
	var timer *time.Timer
	for len(b) == 0 || n < size {
		var timeout <-chan time.Time
		if len(b) > 0 {
			if timer == nil {
				timer = time.NewTimer(wait)
				defer timer.Stop()
			}
			timeout = timer.C
		}
		item, ok, err := r.take(ctx, timeout)
		switch {
		case err != nil:
			return nil, false, err
		case r.ended:
			return b, true, nil
		case !ok:
			return b, false, nil // the wait has passed
		}
		if r.o.Check != nil {
			if err := r.o.Check(item); err != nil {
				return nil, false, err
			}
		}
		if b == nil {
			b = make([]T, 0, min(size, 64))
		}
		b = append(b, item)
		n += r.weight(item)
	}
	return b, false, nil
}
