// Package fencebench holds the end-to-end geofencing benchmark (make
// bench): positions in through Kafka, events out to Kafka, against 10,000
// polygons, beside plain Locate of the same points in the same run. It has
// no code of its own; see bench_test.go and docs/GEOFENCE.md.
package fencebench
