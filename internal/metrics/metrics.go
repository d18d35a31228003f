// Package metrics is the port through which components report numbers:
// counters, timers and gauges with dotted names. The statsd package
// implements it; Nop is the default when metrics are off, so components never
// check for a missing client.
package metrics

import "time"

// Metrics receives measurements. Implementations must be safe for concurrent
// use and must never block or fail the caller.
type Metrics interface {
	// Count adds n to the counter name.
	Count(name string, n int64)
	// Timing records one duration under the timer name.
	Timing(name string, d time.Duration)
	// Gauge sets the gauge name to v.
	Gauge(name string, v int64)
}

// Nop discards every measurement.
type Nop struct{}

// Count does nothing.
func (Nop) Count(string, int64) {}

// Timing does nothing.
func (Nop) Timing(string, time.Duration) {}

// Gauge does nothing.
func (Nop) Gauge(string, int64) {}
