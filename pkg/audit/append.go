package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/retry"
)

// ChainStore keeps the owner-action chains (pkg/cassandra implements it).
type ChainStore interface {
	// Head reads the poll's last entry at serial consistency, so an append
	// in flight on the poll is settled first; ok is false for no entry.
	Head(ctx context.Context, pollID id.ID) (e Entry, ok bool, err error)
	// Insert writes e if no entry holds its (poll, seq): a conditional
	// write, so two appends on one head cannot both land. applied is
	// false when another entry holds the seq.
	Insert(ctx context.Context, e Entry) (applied bool, err error)
	// Entries reads up to limit entries with seq > afterSeq, in seq order.
	Entries(ctx context.Context, pollID id.ID, afterSeq int64, limit int) ([]Entry, error)
}

// maxAppendAttempts bounds the re-reads of a head that a concurrent owner
// action moved on. Owner actions on one poll are rare; losing this many
// races in a row means something is wrong, and the action is answered 503.
const maxAppendAttempts = 16

// appendTimeout bounds one append, detached from the request: the action
// it records has happened, so its entry is written even if the client has
// gone.
const appendTimeout = 10 * time.Second

type chainMetrics struct {
	appends   *prometheus.CounterVec
	conflicts prometheus.Counter
	failures  *prometheus.CounterVec
}

func newChainMetrics(reg prometheus.Registerer) chainMetrics {
	m := chainMetrics{
		appends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_audit_chain_appends_total", Help: "Owner-action entries appended to a poll's audit chain, by event.",
		}, []string{"event"}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tally_audit_chain_conflicts_total",
			Help: "Audit chain appends that lost their conditional write to a concurrent append and re-read the head.",
		}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_audit_chain_append_failures_total",
			Help: "Owner actions answered with an error because their audit chain entry could not be written, by event.",
		}, []string{"event"}),
	}
	reg.MustRegister(m.appends, m.conflicts, m.failures)
	return m
}

// Append links an owner action to the end of the poll's chain and returns
// the entry once it is stored. It is the durable path: the caller answers
// the action only after Append returned nil, and answers its error
// (apperr UNAVAILABLE) otherwise.
//
// The entry is written after the action, never ahead of it: the action's
// outcome (a conditional write that may lose to a concurrent change, or be
// refused) is only known then, and a chain must not claim what never
// happened. A crash between the two leaves an action without its entry and
// without an answer (docs/architecture.md, "The audit chain").
func (l *Log) Append(ctx context.Context, pollID, actor id.ID, kind string, detail map[string]any) (Entry, error) {
	body, err := encodeDetail(detail)
	if err != nil {
		return Entry{}, err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), appendTimeout)
	defer cancel()
	e, err := l.link(ctx, pollID, actor, kind, body)
	if err != nil {
		l.chain.failures.WithLabelValues(kind).Inc()
		l.log.Error("audit chain entry not written; the owner action is answered with an error",
			zap.Stringer("poll_id", pollID), zap.String("event", kind), zap.Error(err))
		return Entry{}, err
	}
	l.chain.appends.WithLabelValues(kind).Inc()
	return e, nil
}

// AppendFirst writes the poll's first entry (seq 1) if the chain is empty,
// durably like Append; written is false when the chain already had one, and
// nothing is written then. A poll's creation is chained with it, so a
// replayed create (same Idempotency-Key) whose first attempt stored the poll
// but not its entry chains it once, and a replay of a chained create adds
// nothing.
func (l *Log) AppendFirst(ctx context.Context, pollID, actor id.ID, kind string, detail map[string]any) (Entry, bool, error) {
	body, err := encodeDetail(detail)
	if err != nil {
		return Entry{}, false, err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), appendTimeout)
	defer cancel()
	e := Link(Head{}, pollID, l.now(), kind, actor, body)
	applied, err := l.chainStore.Insert(ctx, e)
	if err != nil {
		l.chain.failures.WithLabelValues(kind).Inc()
		l.log.Error("audit chain entry not written; the owner action is answered with an error",
			zap.Stringer("poll_id", pollID), zap.String("event", kind), zap.Error(err))
		return Entry{}, false, err
	}
	if !applied {
		return Entry{}, false, nil
	}
	l.chain.appends.WithLabelValues(kind).Inc()
	return e, true, nil
}

