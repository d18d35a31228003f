package logbuffer

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLogBufferKeepsTheOrderOfLogging(t *testing.T) {
	t.Parallel()
	var out syncBuffer
	b := New(&out, time.Hour, 1<<20)
	d := b.Deferred()
	_, _ = d.Write([]byte("rpc 1\n"))
	_, _ = d.Write([]byte("rpc 2\n"))
	if got := out.String(); got != "" {
		t.Fatalf("deferred records written before their time: %q", got)
	}
	_, _ = b.Write([]byte("shutting down\n"))
	_, _ = d.Write([]byte("rpc 3\n"))
	if got, want := out.String(), "rpc 1\nrpc 2\nshutting down\n"; got != want {
		t.Fatalf("after a direct record: %q, want %q", got, want)
	}
	b.Close()
	_, _ = d.Write([]byte("rpc 4\n"))
	if got, want := out.String(), "rpc 1\nrpc 2\nshutting down\nrpc 3\nrpc 4\n"; got != want {
		t.Errorf("after Close: %q, want %q", got, want)
	}
}

func TestLogBufferWritesWithinItsDelayOrWhenFull(t *testing.T) {
	t.Parallel()
	var out syncBuffer
	b := New(&out, 20*time.Millisecond, 1<<20)
	_, _ = b.Deferred().Write([]byte("rpc\n"))
	deadline := time.Now().Add(10 * time.Second)
	for out.String() != "rpc\n" {
		if time.Now().After(deadline) {
			t.Fatalf("a deferred record was not written after its delay: %q", out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}

	var full syncBuffer
	b = New(&full, time.Hour, 10)
	_, _ = b.Deferred().Write([]byte("0123456789abc\n"))
	if !strings.Contains(full.String(), "abc") {
		t.Errorf("a full buffer was not written: %q", full.String())
	}
}

// syncBuffer is a bytes.Buffer safe for the buffer's timer to write to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
