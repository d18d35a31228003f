package batching_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/geosearch/search/internal/batching"
)

// feed is a stream the test sends items into; closing it ends the input,
// and an error sent on fail ends it with that error.
type feed struct {
	items chan int
	fail  chan error
}

func newFeed() *feed { return &feed{items: make(chan int), fail: make(chan error, 1)} }

func (f *feed) read(emit func(int) error) error {
	for {
		select {
		case it, ok := <-f.items:
			if !ok {
				return nil
			}
			if err := emit(it); err != nil {
				return err
			}
		case err := <-f.fail:
			return err
		}
	}
}

// fromSlice reads items, then ends with err.
func fromSlice(items []int, err error) func(emit func(int) error) error {
	return func(emit func(int) error) error {
		for _, it := range items {
			if err := emit(it); err != nil {
				return err
			}
		}
		return err
	}
}

func stopped(t *testing.T, r *batching.Reader[int]) {
	t.Helper()
	r.Stop()
	select {
	case <-r.Done():
	case <-time.After(time.Minute):
		t.Fatal("the reading goroutine did not end after Stop")
	}
}

// TestBatchEnds: a batch ends full, when the wait passes, or at the end of
// the input, with what came before it.
func TestBatchEnds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := batching.Read(fromSlice([]int{0, 1, 2, 3, 4, 5, 6}, nil), batching.Options[int]{Buffer: 10})
	defer stopped(t, r)
	if b, end, err := r.Batch(ctx, nil, 3, time.Hour); !slices.Equal(b, []int{0, 1, 2}) || end || err != nil {
		t.Errorf("full: %v %v %v", b, end, err)
	}
	if b, end, err := r.Batch(ctx, []int{-1}, 3, time.Hour); !slices.Equal(b, []int{-1, 3, 4}) || end || err != nil {
		t.Errorf("full, with an item taken ahead: %v %v %v", b, end, err)
	}
	if b, end, err := r.Batch(ctx, nil, 9, time.Hour); !slices.Equal(b, []int{5, 6}) || !end || err != nil {
		t.Errorf("the end of the input: %v %v %v", b, end, err)
	}
	if err := r.Err(); err != nil {
		t.Errorf("Err after a clean end: %v", err)
	}
	if b, end, err := r.Batch(ctx, nil, 9, time.Hour); len(b) != 0 || !end || err != nil {
		t.Errorf("after the end: %v %v %v", b, end, err)
	}
	if _, err := r.Next(ctx); !errors.Is(err, io.EOF) {
		t.Errorf("Next after the end: %v, want io.EOF", err)
	}

	f := newFeed()
	quiet := batching.Read(f.read, batching.Options[int]{})
	defer stopped(t, quiet)
	f.items <- 7
	if b, end, err := quiet.Batch(ctx, nil, 4, 10*time.Millisecond); !slices.Equal(b, []int{7}) || end || err != nil {
		t.Errorf("the wait passed: %v %v %v", b, end, err)
	}
	close(f.items)
	if b, end, err := quiet.Batch(ctx, nil, 4, time.Hour); len(b) != 0 || !end || err != nil {
		t.Errorf("the end, waiting for a first item: %v %v %v", b, end, err)
	}
}

// TestBatchWeighsAndChecks: Weight counts towards the size (an item
// heavier than the size is a batch alone), Check fails the batch for the
// items Batch takes, not those passed in.
func TestBatchWeighsAndChecks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bad := errors.New("bad")
	o := batching.Options[int]{
		Buffer: 10,
		Weight: func(i int) int { return i },
		Check: func(i int) error {
			if i == 0 {
				return bad
			}
			return nil
		},
	}
	r := batching.Read(fromSlice([]int{9, 1, 2, 3, 0}, nil), o)
	defer stopped(t, r)
	if b, _, err := r.Batch(ctx, nil, 5, time.Hour); !slices.Equal(b, []int{9}) || err != nil {
		t.Errorf("heavy: %v %v", b, err)
	}
	if b, _, err := r.Batch(ctx, []int{0}, 5, time.Hour); !slices.Equal(b, []int{0, 1, 2, 3}) || err != nil {
		t.Errorf("weighed, the item passed in unchecked: %v %v", b, err)
	}
	if b, _, err := r.Batch(ctx, nil, 5, time.Hour); b != nil || !errors.Is(err, bad) {
		t.Errorf("checked: %v %v", b, err)
	}
}

// TestReadError: the items read before an error come first; the error
// ends the input (Batch's end, then Err) and is what Next returns.
func TestReadError(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	broken := errors.New("broken")
	r := batching.Read(fromSlice([]int{1, 2}, broken), batching.Options[int]{})
	defer stopped(t, r)
	if it, err := r.Next(ctx); it != 1 || err != nil {
		t.Errorf("Next: %v %v", it, err)
	}
	if b, end, err := r.Batch(ctx, nil, 5, time.Hour); !slices.Equal(b, []int{2}) || !end || err != nil {
		t.Errorf("Batch: %v %v %v", b, end, err)
	}
	if err := r.Err(); !errors.Is(err, broken) {
		t.Errorf("Err: %v", err)
	}
	if _, err := r.Next(ctx); !errors.Is(err, broken) {
		t.Errorf("Next after the end: %v", err)
	}
}

// TestCancelAndStop: an ended context ends a wait with its cause, and
// Stop ends the reading goroutine even while it waits to hand an item
// over.
func TestCancelAndStop(t *testing.T) {
	t.Parallel()
	f := newFeed()
	r := batching.Read(f.read, batching.Options[int]{})
	ctx, cancel := context.WithCancelCause(context.Background())
	cause := errors.New("gone")
	cancel(cause)
	if b, _, err := r.Batch(ctx, nil, 4, time.Hour); b != nil || !errors.Is(err, cause) {
		t.Errorf("cancelled batch: %v %v", b, err)
	}
	if _, err := r.Next(ctx); !errors.Is(err, cause) {
		t.Errorf("cancelled Next: %v", err)
	}
	f.items <- 1 // the goroutine now waits to hand it over
	stopped(t, r)
	if err := r.Err(); !errors.Is(err, batching.ErrStopped) {
		t.Errorf("Err after Stop: %v, want ErrStopped", err)
	}
	r.Stop() // twice is fine
}

// TestReadAheadIsBounded: the goroutine reads at most Buffer items ahead
// of the consumer, plus the one it holds.
func TestReadAheadIsBounded(t *testing.T) {
	t.Parallel()
	for _, buffer := range []int{0, 3} {
		read := make(chan int, 100)
		r := batching.Read(func(emit func(int) error) error {
			for i := range 100 {
				read <- i
				if err := emit(i); err != nil {
					return err
				}
			}
			return nil
		}, batching.Options[int]{Buffer: buffer})
		// The goroutine has read buffer+1 items once it blocks: wait for
		// them, then for it to try no more (it cannot, without a taker).
		waitFor(t, func() bool { return len(read) >= buffer+1 })
		if _, err := r.Next(context.Background()); err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool { return len(read) >= buffer+2 })
		stopped(t, r)
		if got := len(read); got != buffer+2 {
			t.Errorf("buffer %d: the goroutine read %d items with 1 taken, want %d", buffer, got, buffer+2)
		}
	}
}

// waitFor waits until cond holds, failing after a minute.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("waited a minute")
		}
		time.Sleep(time.Millisecond)
	}
}
