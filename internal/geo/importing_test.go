package geo_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/geosearch/search/internal/geo"
)

func TestProblemsListTheFirstAndCountAll(t *testing.T) {
	t.Parallel()
	var ps geo.Problems
	for i := range 60_000 {
		ps.Add(geo.Problem{Index: i, Name: fmt.Sprint("f", i), Reason: "made valid"})
	}
	if ps.Count != 60_000 || len(ps.Listed) != geo.MaxListedProblems || !ps.Truncated() {
		t.Fatalf("count %d, listed %d, truncated %v; want 60000, %d, true", ps.Count, len(ps.Listed), ps.Truncated(), geo.MaxListedProblems)
	}
	for i, p := range ps.Listed {
		if p.Index != i {
			t.Fatalf("listed[%d] is feature %d, want the first features in order", i, p.Index)
		}
	}
}

func TestProblemsKeepTheLowestIndexesWhateverTheOrder(t *testing.T) {
	t.Parallel()
	var ps geo.Problems
	for _, i := range rand.New(rand.NewPCG(1, 2)).Perm(5000) {
		ps.Add(geo.Problem{Index: i, Reason: "r"})
		ps.Add(geo.Problem{Index: i, Reason: "second problem of the same feature"})
	}
	if ps.Count != 10_000 || len(ps.Listed) != geo.MaxListedProblems {
		t.Fatalf("count %d, listed %d; want 10000, %d", ps.Count, len(ps.Listed), geo.MaxListedProblems)
	}
	for i, p := range ps.Listed {
		if p.Index != i/2 {
			t.Fatalf("listed[%d] is feature %d, want %d: both problems of the first %d features", i, p.Index, i/2, geo.MaxListedProblems/2)
		}
	}
}

func TestProblemsStayWithinTheirBytes(t *testing.T) {
	t.Parallel()
	var ps geo.Problems
	name := strings.Repeat("é", geo.MaxNameLength) // 2,000 bytes
	for i := range geo.MaxListedProblems {
		ps.Add(geo.Problem{Index: i, Name: name, Reason: "made valid"})
	}
	bytes := 0
	for _, p := range ps.Listed {
		bytes += len(p.Name) + len(p.Reason)
	}
	if bytes > geo.MaxListedProblemBytes || len(ps.Listed) == 0 || !ps.Truncated() || ps.Count != geo.MaxListedProblems {
		t.Errorf("listed %d problems of %d bytes (count %d); want at most %d bytes, some listed, truncated",
			len(ps.Listed), bytes, ps.Count, geo.MaxListedProblemBytes)
	}
}

func TestProblemsMergeKeepsFeatureOrderUpToACut(t *testing.T) {
	t.Parallel()
	var edge, store geo.Problems
	edge.Add(geo.Problem{Index: 3, Reason: "edge"})
	edge.Add(geo.Problem{Index: 5000, Reason: "edge, after the store's cut"})
	for i := 10; i < 10+2*geo.MaxListedProblems; i++ {
		store.Add(geo.Problem{Index: i, Reason: "store"})
	}
	store.Merge(edge)
	if store.Count != 2*geo.MaxListedProblems+2 || len(store.Listed) != geo.MaxListedProblems {
		t.Fatalf("count %d, listed %d; want %d and %d", store.Count, len(store.Listed), 2*geo.MaxListedProblems+2, geo.MaxListedProblems)
	}
	if first, last := store.Listed[0], store.Listed[len(store.Listed)-1]; first.Index != 3 || last.Index >= 5000 {
		t.Errorf("listed from feature %d to %d; want the edge's feature 3 first and not its feature 5000, which follows the store's cut", first.Index, last.Index)
	}

	var small geo.Problems
	small.Add(geo.Problem{Index: 7, Reason: "store"})
	var cut geo.Problems
	for i := 1; i <= geo.MaxListedProblems+1; i++ {
		cut.Add(geo.Problem{Index: i * 2, Reason: "edge"})
	}
	small.Merge(cut)
	for _, p := range small.Listed {
		if p.Index > 2*geo.MaxListedProblems {
			t.Fatalf("feature %d listed after the edge's cut at %d", p.Index, 2*geo.MaxListedProblems)
		}
	}
	if len(small.Listed) != geo.MaxListedProblems || small.Listed[3].Index != 7 {
		t.Errorf("listed %d, the fourth feature %d; want %d and feature 7 in its place", len(small.Listed), small.Listed[3].Index, geo.MaxListedProblems)
	}
}
