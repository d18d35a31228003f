// Package migrations holds the database schema as numbered SQL migrations
// (golang-migrate's NNNNNN_name.up.sql / .down.sql), embedded into the
// server binary so that `search-server migrate` needs no files on disk.
package migrations

import "embed"

// FS holds the migration files.
//
//go:embed *.sql
var FS embed.FS
