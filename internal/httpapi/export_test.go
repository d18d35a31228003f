package httpapi

import (
	"maps"
	"slices"
)

// CachedQueryables lists the collections whose queryables s holds.
func CachedQueryables(s *Server) []string {
	s.qcache.mu.Lock()
	defer s.qcache.mu.Unlock()
	return slices.Sorted(maps.Keys(s.qcache.m))
}
