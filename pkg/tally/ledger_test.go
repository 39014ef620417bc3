package tally

import (
	"context"
	"encoding/base64"
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/ledger"
	"github.com/tally-vote/tally/pkg/receipt"
)

// freezeStore keeps the first final tally saved, as the conditional write
// does, and answers later saves with it.
type freezeStore struct {
	fakeStore
	saved *Frozen
}

func (f *freezeStore) SaveFinal(_ context.Context, _ id.ID, fr Frozen) (Frozen, error) {
	if f.saved != nil {
		return *f.saved, nil
	}
	f.saved = &fr
	return fr, nil
}

type fixedLedger struct{ read LedgerRead }

func (l *fixedLedger) LedgerEntries(context.Context, id.ID, int) (LedgerRead, error) {
	return l.read, nil
}

func ledgerEntries(n int) []ledger.Entry {
	es := make([]ledger.Entry, n)
	for i := range es {
		es[i].VoteID = id.New()
		es[i].Commitment[0], es[i].Commitment[1] = byte(i), 0xaa
	}
	return es
}

func TestFinalRunFreezesSignedLedger(t *testing.T) {
	p, rc := flaggedPoll() // 5 ballots
	keys, _ := receipt.NewDevKeys()
	kr, err := receipt.ParseKeys(keys)
	if err != nil {
		t.Fatal(err)
	}
	st := &freezeStore{fakeStore: fakeStore{rows: rc, shards: rc.All}}
	s, reg := newOfflineService(t, st, nil)
	src := &fixedLedger{read: LedgerRead{Entries: ledgerEntries(5), Uncommitted: 1}}
	s.SetLedger(src, kr, reg)

	rep, err := s.Reconcile(context.Background(), p, ReconcileOptions{Final: true})
	if err != nil || !rep.Final {
		t.Fatalf("final run: %v", err)
	}
	h := st.saved.Ledger
	if h == nil {
		t.Fatal("no ledger frozen with the tally")
	}
	want := ledger.Build(src.read.Entries)
	if h.Root != want.Root() || h.Size != 5 || h.Uncommitted != 1 || h.KeyID != kr.ActiveKeyID() {
		t.Fatalf("frozen head %+v", h)
	}
	th := h.TreeHead(p.ID, st.saved.AsOf)
	if err := th.VerifyWith(kr.Keys()[0].Public); err != nil {
		t.Fatalf("signed head: %v", err)
	}
	c := CertificateOf(*st.saved)
	wantRoot := want.Root()
	if c.Ledger == nil || c.Ledger.Root != base64.RawURLEncoding.EncodeToString(wantRoot[:]) ||
		c.Ledger.Signature != base64.RawURLEncoding.EncodeToString(h.Sig) {
		t.Fatalf("certificate ledger %+v", c.Ledger)
	}

	t.Run("a re-run reproduces the root", func(t *testing.T) {
		src.read.Entries = append([]ledger.Entry(nil), src.read.Entries...)
		// Read in another order: the canonical order makes it the same tree.
		src.read.Entries[0], src.read.Entries[4] = src.read.Entries[4], src.read.Entries[0]
		if _, err := s.Reconcile(context.Background(), p, ReconcileOptions{Final: true}); err != nil {
			t.Fatal(err)
		}
		if n := testutil.ToFloat64(s.ledger.runs.WithLabelValues("frozen")); n != 2 {
			t.Fatalf("frozen builds = %v, want 2", n)
		}
		if n := testutil.ToFloat64(s.ledger.uncomm); n != 1 {
			t.Fatalf("uncommitted ballots counted %v times, want once (at the freeze)", n)
		}
	})
	t.Run("a re-run over changed rows refuses", func(t *testing.T) {
		src.read.Entries[2].Commitment[31] ^= 1
		_, err := s.Reconcile(context.Background(), p, ReconcileOptions{Final: true})
		if !errors.Is(err, ErrLedgerChanged) {
			t.Fatalf("err = %v, want ErrLedgerChanged", err)
		}
	})
}

func TestFinalRunRefusesLedgerThatDisagreesWithRows(t *testing.T) {
	keys, _ := receipt.NewDevKeys()
	kr, _ := receipt.ParseKeys(keys)
	for _, tc := range []struct {
		name string
		read LedgerRead
	}{
		{"fewer entries than ballots", LedgerRead{Entries: ledgerEntries(4)}},
		{"more entries than ballots", LedgerRead{Entries: ledgerEntries(6)}},
		{"a mismatched index row", LedgerRead{Entries: ledgerEntries(5), Mismatched: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, rc := flaggedPoll()
			st := &freezeStore{fakeStore: fakeStore{rows: rc, shards: rc.All}}
			s, reg := newOfflineService(t, st, nil)
			s.SetLedger(&fixedLedger{read: tc.read}, kr, reg)
			_, err := s.Reconcile(context.Background(), p, ReconcileOptions{Final: true})
			if !errors.Is(err, ErrLedgerRows) {
				t.Fatalf("err = %v, want ErrLedgerRows", err)
			}
			if st.saved != nil {
				t.Fatal("a tally was frozen without its ledger")
			}
			if n := testutil.ToFloat64(s.ledger.runs.WithLabelValues("refused_rows")); n != 1 {
				t.Fatalf("refused_rows = %v", n)
			}
		})
	}
}

func TestFinalRunWithoutSigningKeyFreezesUnsigned(t *testing.T) {
	p, rc := flaggedPoll()
	kr, _ := receipt.NewKeyring(nil)
	st := &freezeStore{fakeStore: fakeStore{rows: rc, shards: rc.All}}
	s, reg := newOfflineService(t, st, nil)
	s.SetLedger(&fixedLedger{read: LedgerRead{Entries: ledgerEntries(5)}}, kr, reg)
	if _, err := s.Reconcile(context.Background(), p, ReconcileOptions{Final: true}); err != nil {
		t.Fatal(err)
	}
	if h := st.saved.Ledger; h == nil || h.KeyID != "" || h.Sig != nil || h.Size != 5 {
		t.Fatalf("head %+v", h)
	}
}
