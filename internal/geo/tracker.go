package geo

import (
	"context"
	"slices"
	"time"
)

// TrackResult is what one position did: the events it caused, or Stale
// when it was ignored (its time not after the device's last accepted one),
// or Err when it was rejected. A rejected position of a deleted collection
// may still carry the exits it caused (docs/GEOFENCE.md).
type TrackResult struct {
	Events []Event
	Stale  bool
	Err    error
}

// Tracker turns positions into transitions: it asks the SearchService what
// contains each position (Locate, so the answer is Search's) and keeps each
// device's state in a FenceStore, which also stores the events for
// publishing. It holds no state of its own and may be shared.
type Tracker struct {
	svc       SearchService
	store     FenceStore
	maxFuture time.Duration
	now       func() time.Time
}

// NewTracker returns a Tracker on svc and store that refuses positions
// more than maxFuture ahead of now (time.Now when nil).
func NewTracker(svc SearchService, store FenceStore, maxFuture time.Duration, now func() time.Time) *Tracker {
	if now == nil {
		now = time.Now
	}
	return &Tracker{svc: svc, store: store, maxFuture: maxFuture, now: now}
}

// located is one position's containment answer, or why it has none.
type located struct {
	things []FenceThing // in Locate's order
	err    error        // the position is rejected
	gone   bool         // its collection does not exist: exits, then err
}

// Track applies positions in order, in one transaction of the store
// together with offsets (nil outside the Kafka input), and returns one
// result per position. The error is for the whole batch (nothing stored):
// Unavailable, Timeout, Internal, or Aborted for an offset moved on by
// another consumer; a bad position is its result's Err, not the error.
// It is Locate, then Apply.
func (t *Tracker) Track(ctx context.Context, positions []Fix, offsets []Offset) ([]TrackResult, error) {
	l, err := t.Locate(ctx, positions)
	if err != nil {
		return nil, err
	}
	return t.Apply(ctx, l, offsets)
}

// Located is a batch of positions with the things containing each one,
// validated and ready to Apply. Containment depends on the fences only,
// never on the devices' states, so a batch may be located while the one
// before it is still being applied.
type Located struct {
	positions []Fix
	at        []located
}

// Len is the number of positions.
func (l *Located) Len() int { return len(l.positions) }

// Locate validates positions and finds the things containing each valid
// one (Locate of the SearchService, per collection). The error is for the
// whole batch: Unavailable, Timeout or Internal.
func (t *Tracker) Locate(ctx context.Context, positions []Fix) (*Located, error) {
	at, err := t.locate(ctx, positions)
	if err != nil {
		return nil, err
	}
	return &Located{positions: positions, at: at}, nil
}

// Apply applies a located batch as Track does: the states of its devices,
// read and locked in one transaction of the store, the transitions, and
// the new states, events and offsets stored together.
func (t *Tracker) Apply(ctx context.Context, l *Located, offsets []Offset) ([]TrackResult, error) {
	// Each device once: a batch holds many positions of a device.
	keys := make([]DeviceKey, 0, len(l.positions))
	seen := make(map[DeviceKey]struct{}, len(l.positions))
	for i, p := range l.positions {
		k := DeviceKey{Collection: p.Collection, Device: p.Device}
		if _, dup := seen[k]; !dup && (l.at[i].err == nil || l.at[i].gone) {
			seen[k] = struct{}{}
			keys = append(keys, k)
		}
	}
	var results []TrackResult
	err := t.store.Apply(ctx, keys, offsets, func(states map[DeviceKey]DeviceState) (FenceChange, error) {
		var change FenceChange
		results, change = transitions(l.positions, l.at, states)
		return change, nil
	})
	if err != nil {
		return nil, err
	}
	return results, nil
}

