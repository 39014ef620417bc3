package tally

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/ledger"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/receipt"
)

// Errors of the ledger a final run freezes. Either one fails the run, so
// the poll is not certified, and the run is retried.
var (
	// ErrLedgerRows: the index rows the ledger was read through do not
	// match the vote rows (a missing or different row), or their number
	// is not the tally's ballots.
	ErrLedgerRows = errors.New("ledger: the per-poll index disagrees with the vote rows")
	// ErrLedgerChanged: the poll is frozen already with another root.
	ErrLedgerChanged = errors.New("ledger: the frozen root differs from the rows' root")
)

// LedgerHead is a poll's frozen ledger: the Merkle root over its current
// ballots' leaves (pkg/ledger), their number, and the tree head's signature
// (receipt.TreeHead over the poll id, size, root and the tally's as_of)
// with its key id. KeyID and Sig are empty when no signing key was
// configured at the freeze.
type LedgerHead struct {
	Root  ledger.Hash
	Size  uint64
	KeyID string
	Sig   []byte
	// Uncommitted is how many leaves carry the all-zero commitment: ballots
	// recorded before receipts, which have no commitment of their own.
	Uncommitted int64
}

// TreeHead is the signed tree head the ledger's signature covers.
func (h LedgerHead) TreeHead(pollID id.ID, frozenAt time.Time) receipt.TreeHead {
	return receipt.TreeHead{PollID: pollID, Size: h.Size, Root: h.Root, FrozenAt: frozenAt.UTC().Truncate(time.Millisecond),
		KeyID: h.KeyID, Sig: h.Sig}
}

// LedgerRead is a poll's current ballots as ledger entries.
type LedgerRead struct {
	Entries []ledger.Entry
	// Uncommitted counts entries whose ballot has no commitment (the
	// entry's is all zeros).
	Uncommitted int64
	// Mismatched counts index rows whose vote row is missing, or names
	// another vote id, version, revoked state or commitment.
	Mismatched int64
	// Revoked counts revoked ballots whose index row and vote row agree:
	// they have no leaf, as they count nothing.
	Revoked int64
}

// LedgerSource reads a poll's current ballots for its ledger through the
// per-poll index, each index row checked against its vote row
// (cassandra.TallyStore).
type LedgerSource interface {
	LedgerEntries(ctx context.Context, pollID id.ID, buckets int) (LedgerRead, error)
}

// HeadSigner signs a tree head (receipt.Keyring).
type HeadSigner interface {
	SignHead(h *receipt.TreeHead) error
}

type ledgerDeps struct {
	src    LedgerSource
	signer HeadSigner
	build  prometheus.Histogram
	runs   *prometheus.CounterVec
	uncomm prometheus.Counter
}

// SetLedger makes final runs build, sign and freeze the poll's ledger with
// its tally, and registers the ledger metrics. Without it a final tally is
// frozen without a ledger. Call it once, before the service is used.
func (s *Service) SetLedger(src LedgerSource, signer HeadSigner, reg prometheus.Registerer) {
	d := &ledgerDeps{src: src, signer: signer,
		build: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "tally_ledger_build_seconds",
			Help:    "Time a final run took to read a poll's ledger entries through its index, check them against the vote rows and build the tree.",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 8)}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tally_ledger_builds_total",
			Help: "Ledgers built by final runs, by result: frozen (frozen with the tally, or reproduced by a re-run), refused_rows (the index disagreed with the vote rows; not certified), refused_changed (a re-run's root differed from the frozen one), unsigned (no signing key)."},
			[]string{"result"}),
		uncomm: prometheus.NewCounter(prometheus.CounterOpts{Name: "tally_ledger_uncommitted_ballots_total",
			Help: "Ballots put in a frozen ledger with the all-zero commitment because they were recorded before receipts."}),
	}
	for _, r := range []string{"frozen", "refused_rows", "refused_changed", "unsigned"} {
		d.runs.WithLabelValues(r)
	}
	reg.MustRegister(d.build, d.runs, d.uncomm)
	s.ledger = d
}

