// Package scan names the units and options of a full read of the vote
// rows — token ranges, their consistency, how many are read at once — so
// that export and verify plan, checkpoint and resume a scan without the
// Cassandra driver. The Cassandra adapter reads them.
package scan

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Range is a slice of the Murmur3 token ring: (Lo, Hi], or [Lo, Hi] when
// First is set (the range that starts at the minimum token). Its JSON is
// an export checkpoint's.
type Range struct {
	Lo    int64 `json:"lo"`
	Hi    int64 `json:"hi"`
	First bool  `json:"first,omitempty"`
}

func (r Range) String() string {
	if r.First {
		return fmt.Sprintf("[%d, %d]", r.Lo, r.Hi)
	}
	return fmt.Sprintf("(%d, %d]", r.Lo, r.Hi)
}

// Consistency is a read consistency level by its CQL name (ONE, QUORUM,
// LOCAL_QUORUM, ALL, …); empty means LOCAL_QUORUM.
type Consistency string

// DefaultConsistency is what an empty Consistency reads at.
const DefaultConsistency Consistency = "LOCAL_QUORUM"

// OrDefault is c in upper case, or DefaultConsistency when empty.
func (c Consistency) OrDefault() Consistency {
	if c == "" {
		return DefaultConsistency
	}
	return Consistency(strings.ToUpper(string(c)))
}

func (c Consistency) String() string { return string(c.OrDefault()) }

// readLevels are the consistency levels a read may ask for (ANY is a
// write level only; the serial levels are for conditional writes).
var readLevels = []Consistency{"ONE", "TWO", "THREE", "QUORUM", "ALL", "LOCAL_QUORUM", "EACH_QUORUM", "LOCAL_ONE"}

// ParseConsistency reads a read consistency level by its CQL name, in any
// case.
func ParseConsistency(s string) (Consistency, error) {
	c := Consistency(strings.ToUpper(s))
	if c == "ANY" {
		return "", errors.New("ANY is not a read consistency")
	}
	if !slices.Contains(readLevels, c) {
		return "", fmt.Errorf("unknown consistency %q (want one of %v)", s, readLevels)
	}
	return c, nil
}

// Options tunes a scan of every vote row. Zero values take the defaults.
type Options struct {
	// Splits is how many token ranges the scan reads at least (default 64).
	Splits int
	// Ranges, when set, are read instead of a fresh plan: a resumed scan
	// reads what an earlier plan left.
	Ranges []Range
	// Workers bounds how many ranges are read at once (default 8).
	Workers int
	// Consistency of the range reads (default LOCAL_QUORUM).
	Consistency Consistency
	// Progress, if set, is called after each range is read, never from two
	// goroutines at once.
	Progress func(done, total int)
}