// locate validates the positions and finds the things containing each
// valid one, per collection.
func (t *Tracker) locate(ctx context.Context, positions []Fix) ([]located, error) {
	at := make([]located, len(positions))
	byCollection := map[string][]int{}
	now := t.now()
	names := map[string]error{} // each collection name checked once
	checkName := func(name string) error {
		err, ok := names[name]
		if !ok {
			err = ValidateCollectionName(name)
			names[name] = err
		}
		return err
	}
	for i, p := range positions {
		if err := p.validate(now, t.maxFuture, checkName); err != nil {
			at[i].err = err
			continue
		}
		byCollection[p.Collection] = append(byCollection[p.Collection], i)
	}
	for name, idx := range byCollection {
		if _, err := t.svc.Collection(ctx, name); err != nil {
			if ErrorCode(err) != NotFound {
				return nil, err
			}
			for _, i := range idx {
				at[i] = located{err: err, gone: true}
			}
			continue
		}
		points := make([]Point, len(idx))
		for k, i := range idx {
			points[k] = positions[i].Point
		}
		q := LocateQuery{
			Filter:   Filter{Collections: []string{name}},
			Limit:    MaxFenceThings + 1,
			Output:   Output{Omit: FieldProperties | FieldBBox},
			MaxBytes: LocateBatchBytes,
		}
		all := make([]FenceThing, 0, len(points))
		err := LocateEach(ctx, t.svc, q, points, nil, func(k int, things []Thing, err error) error {
			switch {
			case err != nil:
				at[idx[k]].err = err
			case len(things) > MaxFenceThings:
				at[idx[k]].err = Errorf(Invalid, "the position is inside more than %d things of %q", MaxFenceThings, name)
			case len(things) > 0:
				// The batch's things share one array, cut per position.
				start := len(all)
				for _, th := range things {
					all = append(all, FenceThing{ID: th.ID, Key: th.Key})
				}
				at[idx[k]].things = all[start:len(all):len(all)]
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return at, nil
}

// transitions applies the positions in order to states (which it updates)
// and returns each position's result and the whole change to store.
func transitions(positions []Fix, at []located, states map[DeviceKey]DeviceState) ([]TrackResult, FenceChange) {
	results := make([]TrackResult, len(positions))
	// The events go to change.Events, and each result's are a slice of
	// them: appended once, never copied per position.
	change := FenceChange{States: make(map[DeviceKey]DeviceState, len(states)), Events: make([]Event, 0, len(positions)*3/2)}
	deleted := map[DeviceKey]bool{}
	for i, p := range positions {
		key := DeviceKey{Collection: p.Collection, Device: p.Device}
		if at[i].err != nil && !at[i].gone {
			results[i].Err = at[i].err
			continue
		}
		s, known := states[key]
		if known && !p.Time.After(s.LastTime) {
			results[i].Stale = true
			continue
		}
		if at[i].gone {
			results[i].Err = at[i].err
			if !known {
				continue
			}
			results[i].Events, change.Events = diff(change.Events, p, &s, nil)
			delete(states, key)
			delete(change.States, key)
			deleted[key] = true
			continue
		}
		results[i].Events, change.Events = diff(change.Events, p, &s, at[i].things)
		s.LastTime = p.Time
		states[key], change.States[key] = s, s
		delete(deleted, key)
	}
	for k := range deleted {
		change.Deleted = append(change.Deleted, k)
	}
	return results, change
}

// diff appends to all the events of moving from s.Inside (in id order) to
// now (exits by id, then enters in now's order), numbered after s.Seq, and
// updates s; events is what it appended (nil for none). Both sets are
// small (at most MaxFenceThings): a sorted copy of now and binary searches
// instead of maps.
func diff(all []Event, p Fix, s *DeviceState, now []FenceThing) (events, appended []Event) {
	byID := func(a, b FenceThing) int { return compareInt64(a.ID, b.ID) }
	inside := now // never changed once located: shared, unless to be sorted
	if !slices.IsSortedFunc(inside, byID) {
		inside = slices.SortedFunc(slices.Values(now), byID)
	}
	if !slices.IsSortedFunc(s.Inside, byID) { // a state stored otherwise
		s.Inside = slices.SortedFunc(slices.Values(s.Inside), byID)
	}
	start := len(all)
	emit := func(typ TransitionType, th FenceThing) {
		s.Seq++
		all = append(all, Event{Device: p.Device, Collection: p.Collection, Type: typ, Seq: s.Seq, Thing: th, Point: p.Point, Time: p.Time})
	}
	for _, th := range s.Inside {
		if !containsID(inside, th.ID) {
			emit(Exit, th)
		}
	}
	for _, th := range now {
		if !containsID(s.Inside, th.ID) {
			emit(Enter, th)
		}
	}
	s.Inside = inside
	if len(all) == start {
		return nil, all
	}
	// Capped: a later append to all never writes into these.
	return all[start:len(all):len(all)], all
}

// containsID reports whether things, in id order, hold id.
func containsID(things []FenceThing, id int64) bool {
	_, found := slices.BinarySearchFunc(things, id, func(th FenceThing, id int64) int { return compareInt64(th.ID, id) })
	return found
}

func compareInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