// buildLedger reads the poll's ledger entries, checks them against the
// tally's ballots, and builds and signs the tree head for asOf.
func (s *Service) buildLedger(ctx context.Context, p *poll.Poll, ballots int64, asOf time.Time) (*LedgerHead, error) {
	d := s.ledger
	began := time.Now()
	read, err := d.src.LedgerEntries(ctx, p.ID, p.IndexBuckets)
	if err != nil {
		return nil, err
	}
	if read.Mismatched > 0 || int64(len(read.Entries)) != ballots {
		d.runs.WithLabelValues("refused_rows").Inc()
		s.log.Error("ledger refused: the index disagrees with the vote rows; the poll is not certified",
			zap.Stringer("poll_id", p.ID), zap.Int64("ballots", ballots), zap.Int("entries", len(read.Entries)),
			zap.Int64("mismatched", read.Mismatched))
		return nil, fmt.Errorf("%w: %d ballots, %d entries, %d mismatched", ErrLedgerRows, ballots, len(read.Entries), read.Mismatched)
	}
	root, size := ledger.RootOf(read.Entries)
	h := &LedgerHead{Root: root, Size: size, Uncommitted: read.Uncommitted}
	took := time.Since(began)
	d.build.Observe(took.Seconds())
	th := h.TreeHead(p.ID, asOf)
	switch err := d.signer.SignHead(&th); {
	case errors.Is(err, receipt.ErrNoSigningKey):
		d.runs.WithLabelValues("unsigned").Inc()
		s.log.Warn("ledger frozen unsigned: no receipt signing key", zap.Stringer("poll_id", p.ID))
	case err != nil:
		return nil, err
	default:
		h.KeyID, h.Sig = th.KeyID, th.Sig
	}
	s.log.Info("ledger built", zap.Stringer("poll_id", p.ID), zap.Uint64("size", h.Size),
		zap.String("root", base64.RawURLEncoding.EncodeToString(h.Root[:])), zap.Int64("uncommitted", h.Uncommitted),
		zap.Duration("took", took))
	return h, nil
}

// checkFrozenLedger compares the ledger a final run built with the one the
// poll was frozen with: a re-run must reproduce the root.
func (s *Service) checkFrozenLedger(p *poll.Poll, built *LedgerHead, frozen Frozen) error {
	if built == nil || frozen.Ledger == nil {
		return nil // no ledger wired, or a tally frozen before ledgers
	}
	if frozen.Ledger.Root == built.Root && frozen.Ledger.Size == built.Size {
		s.ledger.runs.WithLabelValues("frozen").Inc()
		if frozen.Ledger == built { // this run's write applied; a re-run's finds the stored head
			s.ledger.uncomm.Add(float64(built.Uncommitted))
		}
		return nil
	}
	s.ledger.runs.WithLabelValues("refused_changed").Inc()
	s.log.Error("ledger of a frozen poll changed: the rows no longer give the frozen root",
		zap.Stringer("poll_id", p.ID), zap.Uint64("frozen_size", frozen.Ledger.Size), zap.Uint64("size", built.Size))
	return fmt.Errorf("%w: poll %s", ErrLedgerChanged, p.ID)
}

// CertLedger is a certified tally's ledger, binary fields in base64url
// without padding.
type CertLedger struct {
	Root string `json:"root"`
	Size uint64 `json:"size"`
	// KeyID and Signature are empty when the ledger was frozen without a
	// signing key.
	KeyID     string `json:"kid"`
	Signature string `json:"signature"`
	// Uncommitted is how many leaves carry the all-zero commitment of a
	// ballot recorded before receipts.
	Uncommitted int64 `json:"uncommitted,omitempty"`
}

func certLedgerOf(h *LedgerHead) *CertLedger {
	if h == nil {
		return nil
	}
	return &CertLedger{Root: base64.RawURLEncoding.EncodeToString(h.Root[:]), Size: h.Size, KeyID: h.KeyID,
		Signature: base64.RawURLEncoding.EncodeToString(h.Sig), Uncommitted: h.Uncommitted}
}
