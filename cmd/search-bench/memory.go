package main

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	searchv1 "github.com/geosearch/search/proto/search/v1"
)

// memoryResult is what one instance's in-memory index holds for every
// collection of its database (the grid server's: the 100k grid and the
// 1:10m countries beside it), as its Monitor says, and the process's RSS.
type memoryResult struct {
	Collections    []memoryCollection `json:"collections"`
	Bytes          int64              `json:"bytes"`
	Vertices       int64              `json:"vertices"`
	BytesPerVertex float64            `json:"bytes_per_vertex"`
	RSSMB          float64            `json:"server_rss_mb"`
}

type memoryCollection struct {
	Name           string  `json:"name"`
	InMemory       bool    `json:"in_memory"`
	Things         int64   `json:"things"`
	Vertices       int64   `json:"vertices"`
	Bytes          int64   `json:"bytes"`
	BytesPerVertex float64 `json:"bytes_per_vertex"`
}

// collectionsAndMemory runs collectionsPhase, then memoryPhase.
func (b *bench) collectionsAndMemory(ctx context.Context, r *report, at endpoint, pool *pgxpool.Pool) error {
	if err := b.collectionsPhase(ctx, r, at, pool); err != nil {
		return err
	}
	return b.memoryPhase(ctx, r, at, pool)
}

// memoryPhase waits until the instance at indexes every thing of its
// database, then records its in-memory index's size (issue 27: memory
// per instance for the 1:10m countries plus the 100k grid).
func (b *bench) memoryPhase(ctx context.Context, r *report, at endpoint, pool *pgxpool.Pool) error {
	var things int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM thing`).Scan(&things); err != nil {
		return err
	}
	if err := waitMemoryIndex(ctx, at.conn, things, b.progress); err != nil {
		return err
	}
	resp, err := searchv1.NewSearchServiceClient(at.conn).Monitor(ctx, &searchv1.MonitorRequest{})
	if err != nil {
		return fmt.Errorf("monitor: %w", err)
	}
	var m memoryResult
	for _, mi := range resp.GetMemoryIndexes() {
		c := memoryCollection{Name: mi.GetCollection(), InMemory: mi.GetInMemory(), Things: mi.GetThings(),
			Vertices: mi.GetVertices(), Bytes: mi.GetBytes()}
		if c.Vertices > 0 {
			c.BytesPerVertex = float64(c.Bytes) / float64(c.Vertices)
		}
		m.Collections = append(m.Collections, c)
		m.Bytes, m.Vertices = m.Bytes+c.Bytes, m.Vertices+c.Vertices
		b.progress("in-memory index: %s %d things, %d vertices, %.1f MB, %.1f B/vertex (in memory: %v)",
			c.Name, c.Things, c.Vertices, float64(c.Bytes)/1e6, c.BytesPerVertex, c.InMemory)
	}
	if m.Vertices > 0 {
		m.BytesPerVertex = float64(m.Bytes) / float64(m.Vertices)
	}
	if at.proc != nil {
		if rss, err := readRSS(at.proc.pid()); err == nil {
			m.RSSMB = float64(rss) / (1 << 20)
		}
	}
	r.Memory = &m
	return nil
}

// memoryTarget reports the index's size when it was measured.
func (r *report) memoryTarget(add func(name, want, got string, met bool)) {
	m := r.Memory
	if m == nil {
		return
	}
	all := len(m.Collections) > 0
	for _, c := range m.Collections {
		all = all && c.InMemory
	}
	add("in-memory index per instance, every collection (grid + countries)", "reported, all in memory",
		fmt.Sprintf("%.1f B/vertex, %.1f MB for %d vertices (RSS %.0f MB)", m.BytesPerVertex, float64(m.Bytes)/1e6, m.Vertices, m.RSSMB), all)
}
