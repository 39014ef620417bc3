package vote

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
)

// fakeIndex is an in-memory index (one entry per voter) with the
// conditional move of ChangeStore, and counters per option that Move
// adjusts; race runs once, between a settle's read and its move.
type fakeIndex struct {
	mu      sync.Mutex
	e       map[id.ID]IndexEntry
	counts  map[id.ID]int64
	ballots int64
	race    func()
	failMov int
}

func newFakeIndex() *fakeIndex {
	return &fakeIndex{e: map[id.ID]IndexEntry{}, counts: map[id.ID]int64{}}
}

func (x *fakeIndex) Change(context.Context, *Ballot, int, id.ID, ChangeOutcome) (bool, *Ballot, error) {
	return false, nil, errors.New("not used")
}

func (x *fakeIndex) Entry(_ context.Context, _ id.ID, _ int, voter id.ID) (IndexEntry, bool, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	e, ok := x.e[voter]
	return e, ok, nil
}

func (x *fakeIndex) MoveEntry(_ context.Context, _ id.ID, _ int, voter id.ID, e IndexEntry, from int, found bool) (bool, error) {
	if r := x.race; r != nil {
		x.race = nil
		r()
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.failMov > 0 {
		x.failMov--
		return false, errors.New("move failed")
	}
	cur, ok := x.e[voter]
	if ok != found || (ok && cur.Version != from) {
		return false, nil
	}
	x.e[voter] = e
	return true, nil
}

func (x *fakeIndex) Move(_ context.Context, _ *poll.Poll, _ int, from, to *IndexEntry) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if from != nil {
		x.ballots--
		for _, o := range from.Options {
			x.counts[o]--
		}
	}
	if to != nil {
		x.ballots++
		for _, o := range to.Options {
			x.counts[o]++
		}
	}
	return nil
}

func TestSettleAppliesEachDifferenceOnce(t *testing.T) {
	a, b, c := id.New(), id.New(), id.New()
	p := &poll.Poll{ID: id.New(), IndexBuckets: 4, CounterShards: 4}
	voter := id.New()
	first := IndexEntry{VoteID: id.New(), Options: []id.ID{a}}
	tests := []struct {
		name        string
		ballot      Ballot
		race        bool // a concurrent settle moves the entry to v2 first
		failMove    int
		wantVersion int
		wantCounts  map[id.ID]int64
		wantBallots int64
	}{
		{"change", Ballot{Version: 1, OptionIDs: []id.ID{b}}, false, 0, 1, map[id.ID]int64{a: 0, b: 1}, 1},
		{"revoke", Ballot{Version: 1, Revoked: true, OptionIDs: []id.ID{a}}, false, 0, 1, map[id.ID]int64{a: 0}, 0},
		{"lost to a concurrent change", Ballot{Version: 1, OptionIDs: []id.ID{b}}, true, 0, 2, map[id.ID]int64{a: 0, b: 0, c: 1}, 1},
		{"move failed, retried", Ballot{Version: 1, OptionIDs: []id.ID{b}}, false, 1, 1, map[id.ID]int64{a: 0, b: 1}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := newFakeIndex()
			x.e[voter], x.counts[a], x.ballots = first, 1, 1 // the first vote, counted
			x.failMov = tc.failMove
			s := NewService(Config{}, Deps{Store: newRecorder(), Counter: newRecorder(), Fence: newRecorder(), Changes: x, Moves: x,
				Log: zap.NewNop(), Now: time.Now}, prometheus.NewRegistry())
			b := tc.ballot
			b.PollID, b.VoterID, b.VoteID = p.ID, voter, first.VoteID
			if tc.race {
				x.race = func() {
					later := Ballot{PollID: p.ID, VoterID: voter, VoteID: first.VoteID, Version: 2, OptionIDs: []id.ID{c}}
					if err := s.settle(context.Background(), p, &later); err != nil {
						t.Error(err)
					}
				}
			}
			var err error
			for range 3 { // the caller retries the whole follow-up
				if err = s.FollowUps(context.Background(), []Outcome{{Poll: p, Ballot: &b}}); err == nil {
					break
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			// A redelivery of the same version changes nothing.
			if err := s.FollowUps(context.Background(), []Outcome{{Poll: p, Ballot: &b}}); err != nil {
				t.Fatal(err)
			}
			if got := x.e[voter]; got.Version != tc.wantVersion {
				t.Fatalf("entry at version %d, want %d", got.Version, tc.wantVersion)
			}
			for o, n := range tc.wantCounts {
				if x.counts[o] != n {
					t.Errorf("option counted %d, want %d (%v)", x.counts[o], n, x.counts)
				}
			}
			if x.ballots != tc.wantBallots {
				t.Errorf("ballots %d, want %d", x.ballots, tc.wantBallots)
			}
		})
	}
}

// A voter with a changed ballot in a batch is settled alone: the plain
// count and index write of an earlier outcome of the batch are skipped.
func TestFollowUpsSettleChangedVoterAlone(t *testing.T) {
	rec, x := newRecorder(), newFakeIndex()
	s := NewService(Config{}, Deps{Store: rec, Counter: rec, Fence: rec, Changes: x, Moves: x, Log: zap.NewNop(), Now: time.Now},
		prometheus.NewRegistry())
	p := &poll.Poll{ID: id.New(), IndexBuckets: 4, CounterShards: 4}
	voter, opt := id.New(), id.New()
	orig := &Ballot{PollID: p.ID, VoterID: voter, VoteID: id.New(), OptionIDs: []id.ID{id.New()}}
	recast := *orig
	recast.Version, recast.OptionIDs = 2, []id.ID{opt}
	outs := append(ballots(p, 3), Outcome{Poll: p, Ballot: orig, New: true, Count: true}, Outcome{Poll: p, Ballot: &recast, New: true, Count: true})
	if err := s.FollowUps(context.Background(), outs); err != nil {
		t.Fatal(err)
	}
	if counted, indexed := rec.total(); counted != 3 || indexed != 3 || rec.indexed[voter] != 0 {
		t.Fatalf("plain path counted %d, indexed %d (voter %d)", counted, indexed, rec.indexed[voter])
	}
	if e := x.e[voter]; e.Version != 2 || x.counts[opt] != 1 || x.ballots != 1 {
		t.Fatalf("settled entry %+v, counts %v", e, x.counts)
	}
}

func TestChangeOutcomeText(t *testing.T) {
	for _, o := range []ChangeOutcome{{KindChanged, 1}, {KindRevoked, 12}, {KindRecast, 3}} {
		got, ok := ParseChangeOutcome(o.String())
		if !ok || got != o {
			t.Errorf("%v read back as %v %v", o, got, ok)
		}
	}
	for _, bad := range []string{"", "changed", "changed:x", ":"} {
		if _, ok := ParseChangeOutcome(bad); ok {
			t.Errorf("%q read as an outcome", bad)
		}
	}
}
