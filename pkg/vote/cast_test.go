package vote

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/ratelimit"
)

// steps records the order in which cast reaches its ports.
type steps struct {
	calls      []string
	flagErr    error
	enqueueErr error
	down       bool
	mark       Mark
	poll       *poll.Poll
}

func (s *steps) View(context.Context, id.ID) (*poll.Poll, time.Time, error) {
	return s.poll, time.Now(), nil
}

func (s *steps) FreezeOptions(context.Context, *poll.Poll) error { return nil }

func (s *steps) Available() bool { return !s.down }

func (s *steps) Enqueue(context.Context, *poll.Poll, time.Time, *Ballot) error {
	s.calls = append(s.calls, "enqueue")
	return s.enqueueErr
}

func (s *steps) MarkQueued(context.Context, *poll.Poll, *Ballot) (Mark, error) {
	s.calls = append(s.calls, "marked")
	if s.mark == MarkUnknown {
		return s.mark, errors.New("redis: i/o timeout")
	}
	return s.mark, nil
}

func (s *steps) MarkRecorded(*poll.Poll, *Ballot) {
	s.calls = append(s.calls, "marked_recorded")
}

func (s *steps) Release(context.Context, id.ID, id.ID, id.ID) error {
	s.calls = append(s.calls, "released")
	return nil
}

func (s *steps) Withdraw(context.Context, id.ID, id.ID, id.ID) error {
	s.calls = append(s.calls, "withdrawn")
	return nil
}

func (s *steps) Forget(context.Context, id.ID, id.ID, id.ID) error {
	s.calls = append(s.calls, "forgotten")
	return nil
}

func (s *steps) Accepted(context.Context, id.ID, id.ID, id.ID) (bool, error) {
	return false, nil
}

// settle answers like the admission script letting everything through.
func settle(a *Admit) error {
	return a.Limits.Settle(ratelimit.Verdict{Allowed: true, Rule: 1, Remaining: 4, Reset: time.Second})
}

func (s *steps) Flag(_ context.Context, a *Admit) error {
	s.calls = append(s.calls, "flag")
	if s.flagErr != nil {
		return s.flagErr
	}
	return settle(a)
}

func (s *steps) Check(_ context.Context, a *Admit) error {
	s.calls = append(s.calls, "check")
	return settle(a)
}

// Cast reaches the admission where the queue's flag step used to: Flag
// before Enqueue on the async path, Check (only for what is still
// pending) before any direct write; the limits' decision comes back in
// the receipt.
func TestCastAdmitsThenQueuesOrRecords(t *testing.T) {
	now := time.Now()
	opt := id.New()
	p := &poll.Poll{ID: id.New(), StartTime: now.Add(-time.Hour), EndTime: now.Add(time.Hour),
		Options: []poll.Option{{ID: opt}}, IndexBuckets: 1, CounterShards: 1}
	l := ratelimit.New(ratelimit.Config{VotesPerMinutePerUser: 5}, nil, zap.NewNop(), time.Now, prometheus.NewRegistry())
	hits := []ratelimit.Hit{{Rule: l.Rules(ratelimit.Vote)[0], Subject: "voter"}}
	for _, tc := range []struct {
		name      string
		mode      string
		q         steps
		hits      []ratelimit.Hit
		want      []string
		wantErr   error
		recorded  bool
		wantLimit bool
	}{
		{"async", "async", steps{mark: MarkQueued}, hits, []string{"flag", "enqueue", "marked"}, nil, false, true},
		{"async, flag gone (the worker already released it)", "async", steps{mark: MarkGone}, hits, []string{"flag", "enqueue", "marked"}, nil, false, true},
		{"async, mark unanswered", "async", steps{mark: MarkUnknown}, hits, []string{"flag", "enqueue", "marked"}, nil, false, true},
		{"async, another request took the stale flag over", "async", steps{mark: MarkOtherPending}, hits,
			[]string{"flag", "enqueue", "marked", "forgotten"}, ErrVoteUndecided, false, false},
		{"async, another request is queued", "async", steps{mark: MarkOtherQueued}, hits,
			[]string{"flag", "enqueue", "marked", "forgotten"}, ErrAlreadyVoted, false, false},
		{"async, duplicate", "async", steps{flagErr: ErrAlreadyVoted}, hits, []string{"flag"}, ErrAlreadyVoted, false, false},
		{"async, queue down: flagged, then written through", "async", steps{down: true}, hits, []string{"flag", "marked_recorded"}, nil, true, true},
		{"async, produce failed after the flag", "async", steps{enqueueErr: ErrQueueUnavailable}, hits,
			[]string{"flag", "enqueue", "marked_recorded"}, nil, true, true},
		{"async, shed (the message may still land: the flag stays)", "async", steps{enqueueErr: ErrShed}, hits,
			[]string{"flag", "enqueue", "forgotten"}, ErrShed, false, false},
		{"sync", "sync", steps{}, hits, []string{"check"}, nil, true, true},
		{"sync, nothing to check", "sync", steps{}, nil, nil, nil, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := newRecorder()
			q := tc.q
			q.poll = p
			s := NewService(Config{Mode: tc.mode}, Deps{Store: rec, Counter: rec, Fence: rec, Polls: &q, Queue: &q, Flags: &q,
				Admission: &q, Limits: l, Log: zap.NewNop(), Now: time.Now}, prometheus.NewRegistry())
			out, err := s.Cast(context.Background(), Request{PollID: p.ID, VoterID: id.New(),
				OptionIDs: []id.ID{opt}, Limits: tc.hits})
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
			if !slices.Equal(q.calls, tc.want) {
				t.Fatalf("calls %v, want %v", q.calls, tc.want)
			}
			if (out.Recorded != nil) != tc.recorded {
				t.Fatalf("recorded %v, want %v", out.Recorded != nil, tc.recorded)
			}
			if out.Limit.Allowed != tc.wantLimit || (tc.wantLimit && out.Limit.Remaining != 4) {
				t.Fatalf("limit %+v", out.Limit)
			}
		})
	}
}
