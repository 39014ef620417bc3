//go:build integration

package cassandra_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/gocql/gocql"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tally-vote/tally/pkg/cassandra"
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
	poll, voter := gocql.MustRandomUUID(), gocql.MustRandomUUID()
	opt := []gocql.UUID{gocql.MustRandomUUID(), gocql.MustRandomUUID()}
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
			b := &vote.Ballot{PollID: poll, VoterID: voter, OptionIDs: opt, VoteID: gocql.MustRandomUUID(),
				RequestID: gocql.MustRandomUUID(), IdempotencyKey: "k", VotedAt: time.Now().UTC().Truncate(time.Millisecond),
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
