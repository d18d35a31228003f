package core_test

import (
	"testing"

	"github.com/geosearch/search/internal/core"
	"github.com/geosearch/search/internal/geo"
)

func TestPageSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		n    int64
		want int
		code geo.Code // Internal: no error
	}{
		{0, 50, geo.Internal},
		{1, 1, geo.Internal},
		{1000, 1000, geo.Internal},
		{1001, 1000, geo.Internal},
		{1 << 40, 1000, geo.Internal},
		{-1, 0, geo.Invalid},
	}
	for _, tt := range tests {
		got, err := core.PageSize(tt.n, "page_size", 50, 1000)
		if tt.code == geo.Internal && (err != nil || got != tt.want) {
			t.Errorf("PageSize(%d) = %d, %v; want %d", tt.n, got, err, tt.want)
		}
		if tt.code != geo.Internal && geo.ErrorCode(err) != tt.code {
			t.Errorf("PageSize(%d) = %d, %v; want %s", tt.n, got, err, tt.code)
		}
	}
}
