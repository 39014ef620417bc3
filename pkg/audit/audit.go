// Package audit keeps the append-only log of what happened to a poll
// besides its votes: owner actions, reconciliation repairs, the final
// tally being frozen, re-tallies excluding flagged votes, dead-lettered
// votes.
//
// Owner actions are hash-chained per poll and written durably (Append, an
// action is answered only once its entry is stored); system events
// (repairs, freezes, dead letters, operator re-tallies) stay in the
// unchained, best-effort log (Record).
package audit

import (
	"context"
	"encoding/json"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tally-vote/tally/pkg/id"
	"go.uber.org/zap"
)

// Event kinds.
const (
	PollCreated     = "poll.created"
	PollUpdated     = "poll.updated"
	PollClosed      = "poll.closed"
	OptionsReplaced = "poll.options_replaced"
	DriftRepaired   = "tally.drift_repaired"
	TallyFrozen     = "tally.frozen"
	VoteDeadLetter  = "vote.dead_lettered"
	// InvitesMinted: the owner minted invite codes (detail: count, and
	// held, the poll's codes after it); the codes themselves are never
	// recorded.
	InvitesMinted = "poll.invites_minted"
	// RetalliedExcludingFlagged: a tally without the votes bot signals
	// flagged was computed and shown, to the owner (actor) or an operator
	// (detail "by": "cli"), with the counts it showed.
	RetalliedExcludingFlagged = "tally.retallied_excluding_flagged"
)

// Event is one entry.
type Event struct {
	PollID  id.ID          `json:"poll_id"`
	At      time.Time      `json:"at"`
	Kind    string         `json:"event"`
	ActorID id.ID          `json:"actor_id"` // zero for the system
	Detail  map[string]any `json:"detail,omitempty"`
	// Seq is the entry's place in the poll's owner-action chain; zero for
	// a system event (unchained).
	Seq int64 `json:"seq,omitempty"`
}

// Store persists events.
type Store interface {
	Append(ctx context.Context, e Event) error
	List(ctx context.Context, pollID id.ID, limit int) ([]Event, error)
}

// Log records events: owner actions in each poll's chain (Append), system
// events in the unchained log (Record).
type Log struct {
	store      Store
	chainStore ChainStore
	now        func() time.Time
	log        *zap.Logger
	failed     prometheus.Counter
	chain      chainMetrics
}

// New builds the log and registers its metrics. now is the clock of the
// entries (nil: time.Now).
func New(store Store, chain ChainStore, now func() time.Time, log *zap.Logger, reg prometheus.Registerer) *Log {
	c := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tally_audit_write_errors_total", Help: "Unchained (system) audit log entries that could not be written.",
	})
	reg.MustRegister(c)
	if now == nil {
		now = time.Now
	}
	return &Log{store: store, chainStore: chain, now: now, log: log, failed: c, chain: newChainMetrics(reg)}
}

// Record appends a system event to the unchained log. Recording is best
// effort: an entry that cannot be written is logged and counted, and never
// fails the action it describes. Owner actions go through Append instead.
func (l *Log) Record(ctx context.Context, pollID, actor id.ID, kind string, detail map[string]any) {
	e := Event{PollID: pollID, At: l.now().UTC(), Kind: kind, ActorID: actor, Detail: detail}
	if err := l.store.Append(context.WithoutCancel(ctx), e); err != nil {
		l.failed.Inc()
		l.log.Warn("audit entry not written", zap.Stringer("poll_id", pollID), zap.String("event", kind), zap.Error(err))
	}
}

// List returns a poll's whole story, newest first: its system events and
// its chained owner actions, merged by time (the operator's view, tally
// audit). The owner reads the chain alone (Page).
func (l *Log) List(ctx context.Context, pollID id.ID, limit int) ([]Event, error) {
	events, err := l.store.List(ctx, pollID, limit)
	if err != nil {
		return nil, err
	}
	chain, err := l.Chain(ctx, pollID)
	if err != nil {
		return nil, err
	}
	if len(chain) > limit {
		chain = chain[len(chain)-limit:]
	}
	for _, e := range chain {
		events = append(events, e.Event())
	}
	sort.SliceStable(events, func(i, j int) bool { return events[i].At.After(events[j].At) })
	if len(events) > limit {
		events = events[:limit]
	}
	return events, nil
}

// Event is the entry as an event of the merged story; a detail that is not
// a JSON object is dropped.
func (e Entry) Event() Event {
	ev := Event{PollID: e.PollID, At: e.At, Kind: e.Kind, ActorID: e.ActorID, Seq: e.Seq}
	_ = json.Unmarshal(e.Detail, &ev.Detail)
	return ev
}
