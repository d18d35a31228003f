package memindex

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Version identifies what an Index holds: one collection as one database
// snapshot saw it.
type Version struct {
	// Collection is the collection's name.
	Collection string
	// Snapshot is the PostgreSQL snapshot the things were read in
	// (pg_current_snapshot() in the reading transaction).
	Snapshot Snapshot
	// LSN is the database's WAL position when it was read: the replay
	// position on a hot standby, the current position on a primary. It
	// orders versions read from one server; Snapshot says which writes
	// are in.
	LSN uint64
	// UpdatedAt is the collection's updated_at in that snapshot: when it
	// last changed (zero if the collection did not exist).
	UpdatedAt time.Time
}

// Snapshot is a PostgreSQL snapshot (pg_snapshot): transactions below Xmin
// had ended, those from Xmax on had not started, and those listed in Xip
// were running when it was taken.
type Snapshot struct {
	Xmin, Xmax uint64
	Xip        []uint64
}

// ParseSnapshot reads pg_snapshot's text form, "xmin:xmax:xip,xip,...".
func ParseSnapshot(s string) (Snapshot, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return Snapshot{}, fmt.Errorf("snapshot %q: want xmin:xmax:xip_list", s)
	}
	var snap Snapshot
	var err error
	if snap.Xmin, err = strconv.ParseUint(parts[0], 10, 64); err != nil {
		return Snapshot{}, fmt.Errorf("snapshot %q: xmin: %w", s, err)
	}
	if snap.Xmax, err = strconv.ParseUint(parts[1], 10, 64); err != nil {
		return Snapshot{}, fmt.Errorf("snapshot %q: xmax: %w", s, err)
	}
	if parts[2] != "" {
		for _, f := range strings.Split(parts[2], ",") {
			x, err := strconv.ParseUint(f, 10, 64)
			if err != nil {
				return Snapshot{}, fmt.Errorf("snapshot %q: xip: %w", s, err)
			}
			snap.Xip = append(snap.Xip, x)
		}
	}
	if snap.Xmin > snap.Xmax {
		return Snapshot{}, fmt.Errorf("snapshot %q: xmin after xmax", s)
	}
	return snap, nil
}

// Completed reports whether transaction xid (a full 64-bit xid8) had
// ended when the snapshot was taken, as pg_visible_in_snapshot does: a
// write of a committed transaction is in the snapshot exactly when its
// transaction completed before it.
func (s Snapshot) Completed(xid uint64) bool {
	if xid < s.Xmin {
		return true
	}
	if xid >= s.Xmax {
		return false
	}
	return !slices.Contains(s.Xip, xid)
}

// String is the text form ParseSnapshot reads.
func (s Snapshot) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d:%d:", s.Xmin, s.Xmax)
	for i, x := range s.Xip {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatUint(x, 10))
	}
	return b.String()
}
