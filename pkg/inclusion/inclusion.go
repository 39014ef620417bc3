// Package inclusion answers a receipt holder's question: is this vote id's
// commitment in its poll's ledger? Before the freeze it shows the ballot
// as recorded; after it, the ballot's leaf, its inclusion proof and the
// signed tree head, from frozen ledgers built once and held in memory.
package inclusion

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/ledger"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/receipt"
	"github.com/tally-vote/tally/pkg/tally"
	"github.com/tally-vote/tally/pkg/vote"
)

// Status is where a ballot stands with respect to its poll's ledger.
type Status string

// Statuses.
const (
	// Recorded: the ballot is the voter's current one; the poll's ledger
	// is not frozen yet (or was frozen before ledgers existed).
	Recorded Status = "recorded"
	// Included: the ballot's leaf is in the frozen, signed ledger.
	Included Status = "included"
	// Superseded: the receipt is of an earlier version of the ballot; a
	// change (or a vote cast again after a revoke) made a later version
	// current, and only the current version has a leaf.
	Superseded Status = "superseded"
	// Revoked: the voter revoked the ballot at or after the receipt's
	// version, and has not voted again: it counts nothing and has no leaf.
	Revoked Status = "revoked"
)

// ErrNoBallot: no ballot of the poll has the vote id (a change keeps the
// vote id, so a changed or revoked ballot is still found).
var ErrNoBallot = apperr.New(apperr.CodeNotFound, "no ballot of this poll has this vote id")

// ErrNoVersion: the ballot has no such version yet; no receipt of it was
// ever signed.
var ErrNoVersion = apperr.New(apperr.CodeNotFound, "this ballot has no such version")

// errLedgerDiffers: a frozen ledger rebuilt from the index does not give
// the signed root. It is an internal error: the answer hides it, the log
// and tally_receipt_lookups_total{result="root_mismatch"} show it.
var errLedgerDiffers = errors.New("rebuilt ledger differs from the frozen root")

// Ballot is a poll's ballot as the index holds it: its current version
// (the row's version, 0 as first cast) and whether it is revoked.
type Ballot struct {
	VoteID     id.ID
	Commitment []byte
	VotedAt    time.Time
	Version    int
	Revoked    bool
}

// Store is what answers are read from (cassandra.TallyStore).
type Store interface {
	LoadFinal(ctx context.Context, pollID id.ID) (tally.Frozen, bool, error)
	// FindBallot finds the poll's ballot with the vote id, revoked ones
	// included.
	FindBallot(ctx context.Context, pollID id.ID, buckets int, voteID id.ID) (Ballot, bool, error)
	// IndexLedger reads the poll's ledger entries from its index.
	IndexLedger(ctx context.Context, pollID id.ID, buckets int) (tally.LedgerRead, error)
}

// Config bounds the memory frozen ledgers take.
type Config struct {
	// CacheLeaves is how many leaves the held ledgers may have in all
	// (about 80 bytes each); the most recently asked-for ledger is kept
	// even when it alone is larger.
	CacheLeaves uint64 `env:"CACHE_LEAVES" envDefault:"2000000"`
}

// Answer is what the receipts route shows.
type Answer struct {
	PollID id.ID
	VoteID id.ID
	Status Status
	// CurrentVersion is the receipt version (vote.ReceiptVersion) of the
	// ballot's current version: the revoke's when revoked.
	CurrentVersion uint32
	// Commitment is the current version's commitment, only when that is
	// the version asked about (recorded or included): a superseded or
	// revoked answer shows none.
	Commitment []byte
	RecordedAt time.Time
	// Proof and Head are set when Status is Included and the caller may
	// see the poll's results: the tree size is its ballot count.
	Proof *ledger.Proof
	Head  *receipt.TreeHead
	// Withheld is true when an included ballot's proof was held back
	// because the poll's results are hidden from the caller.
	Withheld bool
}

// Service answers receipt lookups.
type Service struct {
	store   Store
	cache   *ledger.Cache
	log     *zap.Logger
	lookups *prometheus.CounterVec
	builds  prometheus.Histogram
}

// New builds the service and registers its metrics.
func New(cfg Config, store Store, log *zap.Logger, reg prometheus.Registerer) *Service {
	if cfg.CacheLeaves == 0 {
		cfg.CacheLeaves = 2_000_000
	}
	s := &Service{store: store, cache: ledger.NewCache(cfg.CacheLeaves), log: log,
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tally_receipt_lookups_total",
			Help: "Receipt lookups (GET …/receipts/{vote_id}) by result: recorded, included, withheld (included, proof hidden with the results), superseded (a receipt of an earlier version of a changed ballot), revoked, not_found (no such ballot or version), root_mismatch (a rebuilt ledger did not give the signed root)."},
			[]string{"result"}),
		builds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "tally_receipt_ledger_loads_seconds",
			Help:    "Time to rebuild a frozen ledger from the index for the in-process cache (once per poll until evicted).",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 8)}),
	}
	for _, r := range []string{"recorded", "included", "withheld", "superseded", "revoked", "not_found", "root_mismatch"} {
		s.lookups.WithLabelValues(r)
	}
	heldLedgers := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tally_receipt_ledger_cache_leaves",
		Help: "Leaves of the frozen ledgers this process holds for receipt proofs."}, func() float64 {
		_, n := s.cache.Len()
		return float64(n)
	})
	reg.MustRegister(s.lookups, s.builds, heldLedgers)
	return s
}

