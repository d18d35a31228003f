package batching_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/geosearch/search/internal/batching"
)

func keep(m int) (int, bool, error) { return m, false, nil }

// TestFill: a batch ends full, when the wait passes, at the end of the
// input (a closed channel or take's eof), on take's error or when the
// context ends.
func TestFill(t *testing.T) {
	ctx := context.Background()
	full := make(chan int, 10)
	for i := range 10 {
		full <- i
	}
	if b, eof, err := batching.Fill(ctx, []int{-1}, 4, time.Hour, full, keep); !slices.Equal(b, []int{-1, 0, 1, 2}) || eof || err != nil {
		t.Errorf("full: %v %v %v", b, eof, err)
	}
	quiet := make(chan int)
	if b, eof, err := batching.Fill(ctx, []int{-1}, 4, 10*time.Millisecond, quiet, keep); !slices.Equal(b, []int{-1}) || eof || err != nil {
		t.Errorf("the wait passed: %v %v %v", b, eof, err)
	}
	closed := make(chan int, 1)
	closed <- 7
	close(closed)
	if b, eof, err := batching.Fill(ctx, nil, 4, time.Hour, closed, keep); !slices.Equal(b, []int{7}) || !eof || err != nil {
		t.Errorf("closed: %v %v %v", b, eof, err)
	}
	untilNegative := func(m int) (int, bool, error) { return m, m < 0, nil }
	if b, eof, err := batching.Fill(ctx, nil, 4, time.Hour, full, untilNegative); !slices.Equal(b, []int{3, 4, 5, 6}) || eof || err != nil {
		t.Errorf("take: %v %v %v", b, eof, err)
	}
	full <- -1
	if b, eof, err := batching.Fill(ctx, nil, 9, time.Hour, full, untilNegative); !slices.Equal(b, []int{7, 8, 9}) || !eof || err != nil {
		t.Errorf("take's eof: %v %v %v", b, eof, err)
	}
	bad := errors.New("bad")
	full <- 1
	if b, _, err := batching.Fill(ctx, []int{0}, 4, time.Hour, full, func(int) (int, bool, error) { return 0, false, bad }); b != nil || !errors.Is(err, bad) {
		t.Errorf("take's error: %v %v", b, err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if b, _, err := batching.Fill(cctx, []int{0}, 4, time.Hour, quiet, keep); b != nil || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v %v", b, err)
	}
}
