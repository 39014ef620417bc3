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
			return Ballot{VoteID: voteID, Commitment: e.Commitment[:], VotedAt: time.Unix(1700000000, 0)}, true, nil
		}
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

	if _, err := s.Lookup(ctx, p, id.New(), yes); !errors.Is(err, ErrNoBallot) {
		t.Fatalf("unknown vote id: %v", err)
	}
	a, err := s.Lookup(ctx, p, target.VoteID, yes)
	if err != nil || a.Status != Recorded || a.Proof != nil || string(a.Commitment) != string(target.Commitment[:]) || asked != 0 {
		t.Fatalf("before the freeze: %+v, %v (visibility asked %d times)", a, err, asked)
	}

	l := ledger.Build(st.entries)
	st.final = &tally.Frozen{AsOf: time.Now(), Ledger: &tally.LedgerHead{Root: l.Root(), Size: l.Size()}}
	a, err = s.Lookup(ctx, p, target.VoteID, yes)
	if err != nil || a.Status != Included || a.Proof == nil || a.Head == nil {
		t.Fatalf("after the freeze: %+v, %v", a, err)
	}
	if err := ledger.VerifyInclusion(a.Proof.Index, a.Head.Size, target.Leaf(), a.Proof.Path, a.Head.Root); err != nil {
		t.Fatalf("proof: %v", err)
	}
	if _, err := s.Lookup(ctx, p, st.entries[0].VoteID, yes); err != nil || st.loads != 1 {
		t.Fatalf("second lookup: loads = %d, %v", st.loads, err)
	}

	a, err = s.Lookup(ctx, p, target.VoteID, no)
	if err != nil || a.Status != Included || !a.Withheld || a.Proof != nil || a.Head != nil {
		t.Fatalf("results hidden: %+v, %v", a, err)
	}

	t.Run("a rebuilt ledger that misses the signed root is refused", func(t *testing.T) {
		other := &poll.Poll{ID: id.New(), IndexBuckets: 4}
		bad := *st.final
		bad.Ledger = &tally.LedgerHead{Root: ledger.EmptyRoot(), Size: l.Size()}
		st2 := &memStore{entries: st.entries, final: &bad}
		s2 := New(Config{}, st2, zap.NewNop(), prometheus.NewRegistry())
		if _, err := s2.Lookup(ctx, other, target.VoteID, yes); !errors.Is(err, errLedgerDiffers) {
			t.Fatalf("err = %v", err)
		}
	})
}
