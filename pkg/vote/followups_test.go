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

// recorder captures the grouped follow-up writes, in order, and can fail
// the next counter or index writes.
type recorder struct {
	mu          sync.Mutex
	indexed     map[id.ID]int // voter -> index writes
	counted     map[int]int   // shard -> ballots
	calls       int
	steps       []string
	failIndex   int // fail this many index writes
	failCounter int
	fenced      []id.ID
	left        int
}

func newRecorder() *recorder {
	return &recorder{indexed: map[id.ID]int{}, counted: map[int]int{}}
}

func (r *recorder) Insert(context.Context, *Ballot) (bool, *Ballot, error) { return true, nil, nil }
func (r *recorder) Get(context.Context, id.ID, id.ID) (*Ballot, error) {
	return nil, ErrNoVote
}
func (r *recorder) Indexed(context.Context, *Ballot, int) (bool, error) { return false, nil }
func (r *recorder) Index(_ context.Context, _ id.ID, _ int, bs []*Ballot) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	r.steps = append(r.steps, "index")
	if r.failIndex > 0 {
		r.failIndex--
		return errors.New("index write failed")
	}
	for _, b := range bs {
		r.indexed[b.VoterID]++
	}
	return nil
}
func (r *recorder) Add(_ context.Context, _ *poll.Poll, shard int, ballots [][]id.ID, _ [][]int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	r.steps = append(r.steps, "counter")
	if r.failCounter > 0 {
		r.failCounter--
		return errors.New("counter write failed")
	}
	r.counted[shard] += len(ballots)
	return nil
}
func (r *recorder) Enter(_ context.Context, polls []id.ID) (func(), error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fenced = append(r.fenced, polls...)
	return func() { r.mu.Lock(); r.left++; r.mu.Unlock() }, nil
}

func (r *recorder) total() (counted, indexed int) {
	for _, n := range r.counted {
		counted += n
	}
	for _, n := range r.indexed {
		indexed += min(n, 1)
	}
	return counted, indexed
}

func ballots(p *poll.Poll, n int) []Outcome {
	opt := []id.ID{id.New()}
	var outs []Outcome
	for range n {
		b := &Ballot{PollID: p.ID, VoterID: id.New(), VoteID: id.New(), OptionIDs: opt}
		outs = append(outs, Outcome{Poll: p, Ballot: b, New: true, Count: true})
	}
	return outs
}

func TestFollowUpsGroupAndDeduplicate(t *testing.T) {
	rec := newRecorder()
	s := NewService(Config{Mode: "sync"}, Deps{Store: rec, Counter: rec, Fence: rec, Log: zap.NewNop(), Now: time.Now}, prometheus.NewRegistry())
	p := &poll.Poll{ID: id.New(), IndexBuckets: 4, CounterShards: 4}
	outs := ballots(p, 100)
	// A redelivered ballot meets its original in one batch, both marked
	// to be counted (the replay found no index row yet): counted once.
	outs = append([]Outcome{{Poll: p, Ballot: outs[0].Ballot, Count: true}}, outs...)
	if err := s.FollowUps(context.Background(), outs); err != nil {
		t.Fatal(err)
	}
	if counted, indexed := rec.total(); indexed != 100 || counted != 100 {
		t.Fatalf("indexed %d, counted %d; want each ballot once (100)", indexed, counted)
	}
	if rec.calls > 8 {
		t.Fatalf("%d writes for 4 buckets and 4 shards; follow-ups are not grouped", rec.calls)
	}
	if len(rec.fenced) != 1 || rec.fenced[0] != p.ID || rec.left != 1 {
		t.Fatalf("fence entered for %v, left %d times; want the poll once", rec.fenced, rec.left)
	}
}

// Counters are written before index rows (an index row means "counted"),
// and a retry after a failure never counts a shard twice.
func TestFollowUpsOrderAndRetry(t *testing.T) {
	tests := []struct {
		name                   string
		failCounter, failIndex int
	}{
		{"clean", 0, 0},
		{"index fails once", 0, 1},
		{"a counter shard fails once", 1, 0},
		{"both fail", 2, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := newRecorder()
			rec.failCounter, rec.failIndex = tc.failCounter, tc.failIndex
			s := NewService(Config{Mode: "sync"}, Deps{Store: rec, Counter: rec, Fence: rec, Log: zap.NewNop(), Now: time.Now}, prometheus.NewRegistry())
			p := &poll.Poll{ID: id.New(), IndexBuckets: 4, CounterShards: 4}
			outs := ballots(p, 50)
			var err error
			for range 10 {
				if err = s.FollowUps(context.Background(), outs); err == nil {
					break
				}
			}
			if err != nil {
				t.Fatalf("follow-ups never succeeded: %v", err)
			}
			if counted, indexed := rec.total(); counted != 50 || indexed != 50 {
				t.Fatalf("counted %d, indexed %d after retries; want 50 and 50", counted, indexed)
			}
			seenIndex := false
			for _, st := range rec.steps {
				if st == "index" {
					seenIndex = true
				}
				if st == "counter" && seenIndex && tc.failCounter == 0 {
					t.Fatalf("a counter write after an index write: %v", rec.steps)
				}
			}
		})
	}
}
