//go:build integration

package cassandra_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/cassandra"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/testenv"
	"github.com/tally-vote/tally/pkg/vote"
)

// TestVoteInsertCASAgainstCassandra checks the conditional write's
// [applied] flag and returned row on the real server, concurrently: exactly
// one insert applies and every other one sees that winner's row, read by
// column name (gocqlx's CAS helpers have been reported to misread it on
// Cassandra).
func TestVoteInsertCASAgainstCassandra(t *testing.T) {
	s, cfg := testenv.Cassandra(t)
	st := cassandra.NewVoteStore(s, cfg, prometheus.NewRegistry())
	poll, voter := id.New(), id.New()
	opt := []id.ID{id.New(), id.New()}
	const n = 20
	type res struct {
		applied bool
		stored  *vote.Ballot
		mine    *vote.Ballot
	}
	results := make([]res, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := &vote.Ballot{PollID: poll, VoterID: voter, OptionIDs: opt, VoteID: id.New(),
				RequestID: id.New(), IdempotencyKey: "k", VotedAt: time.Now().UTC().Truncate(time.Millisecond),
				IP: "127.0.0.1", UserAgent: "test"}
			applied, stored, err := st.Insert(context.Background(), b)
			if err != nil {
				t.Errorf("insert %d: %v", i, err)
			}
			results[i] = res{applied, stored, b}
		}()
	}
	wg.Wait()
	var winner *vote.Ballot
	for _, r := range results {
		if r.applied {
			if winner != nil {
				t.Fatal("two inserts applied")
			}
			winner = r.mine
		}
	}
	if winner == nil {
		t.Fatal("no insert applied")
	}
	for i, r := range results {
		if r.applied {
			continue
		}
		got := r.stored
		if got == nil || got.VoteID != winner.VoteID || got.RequestID != winner.RequestID || got.IdempotencyKey != "k" ||
			len(got.OptionIDs) != 2 || got.OptionIDs[1] != opt[1] || got.IP != "127.0.0.1" || !got.VotedAt.Equal(winner.VotedAt) {
			t.Fatalf("loser %d saw %+v, want the winner's row %+v", i, got, winner)
		}
	}
	row, err := st.Get(context.Background(), poll, voter)
	if err != nil || row.VoteID != winner.VoteID {
		t.Fatalf("stored row %+v %v", row, err)
	}
}

// TestUnknownOutcomeOfAReplayIsNotNew redelivers a stored ballot (same vote
// id) while Cassandra is frozen, so the conditional write times out and
// its outcome is unknown. The serial read that resolves it finds the row
// the first delivery wrote: that is a replay, not a new ballot, whatever
// the vote id says, or the ballot would be counted twice.
func TestUnknownOutcomeOfAReplayIsNotNew(t *testing.T) {
	_, cfg := testenv.Cassandra(t)
	cfg.Timeout = time.Second
	s, err := cassandra.Connect(cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st := cassandra.NewVoteStore(s, cfg, prometheus.NewRegistry())
	b := &vote.Ballot{PollID: id.New(), VoterID: id.New(), OptionIDs: []id.ID{id.New()},
		VoteID: id.New(), RequestID: id.New(), VotedAt: time.Now().UTC().Truncate(time.Millisecond)}
	if applied, _, err := st.Insert(context.Background(), b); err != nil || !applied {
		t.Fatalf("first delivery: applied %v, %v", applied, err)
	}
	resume := testenv.Pause(t, "cassandra")
	type result struct {
		applied bool
		stored  *vote.Ballot
		err     error
	}
	done := make(chan result, 1)
	go func() {
		applied, stored, err := st.Insert(context.Background(), b)
		done <- result{applied, stored, err}
	}()
	time.Sleep(1400 * time.Millisecond) // past the client timeout: the outcome is unknown
	resume()
	r := <-done
	if r.err != nil {
		t.Fatalf("redelivery: %v", r.err)
	}
	if r.applied {
		t.Fatal("a redelivered ballot whose outcome was unknown was reported as newly applied: it would be counted twice")
	}
	if r.stored == nil || r.stored.VoteID != b.VoteID {
		t.Fatalf("stored %+v", r.stored)
	}
}
