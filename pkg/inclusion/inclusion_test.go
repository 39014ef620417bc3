package inclusion

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/ledger"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/tally"
)

type memStore struct {
	entries []ledger.Entry
	final   *tally.Frozen
	loads   int
	// versions and revoked give ballots a current version, or revoke
	// them (they then have no entry in the ledger).
	versions map[id.ID]int
	revoked  map[id.ID]bool
}

func (m *memStore) LoadFinal(context.Context, id.ID) (tally.Frozen, bool, error) {
	if m.final == nil {
		return tally.Frozen{}, false, nil
	}
	return *m.final, true, nil
}

func (m *memStore) FindBallot(_ context.Context, _ id.ID, _ int, voteID id.ID) (Ballot, bool, error) {
	for _, e := range m.entries {
		if e.VoteID == voteID {
			return Ballot{VoteID: voteID, Commitment: e.Commitment[:], VotedAt: time.Unix(1700000000, 0), Version: m.versions[voteID]}, true, nil
		}
	}
	if m.revoked[voteID] {
		return Ballot{VoteID: voteID, VotedAt: time.Unix(1700000000, 0), Version: m.versions[voteID], Revoked: true}, true, nil
	}
	return Ballot{}, false, nil
}

func (m *memStore) IndexLedger(context.Context, id.ID, int) (tally.LedgerRead, error) {
	m.loads++
	return tally.LedgerRead{Entries: m.entries}, nil
}

func TestLookup(t *testing.T) {
	p := &poll.Poll{ID: id.New(), IndexBuckets: 4}
	st := &memStore{}
	for i := range 37 {
		e := ledger.Entry{VoteID: id.New()}
		e.Commitment[0] = byte(i)
		st.entries = append(st.entries, e)
	}
	s := New(Config{CacheLeaves: 100}, st, zap.NewNop(), prometheus.NewRegistry())
	asked := 0
	yes := func() (bool, error) { asked++; return true, nil }
	no := func() (bool, error) { return false, nil }
	ctx := context.Background()
	target := st.entries[11]

	if _, err := s.Lookup(ctx, p, id.New(), 0, yes); !errors.Is(err, ErrNoBallot) {
		t.Fatalf("unknown vote id: %v", err)
	}
	a, err := s.Lookup(ctx, p, target.VoteID, 0, yes)
	if err != nil || a.Status != Recorded || a.Proof != nil || string(a.Commitment) != string(target.Commitment[:]) || asked != 0 {
		t.Fatalf("before the freeze: %+v, %v (visibility asked %d times)", a, err, asked)
	}

	l := ledger.Build(st.entries)
	st.final = &tally.Frozen{AsOf: time.Now(), Ledger: &tally.LedgerHead{Root: l.Root(), Size: l.Size()}}
	a, err = s.Lookup(ctx, p, target.VoteID, 0, yes)
	if err != nil || a.Status != Included || a.Proof == nil || a.Head == nil {
		t.Fatalf("after the freeze: %+v, %v", a, err)
	}
	if err := ledger.VerifyInclusion(a.Proof.Index, a.Head.Size, target.Leaf(), a.Proof.Path, a.Head.Root); err != nil {
		t.Fatalf("proof: %v", err)
	}
	if _, err := s.Lookup(ctx, p, st.entries[0].VoteID, 0, yes); err != nil || st.loads != 1 {
		t.Fatalf("second lookup: loads = %d, %v", st.loads, err)
	}

	a, err = s.Lookup(ctx, p, target.VoteID, 0, no)
	if err != nil || a.Status != Included || !a.Withheld || a.Proof != nil || a.Head != nil {
		t.Fatalf("results hidden: %+v, %v", a, err)
	}

	t.Run("a rebuilt ledger that misses the signed root is refused", func(t *testing.T) {
		other := &poll.Poll{ID: id.New(), IndexBuckets: 4}
		bad := *st.final
		bad.Ledger = &tally.LedgerHead{Root: ledger.EmptyRoot(), Size: l.Size()}
		st2 := &memStore{entries: st.entries, final: &bad}
		s2 := New(Config{}, st2, zap.NewNop(), prometheus.NewRegistry())
		if _, err := s2.Lookup(ctx, other, target.VoteID, 0, yes); !errors.Is(err, errLedgerDiffers) {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestLookupVersions: a receipt of an earlier version of a changed ballot
// is superseded (no commitment shown, the current version named), the
// current version's is recorded then included with a proof, a version the
// ballot never had is not found, and a revoked ballot's receipts are all
// revoked, before and after the freeze.
func TestLookupVersions(t *testing.T) {
	p := &poll.Poll{ID: id.New(), IndexBuckets: 2}
	st := &memStore{versions: map[id.ID]int{}, revoked: map[id.ID]bool{}}
	for i := range 5 {
		e := ledger.Entry{VoteID: id.New()}
		e.Commitment[0] = byte(i + 1)
		st.entries = append(st.entries, e)
	}
	changed := st.entries[2]
	st.versions[changed.VoteID] = 1 // changed once: receipt version 2 is current
	gone := id.New()
	st.versions[gone], st.revoked[gone] = 2, true
	s := New(Config{}, st, zap.NewNop(), prometheus.NewRegistry())
	yes := func() (bool, error) { return true, nil }
	ctx := context.Background()

	check := func(when string, current Status) {
		t.Helper()
		a, err := s.Lookup(ctx, p, changed.VoteID, 1, yes)
		if err != nil || a.Status != Superseded || a.CurrentVersion != 2 || a.Commitment != nil || a.Proof != nil {
			t.Fatalf("%s, version 1: %+v, %v", when, a, err)
		}
		for _, v := range []uint32{0, 2} {
			a, err = s.Lookup(ctx, p, changed.VoteID, v, yes)
			if err != nil || a.Status != current || a.CurrentVersion != 2 || string(a.Commitment) != string(changed.Commitment[:]) {
				t.Fatalf("%s, version %d: %+v, %v", when, v, a, err)
			}
		}
		if _, err := s.Lookup(ctx, p, changed.VoteID, 3, yes); !errors.Is(err, ErrNoVersion) {
			t.Fatalf("%s, version 3: %v", when, err)
		}
		for _, v := range []uint32{0, 1, 3} {
			a, err = s.Lookup(ctx, p, gone, v, yes)
			if err != nil || a.Status != Revoked || a.CurrentVersion != 3 || a.Commitment != nil || a.Proof != nil {
				t.Fatalf("%s, revoked, version %d: %+v, %v", when, v, a, err)
			}
		}
		if _, err := s.Lookup(ctx, p, gone, 4, yes); !errors.Is(err, ErrNoVersion) {
			t.Fatalf("%s, revoked, version 4: %v", when, err)
		}
	}
	check("before the freeze", Recorded)
	l := ledger.Build(st.entries)
	st.final = &tally.Frozen{AsOf: time.Now(), Ledger: &tally.LedgerHead{Root: l.Root(), Size: l.Size()}}
	check("after the freeze", Included)
	a, err := s.Lookup(ctx, p, changed.VoteID, 2, yes)
	if err != nil || a.Proof == nil || ledger.VerifyInclusion(a.Proof.Index, a.Head.Size, changed.Leaf(), a.Proof.Path, a.Head.Root) != nil {
		t.Fatalf("current version's proof: %+v, %v", a, err)
	}
}