// Lookup answers for the vote id of poll p and the receipt version the
// holder has (0: whatever version is current). A receipt of an earlier
// version than the current one is Superseded; of a revoked ballot (at or
// before the revoke) Revoked; of a version the ballot never had,
// ErrNoVersion. mayShowSize reports whether the caller may see the poll's
// results (tally.Visible): an included ballot's proof carries the tree
// size, which is the ballot count, so it is withheld from a caller who
// may not. It is asked only about an included ballot.
func (s *Service) Lookup(ctx context.Context, p *poll.Poll, voteID id.ID, version uint32, mayShowSize func() (bool, error)) (Answer, error) {
	b, found, err := s.store.FindBallot(ctx, p.ID, p.IndexBuckets, voteID)
	if err != nil {
		return Answer{}, err
	}
	if !found {
		s.lookups.WithLabelValues("not_found").Inc()
		return Answer{}, ErrNoBallot
	}
	a := Answer{PollID: p.ID, VoteID: voteID, Status: Recorded, CurrentVersion: vote.ReceiptVersion(b.Version),
		RecordedAt: b.VotedAt.UTC()}
	switch {
	case version > a.CurrentVersion:
		s.lookups.WithLabelValues("not_found").Inc()
		return Answer{}, ErrNoVersion
	case b.Revoked:
		// The revoke is the current version: every receipt of the ballot
		// (all of earlier versions) is of a revoked ballot.
		a.Status = Revoked
		s.lookups.WithLabelValues("revoked").Inc()
		return a, nil
	case version != 0 && version < a.CurrentVersion:
		a.Status = Superseded
		s.lookups.WithLabelValues("superseded").Inc()
		return a, nil
	}
	a.Commitment = b.Commitment
	f, frozen, err := s.store.LoadFinal(ctx, p.ID)
	if err != nil {
		return Answer{}, err
	}
	if !frozen || f.Ledger == nil {
		s.lookups.WithLabelValues("recorded").Inc()
		return a, nil
	}
	a.Status = Included
	show, err := mayShowSize()
	if err != nil {
		return Answer{}, err
	}
	if !show {
		a.Withheld = true
		s.lookups.WithLabelValues("withheld").Inc()
		return a, nil
	}
	l, err := s.frozenLedger(ctx, p, f)
	if err != nil {
		return Answer{}, err
	}
	proof, ok := l.Prove(voteID)
	if !ok {
		// The index names the ballot but the frozen ledger does not: the
		// ledger was rebuilt from this same index, so this cannot happen
		// short of a change after the freeze, which the root check catches.
		s.lookups.WithLabelValues("root_mismatch").Inc()
		return Answer{}, fmt.Errorf("vote %s of poll %s: %w", voteID, p.ID, errLedgerDiffers)
	}
	head := f.Ledger.TreeHead(p.ID, f.AsOf)
	a.Proof, a.Head = &proof, &head
	s.lookups.WithLabelValues("included").Inc()
	return a, nil
}

// frozenLedger is the poll's frozen ledger, rebuilt from the index once
// per process (until evicted) and checked against the signed root.
func (s *Service) frozenLedger(ctx context.Context, p *poll.Poll, f tally.Frozen) (*ledger.Ledger, error) {
	l, _, err := s.cache.Get(ctx, p.ID, func(ctx context.Context) (*ledger.Ledger, error) {
		began := time.Now()
		read, err := s.store.IndexLedger(ctx, p.ID, p.IndexBuckets)
		if err != nil {
			return nil, err
		}
		l := ledger.Build(read.Entries)
		s.builds.Observe(time.Since(began).Seconds())
		if l.Root() != f.Ledger.Root || l.Size() != f.Ledger.Size {
			s.lookups.WithLabelValues("root_mismatch").Inc()
			s.log.Error("frozen ledger rebuilt from the index differs from its signed root",
				zap.Stringer("poll_id", p.ID), zap.Uint64("frozen_size", f.Ledger.Size), zap.Uint64("size", l.Size()))
			return nil, fmt.Errorf("poll %s: %w", p.ID, errLedgerDiffers)
		}
		s.log.Info("frozen ledger loaded", zap.Stringer("poll_id", p.ID), zap.Uint64("size", l.Size()),
			zap.Duration("took", time.Since(began)))
		return l, nil
	})
	return l, err
}