// encodeDetail is the detail as stored and hashed: encoding/json's form,
// whose map keys are sorted, and {} for none.
func encodeDetail(detail map[string]any) ([]byte, error) {
	if detail == nil {
		return []byte("{}"), nil
	}
	b, err := json.Marshal(detail)
	if err != nil {
		return nil, fmt.Errorf("encode audit detail: %w", err)
	}
	return b, nil
}

// link reads the head and writes the entry after it, again on a lost race.
func (l *Log) link(ctx context.Context, pollID, actor id.ID, kind string, body []byte) (Entry, error) {
	for attempt := 1; ; attempt++ {
		last, ok, err := l.chainStore.Head(ctx, pollID)
		if err != nil {
			return Entry{}, err
		}
		var head Head
		if ok {
			head = Head{Seq: last.Seq, Hash: last.Hash}
		}
		e := Link(head, pollID, l.now(), kind, actor, body)
		applied, err := l.chainStore.Insert(ctx, e)
		if err != nil {
			return Entry{}, err
		}
		if applied {
			return e, nil
		}
		l.chain.conflicts.Inc()
		l.log.Debug("audit chain head moved; re-reading it", zap.Stringer("poll_id", pollID),
			zap.Int64("seq", e.Seq), zap.Int("attempt", attempt))
		if attempt == maxAppendAttempts {
			return Entry{}, apperr.Unavailable("append audit entry",
				fmt.Errorf("lost %d races for the chain head", attempt))
		}
		// A short random pause spreads appenders that lost together, so
		// one of them wins the next round rather than all colliding again.
		if err := retry.Sleep(ctx, time.Duration(1+rand.IntN(5*attempt))*time.Millisecond); err != nil {
			return Entry{}, apperr.Unavailable("append audit entry", err)
		}
	}
}

// Head reads the poll's chain head at serial consistency (the zero Head
// for an empty chain): what a frozen final tally anchors.
func (l *Log) Head(ctx context.Context, pollID id.ID) (Head, error) {
	last, ok, err := l.chainStore.Head(ctx, pollID)
	if err != nil || !ok {
		return Head{}, err
	}
	return Head{Seq: last.Seq, Hash: last.Hash}, nil
}

// Page reads up to limit entries after afterSeq, in seq order, and the
// chain's head (the zero Head for an empty chain).
func (l *Log) Page(ctx context.Context, pollID id.ID, afterSeq int64, limit int) ([]Entry, Head, error) {
	last, ok, err := l.chainStore.Head(ctx, pollID)
	if err != nil {
		return nil, Head{}, err
	}
	var head Head
	if ok {
		head = Head{Seq: last.Seq, Hash: last.Hash}
	}
	entries, err := l.chainStore.Entries(ctx, pollID, afterSeq, limit)
	if err != nil {
		return nil, Head{}, err
	}
	return entries, head, nil
}

// chainPage is how many entries a whole-chain read takes per query.
const chainPage = 500

// Chain reads the poll's whole chain, in seq order (for verification).
func (l *Log) Chain(ctx context.Context, pollID id.ID) ([]Entry, error) {
	var all []Entry
	var after int64
	for {
		page, err := l.chainStore.Entries(ctx, pollID, after, chainPage)
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if len(page) < chainPage {
			return all, nil
		}
		after = page[len(page)-1].Seq
	}
}

// VerifyChain reads the poll's whole chain and verifies it (Verify),
// against anchor when given. n is how many entries were read.
func (l *Log) VerifyChain(ctx context.Context, pollID id.ID, anchor *Head) (head Head, n int, err error) {
	chain, err := l.Chain(ctx, pollID)
	if err != nil {
		return Head{}, 0, err
	}
	head, err = Verify(pollID, chain, anchor)
	if err != nil {
		l.log.Warn("audit chain fails verification", zap.Stringer("poll_id", pollID), zap.Error(err))
	}
	return head, len(chain), err
}
