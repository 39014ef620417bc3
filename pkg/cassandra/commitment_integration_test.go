//go:build integration

package cassandra_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tally-vote/tally/pkg/cassandra"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/scan"
	"github.com/tally-vote/tally/pkg/testenv"
	"github.com/tally-vote/tally/pkg/vote"
)

// TestCommitmentRoundTrip writes ballots with and without a receipt
// commitment (flagged and scored variants too, each its own statement)
// and reads the commitment back from every path that reads a ballot: the
// conditional write's returned row, Get, the index row, and the per-poll
// read verify and export use. A ballot without one reads nil.
func TestCommitmentRoundTrip(t *testing.T) {
	s, cfg := testenv.Cassandra(t)
	ctx := context.Background()
	st := cassandra.NewVoteStore(s, cfg, prometheus.NewRegistry())
	idx := cassandra.NewIndexStore(s)
	pollID := id.New()
	const buckets = 1
	src := cassandra.NewVoteSource(s, func(context.Context, id.ID) (int, error) { return buckets, nil })
	commit := func(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }
	ballots := []*vote.Ballot{
		{Commitment: commit(1)},
		{Commitment: commit(2), Flags: []string{"ip_burst"}},
		{Commitment: commit(3), Scores: []int{4, 0}},
		{Commitment: commit(4), Flags: []string{"ip_burst"}, Scores: []int{5, 1}},
		{},
		{Scores: []int{2, 2}},
	}
	want := map[id.ID][]byte{}
	for _, b := range ballots {
		b.PollID, b.VoterID, b.VoteID, b.RequestID = pollID, id.New(), id.New(), id.New()
		b.OptionIDs, b.VotedAt = []id.ID{id.New(), id.New()}, time.Now().UTC().Truncate(time.Millisecond)
		want[b.VoterID] = b.Commitment
		applied, _, err := st.Insert(ctx, b)
		if err != nil || !applied {
			t.Fatalf("insert: %v %v", applied, err)
		}
		// A replay returns the stored row, commitment included.
		again := *b
		again.VoteID, again.Commitment = id.New(), commit(9)
		if applied, stored, err := st.Insert(ctx, &again); err != nil || applied || !bytes.Equal(stored.Commitment, b.Commitment) {
			t.Fatalf("replay: applied %v stored %x err %v, want %x", applied, stored.Commitment, err, b.Commitment)
		}
		got, err := st.Get(ctx, pollID, b.VoterID)
		if err != nil || !bytes.Equal(got.Commitment, b.Commitment) || (b.Commitment == nil) != (got.Commitment == nil) {
			t.Fatalf("get: commitment %x err %v, want %x", got.Commitment, err, b.Commitment)
		}
	}
	if err := st.Index(ctx, pollID, 0, ballots[:3]); err != nil {
		t.Fatal(err)
	}
	for _, b := range ballots[3:] {
		if err := st.Index(ctx, pollID, 0, []*vote.Ballot{b}); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range ballots {
		e, found, err := idx.Get(ctx, pollID, 0, b.VoterID)
		if err != nil || !found || !bytes.Equal(e.Commitment, b.Commitment) || (b.Commitment == nil) != (e.Commitment == nil) {
			t.Fatalf("index row: found %v commitment %x err %v, want %x", found, e.Commitment, err, b.Commitment)
		}
	}
	seen := 0
	if _, err := src.Bucket(ctx, pollID, 0, scan.DefaultConsistency, func(b vote.Ballot) error {
		seen++
		if w := want[b.VoterID]; !bytes.Equal(b.Commitment, w) || (w == nil) != (b.Commitment == nil) {
			t.Errorf("bucket read: voter %s commitment %x, want %x", b.VoterID, b.Commitment, w)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if seen != len(ballots) {
		t.Fatalf("bucket read %d ballots, want %d", seen, len(ballots))
	}
	// A repaired index row (verify's Put) carries the commitment too.
	e := vote.IndexEntry{VoteID: ballots[0].VoteID, Options: ballots[0].OptionIDs, VotedAt: ballots[0].VotedAt, Commitment: commit(7)}
	if err := idx.Put(ctx, pollID, 0, ballots[0].VoterID, e); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := idx.Get(ctx, pollID, 0, ballots[0].VoterID); !bytes.Equal(got.Commitment, commit(7)) {
		t.Fatalf("put index row: commitment %x", got.Commitment)
	}
}
