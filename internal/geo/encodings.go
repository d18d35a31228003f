package geo

import "sync/atomic"

// EncodingSlots is how many encodings of one thing an Encodings keeps:
// a store counts that many encoded copies in a thing's memory.
const EncodingSlots = 2

// Encodings caches an edge's encodings of one version of a thing, by a
// key of the edge's (e.g. the read mask of a gRPC answer): values are the
// edge's own and, once stored, never change, so the edge may share them
// between answers. It keeps the first EncodingSlots keys stored; others
// are encoded per answer. Safe for concurrent use; a nil *Encodings keeps
// nothing.
type Encodings struct {
	slots [EncodingSlots]atomic.Pointer[encoding]
}

type encoding struct {
	key   uint64
	value any
}

// Load returns the value stored for key.
func (e *Encodings) Load(key uint64) (any, bool) {
	if e == nil {
		return nil, false
	}
	for i := range e.slots {
		if p := e.slots[i].Load(); p != nil && p.key == key {
			return p.value, true
		}
	}
	return nil, false
}

// Store keeps value for key in a free slot, unless key has one already
// or none is free.
func (e *Encodings) Store(key uint64, value any) {
	if e == nil {
		return
	}
	enc := &encoding{key: key, value: value}
	for i := range e.slots {
		if e.slots[i].CompareAndSwap(nil, enc) {
			return
		}
		if e.slots[i].Load().key == key {
			return
		}
	}
}

// Equal reports true: a cache says nothing about the thing, so two things
// that differ only in their Encodings are the same thing (go-cmp uses
// this method).
func (e *Encodings) Equal(*Encodings) bool { return true }
