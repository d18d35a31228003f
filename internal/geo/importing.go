package geo

import "slices"

// Problem says what happened to one feature of an import.
type Problem struct {
	Index  int
	Name   string
	Reason string
}

// ImportOptions say where an import goes.
type ImportOptions struct {
	// Collection receives the features; "" is DefaultCollection.
	Collection string
	// Replace makes the collection exactly the imported set: things of the
	// collection that the import does not store are deleted, in the same
	// transaction.
	Replace bool
}

// Normalize returns o with the default collection filled in, or an Invalid
// error for a bad collection name.
func (o ImportOptions) Normalize() (ImportOptions, error) {
	if o.Collection == "" {
		o.Collection = DefaultCollection
	}
	return o, ValidateCollectionName(o.Collection)
}

// ImportResult summarizes an import.
type ImportResult struct {
	// Collection is the collection the features went to.
	Collection string
	Imported   int
	Repaired   int
	// Deleted counts the things a replace import removed.
	Deleted int64
	// Rejected are the features not stored; Repairs what was repaired in
	// the features stored (one feature may have several repairs).
	Rejected Problems
	Repairs  Problems
}

// Truncated reports whether either list of r holds fewer problems than it
// counts.
func (r ImportResult) Truncated() bool {
	return r.Rejected.Truncated() || r.Repairs.Truncated()
}

// Limits of the problems an import summary lists. An import may have any
// number of problems (60,000 repaired polygons, say); its answer lists the
// first of them and counts them all, so that it stays well under the 4 MiB
// a gRPC client receives by default, names of 1,000 characters included.
const (
	// MaxListedProblems is how many problems each list holds at most.
	MaxListedProblems = 1000
	// MaxListedProblemBytes bounds the bytes of the names and reasons
	// of one list.
	MaxListedProblemBytes = 1 << 20
)

// Problems are an import's problems of one kind: those of the first
// features, by index, up to MaxListedProblems and MaxListedProblemBytes,
// and how many there were in all. Problems may be added in any order (the
// store rejects a repeated key as it reads a feature and a geometry when it
// writes the feature's batch): a list that is full keeps the problems of
// the lowest indexes, every problem of each feature it lists. The zero
// value is an empty list.
type Problems struct {
	// Listed are the problems of the features up to some index, ordered by
	// feature index.
	Listed []Problem
	// Count counts every problem, listed or not.
	Count int
	bytes int
	full  bool // a problem was left out: the list ends at cut
	cut   int  // when full, no problem of a feature after cut is listed
}

// Add records p.
func (ps *Problems) Add(p Problem) {
	ps.Count++
	ps.list(p)
}

func (ps *Problems) list(p Problem) {
	if ps.full && p.Index > ps.cut {
		return
	}
	i, _ := slices.BinarySearchFunc(ps.Listed, p.Index+1, func(q Problem, index int) int { return q.Index - index })
	ps.Listed = slices.Insert(ps.Listed, i, p)
	ps.bytes += problemBytes(p)
	for len(ps.Listed) > MaxListedProblems || ps.bytes > MaxListedProblemBytes {
		ps.cutAt(ps.Listed[len(ps.Listed)-1].Index - 1)
	}
}

// cutAt removes the problems of features after index and lists none of
// them from now on.
func (ps *Problems) cutAt(index int) {
	if ps.full && index >= ps.cut {
		return
	}
	ps.full, ps.cut = true, index
	for len(ps.Listed) > 0 && ps.Listed[len(ps.Listed)-1].Index > index {
		ps.bytes -= problemBytes(ps.Listed[len(ps.Listed)-1])
		ps.Listed = ps.Listed[:len(ps.Listed)-1]
	}
}

func problemBytes(p Problem) int { return len(p.Name) + len(p.Reason) }

// Truncated reports whether ps lists fewer problems than it counts.
func (ps Problems) Truncated() bool { return len(ps.Listed) < ps.Count }

// Merge adds other's problems to ps: problems of other features found
// apart (an edge's rejections and the store's). What other left out
// unlisted ends ps's list where other's ended.
func (ps *Problems) Merge(other Problems) {
	ps.Count += other.Count
	for _, p := range other.Listed {
		ps.list(p)
	}
	if other.full {
		ps.cutAt(other.cut)
	}
}
