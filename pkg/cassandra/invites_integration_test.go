//go:build integration

package cassandra_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tally-vote/tally/pkg/cassandra"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/testenv"
	"github.com/tally-vote/tally/pkg/vote"
)

// TestInviteStore writes a mint larger than one batch and reads it back
// every way the anonymous-access service does, against the real server:
// existence per poll, the count, the pages, and which voters have a ballot.
func TestInviteStore(t *testing.T) {
	s, cfg := testenv.Cassandra(t)
	st := cassandra.NewInviteStore(s)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pollA, pollB := id.New(), id.New()
	hash := func(i int) []byte { h := sha256.Sum256([]byte(fmt.Sprint(i))); return h[:] }
	const n = 1234 // 25 batches, the last one partial
	hashes := make([][]byte, n)
	for i := range hashes {
		hashes[i] = hash(i)
	}
	if err := st.AddInvites(ctx, pollA, hashes, time.Now().UTC().Truncate(time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		poll id.ID
		hash []byte
		want bool
	}{
		{pollA, hash(0), true},
		{pollA, hash(n - 1), true},
		{pollA, hash(n), false},
		{pollB, hash(0), false},
	} {
		if got, err := st.InviteExists(ctx, tc.poll, tc.hash); err != nil || got != tc.want {
			t.Errorf("exists(%s, %x) = %v, %v; want %v", tc.poll, tc.hash[:4], got, err, tc.want)
		}
	}
	if got, err := st.CountInvites(ctx, pollA); err != nil || got != n {
		t.Fatalf("count = %d, %v; want %d", got, err, n)
	}
	if got, err := st.CountInvites(ctx, pollB); err != nil || got != 0 {
		t.Fatalf("count of another poll = %d, %v", got, err)
	}
	seen := map[string]bool{}
	pages := 0
	err := st.EachInvitePage(ctx, pollA, func(page [][]byte) error {
		pages++
		for _, h := range page {
			seen[string(h)] = true
		}
		return nil
	})
	if err != nil || len(seen) != n || pages < 2 {
		t.Fatalf("pages: %d distinct hashes in %d pages, %v", len(seen), pages, err)
	}

	// Ballots of 3 voters out of 120 (more than two IN reads).
	votes := cassandra.NewVoteStore(s, cfg, prometheus.NewRegistry())
	voters := make([]id.ID, 120)
	for i := range voters {
		voters[i] = id.New()
	}
	for _, i := range []int{0, 51, 119} {
		b := &vote.Ballot{PollID: pollA, VoterID: voters[i], OptionIDs: []id.ID{id.New()},
			VoteID: id.New(), RequestID: id.New(), VotedAt: time.Now().UTC().Truncate(time.Millisecond)}
		if applied, _, err := votes.Insert(ctx, b); err != nil || !applied {
			t.Fatalf("insert ballot: %v %v", applied, err)
		}
	}
	if got, err := st.CountBallots(ctx, pollA, voters); err != nil || got != 3 {
		t.Fatalf("ballots = %d, %v; want 3", got, err)
	}
	if got, err := st.CountBallots(ctx, pollB, voters); err != nil || got != 0 {
		t.Fatalf("ballots on another poll = %d, %v", got, err)
	}
}
