// Package logbuffer is the server's stdout for log records: records
// written through Deferred (the access log) wait and go out together.
package logbuffer

import (
	"io"
	"sync"
	"time"
)

// Buffer is the server's stdout for log records. A record written
// through Deferred (the access log, one record per RPC) waits in the buffer
// and goes out with others in one write, at most a delay later: a busy
// server otherwise spends a write system call per request on it. A record
// written through Write goes out at once, after everything waiting, so
// stdout holds the records in the order they were logged.
type Buffer struct {
	mu     sync.Mutex
	w      io.Writer
	delay  time.Duration
	batch  int
	buf    []byte
	timer  *time.Timer // armed while records wait
	closed bool
}

// New is a Buffer writing to w: deferred records wait at most delay, or
// until batch bytes wait.
func New(w io.Writer, delay time.Duration, batch int) *Buffer {
	return &Buffer{w: w, delay: delay, batch: batch}
}

// Write writes what waits and then p, in one write.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.buf) == 0 {
		return b.w.Write(p)
	}
	b.buf = append(b.buf, p...)
	return len(p), b.flushLocked()
}

// Deferred returns the writer for records that may wait.
func (b *Buffer) Deferred() io.Writer { return deferredWriter{b} }

type deferredWriter struct{ b *Buffer }

func (d deferredWriter) Write(p []byte) (int, error) {
	b := d.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return b.w.Write(p)
	}
	b.buf = append(b.buf, p...)
	if len(b.buf) >= b.batch {
		return len(p), b.flushLocked()
	}
	if b.timer == nil {
		b.timer = time.AfterFunc(b.delay, b.flush)
	}
	return len(p), nil
}

func (b *Buffer) flush() {
	b.mu.Lock()
	defer b.mu.Unlock()
	_ = b.flushLocked() // stdout failing: there is nowhere to report it
}

func (b *Buffer) flushLocked() error {
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	if len(b.buf) == 0 {
		return nil
	}
	_, err := b.w.Write(b.buf)
	if cap(b.buf) > 4*b.batch {
		b.buf = nil // a burst grew it: do not keep it
	} else {
		b.buf = b.buf[:0]
	}
	return err
}

// Close writes what waits; from then on every record is written at once.
func (b *Buffer) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	_ = b.flushLocked()
	b.closed = true
}
