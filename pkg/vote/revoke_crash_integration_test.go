//go:build integration

package vote_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tally-vote/tally/pkg/cassandra"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/testenv"
	"github.com/tally-vote/tally/pkg/vote"
)

// TestRevokeRedeliveredAfterACrashReleasesTheFlag: a worker applies a
// queued revoke's conditional write and is killed before it releases the
// voter's flag (`make chaos`'s change-kill row met it: a revoked voter's
// new vote refused ALREADY_VOTED). The revoke is redelivered; the row says
// it applied already, and the redelivery must release the flag so the
// voter may vote again, as after any revoke. Before the fix the replay
// returned at once and the flag held until it expired.
func TestRevokeRedeliveredAfterACrashReleasesTheFlag(t *testing.T) {
	// Async: the vote route admits by the voter's Redis flag.
	e := start(t, asyncConfig(t), true)
	ctx := context.Background()
	owner, _ := e.c.Account()
	pollID, opts := e.c.Poll(owner, map[string]any{"allow_vote_change": true})
	voter, voterID := e.c.Account()
	base := "/v1/polls/" + pollID + "/votes"
	e.c.Do("POST", base, voter, map[string]any{"option_id": opts[0]}).Must(t, http.StatusAccepted)

	pid, _ := id.Parse(pollID)
	vid, _ := id.Parse(voterID)
	p, err := e.app.Polls.Get(ctx, pid)
	if err != nil {
		t.Fatal(err)
	}
	store := cassandra.NewVoteStore(e.app.CQL, e.cfg.Cassandra, prometheus.NewRegistry())
	var stored *vote.Ballot
	testenv.Eventually(t, 30*time.Second, func() error {
		stored, err = store.Get(ctx, pid, vid)
		return err
	})
	// What the killed worker did: the revoke's conditional write, and
	// nothing after it.
	revoke := id.New()
	at := time.Now().UTC().Truncate(time.Millisecond)
	next := *stored
	next.Version, next.Revoked, next.Commitment, next.ChangedAt = 1, true, nil, at
	applied, _, err := store.Change(ctx, &next, 0, revoke, vote.ChangeOutcome{Kind: vote.KindRevoked, Version: 1})
	if err != nil || !applied {
		t.Fatalf("revoke's write: applied %v, %v", applied, err)
	}
	if r := e.c.Do("POST", base, voter, map[string]any{"option_id": opts[1]}); r.Code() != "ALREADY_VOTED" {
		t.Fatalf("with the flag still held a new vote should be refused ALREADY_VOTED; got %d %s", r.Status, r.Raw)
	}

	// The redelivery of the queued revoke.
	b := &vote.Ballot{PollID: pid, VoterID: vid, VoteID: stored.VoteID, RequestID: revoke, VotedAt: at, Change: vote.KindRevoked}
	if _, err := e.app.Votes.ApplyChange(ctx, p, b); err != nil {
		t.Fatalf("redelivered revoke: %v", err)
	}
	again := e.c.Do("POST", base, voter, map[string]any{"option_id": opts[1]})
	if again.Status != http.StatusAccepted {
		t.Fatalf("vote after the redelivered revoke: %d %s (the flag was not released)", again.Status, again.Raw)
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		row, err := store.Get(ctx, pid, vid)
		if err != nil || row.Revoked || row.Version != 2 || row.OptionIDs[0].String() != opts[1] {
			return fmt.Errorf("row after voting again: %+v, %v", row, err)
		}
		return nil
	})
	// A second redelivery of the revoke finds the ballot cast again: the
	// new vote's flag stays.
	if _, err := e.app.Votes.ApplyChange(ctx, p, b); err != nil {
		t.Fatalf("second redelivery: %v", err)
	}
	if r := e.c.Do("POST", base, voter, map[string]any{"option_id": opts[2]}); r.Code() != "ALREADY_VOTED" {
		t.Fatalf("a second vote after voting again: %d %s", r.Status, r.Raw)
	}
}
