package vote

import (
	"context"
	"errors"

	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
)

// Unfinished durably lists the voters whose ballot a direct write (sync
// mode, or write-through while the queue is down) may have recorded
// without its follow-ups. Record writes the voter's entry before the
// conditional insert and removes it once the ballot is indexed, so
// follow-ups that gave up, or a process killed between the insert and the
// index row, leave an entry behind; the final tally resolves every entry
// of its poll (Complete) before it counts the index. The queued path needs
// none: the worker commits a message only after its follow-ups.
type Unfinished interface {
	Begin(ctx context.Context, pollID, voterID id.ID) error
	Done(ctx context.Context, pollID, voterID id.ID) error
	List(ctx context.Context, pollID id.ID) ([]id.ID, error)
}

// Complete resolves the poll's unfinished entries: a voter with a ballot
// gets its index row (idempotent), then the entry goes; a voter without
// one (the insert failed or was refused) just loses the entry. Counters
// are left to the final reconciliation, which repairs them from the index
// it measures next. It returns how many ballots it indexed. Run it only
// when no direct write of the poll can still be in flight uncounted by
// the freeze (the final run: the poll is closed and past its grace).
func (s *Service) Complete(ctx context.Context, p *poll.Poll) (int, error) {
	if s.unfinished == nil {
		return 0, nil
	}
	voters, err := s.unfinished.List(ctx, p.ID)
	if err != nil {
		return 0, err
	}
	indexed := 0
	for _, voter := range voters {
		b, err := s.store.Get(ctx, p.ID, voter)
		switch {
		case errors.Is(err, ErrNoVote):
		case err != nil:
			return indexed, err
		case versioned(b) && s.changes != nil && s.moves != nil:
			// A change's follow-ups: settle the entry to the row's version.
			if err := s.settle(ctx, p, b); err != nil {
				return indexed, err
			}
			indexed++
		default:
			if err := s.store.Index(ctx, p.ID, Bucket(voter, p.IndexBuckets), []*Ballot{b}); err != nil {
				return indexed, err
			}
			indexed++
		}
		if err := s.unfinished.Done(ctx, p.ID, voter); err != nil {
			return indexed, err
		}
	}
	if len(voters) > 0 {
		s.m.unfinished.WithLabelValues("resolved").Add(float64(len(voters)))
		s.m.unfinished.WithLabelValues("indexed_at_freeze").Add(float64(indexed))
		s.log.Info("unfinished direct writes resolved before the freeze", zap.Stringer("poll_id", p.ID),
			zap.Int("entries", len(voters)), zap.Int("indexed", indexed))
	}
	return indexed, nil
}
