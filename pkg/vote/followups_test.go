package vote

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/gocql/gocql"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/poll"
)

// recorder captures the grouped follow-up writes.
type recorder struct {
	mu      sync.Mutex
	indexed map[int][]gocql.UUID // bucket -> voters
	counted map[int]int          // shard -> ballots
	calls   int
}

func (r *recorder) Insert(context.Context, *Ballot) (bool, *Ballot, error) { return true, nil, nil }
func (r *recorder) Get(context.Context, gocql.UUID, gocql.UUID) (*Ballot, error) {
	return nil, ErrNoVote
}
func (r *recorder) Index(_ context.Context, _ gocql.UUID, bucket int, bs []*Ballot) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	for _, b := range bs {
		r.indexed[bucket] = append(r.indexed[bucket], b.VoterID)
	}
	return nil
}
func (r *recorder) Add(_ context.Context, _ *poll.Poll, shard int, ballots [][]gocql.UUID) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	r.counted[shard] += len(ballots)
	return nil
}

func TestFollowUpsGroupAndDeduplicate(t *testing.T) {
	rec := &recorder{indexed: map[int][]gocql.UUID{}, counted: map[int]int{}}
	s := NewService(rec, rec, zap.NewNop(), time.Now, prometheus.NewRegistry())
	p := &poll.Poll{ID: gocql.MustRandomUUID(), IndexBuckets: 4, CounterShards: 4}
	opt := []gocql.UUID{gocql.MustRandomUUID()}
	var outs []Outcome
	for range 100 {
		b := &Ballot{PollID: p.ID, VoterID: gocql.MustRandomUUID(), VoteID: gocql.MustRandomUUID(), OptionIDs: opt}
		outs = append(outs, Outcome{Poll: p, Ballot: b, New: true})
	}
	// The replay of a ballot first, then its original, in one batch.
	outs = append([]Outcome{{Poll: p, Ballot: outs[0].Ballot}}, outs...)
	s.FollowUps(context.Background(), outs)

	indexed, counted := 0, 0
	for _, v := range rec.indexed {
		indexed += len(v)
	}
	for _, n := range rec.counted {
		counted += n
	}
	if indexed != 100 || counted != 100 {
		t.Fatalf("indexed %d, counted %d; want each ballot once (100)", indexed, counted)
	}
	if rec.calls > 8 {
		t.Fatalf("%d writes for 4 buckets and 4 shards; follow-ups are not grouped", rec.calls)
	}
}
