package httpapi

import (
	"slices"
	"sort"
)

// CachedQueryables lists the collections whose queryables s holds.
func CachedQueryables(s *Server) []string {
	s.qcache.mu.Lock()
	defer s.qcache.mu.Unlock()
	ids := make([]string, 0, len(s.qcache.m))
	for id := range s.qcache.m {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return slices.Clip(ids)
}
