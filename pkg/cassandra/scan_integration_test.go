//go:build integration

package cassandra_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/tally-vote/tally/pkg/cassandra"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/scan"
	"github.com/tally-vote/tally/pkg/testenv"
	"github.com/tally-vote/tally/pkg/vote"
)

type voteKey struct{ poll, voter id.ID }

// TestScanVotesSeesEveryRowOnce writes rows over several polls and scans
// them with a few split and worker counts: every row must reach fn exactly
// once, with the columns it was written with.
func TestScanVotesSeesEveryRowOnce(t *testing.T) {
	s, _ := testenv.Cassandra(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	const polls, perPoll = 3, 700
	want := map[voteKey]vote.Ballot{}
	at := time.Now().UTC().Truncate(time.Millisecond)
	for p := 0; p < polls; p++ {
		poll := id.New()
		for v := 0; v < perPoll; v++ {
			r := vote.Ballot{PollID: poll, VoterID: id.New(), VoteID: id.New(),
				RequestID: id.New(), OptionIDs: []id.ID{id.New()},
				VotedAt: at.Add(time.Duration(v) * time.Millisecond)}
			if v%2 == 0 {
				r.IdempotencyKey = "key-" + r.VoteID.String()
			}
			want[voteKey{r.PollID, r.VoterID}] = r
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(32)
	for _, r := range want {
		g.Go(func() error {
			var key any
			if r.IdempotencyKey != "" {
				key = r.IdempotencyKey
			}
			return s.Session.Query(`INSERT INTO votes (poll_id, voter_id, option_ids, vote_id, request_id, idempotency_key, voted_at)
				VALUES (?, ?, ?, ?, ?, ?, ?)`, r.PollID, r.VoterID, r.OptionIDs, r.VoteID, r.RequestID, key, r.VotedAt).
				WithContext(gctx).Exec()
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("insert votes: %v", err)
	}

	for _, tc := range []struct {
		name            string
		splits, workers int
	}{
		{"defaults", 0, 0},
		{"one split", 1, 1},
		{"many splits", 257, 16},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var (
				mu       sync.Mutex
				seen     = map[voteKey]int{}
				progress []int
			)
			err := cassandra.ScanVotes(ctx, s, scan.Options{Splits: tc.splits, Workers: tc.workers,
				Progress: func(done, total int) { progress = append(progress, done, total) }},
				func(r vote.Ballot) error {
					mu.Lock()
					defer mu.Unlock()
					k := voteKey{r.PollID, r.VoterID}
					seen[k]++
					w, ok := want[k]
					switch {
					case !ok:
						t.Errorf("unexpected row %v/%v", r.PollID, r.VoterID)
					case w.VoteID != r.VoteID || w.RequestID != r.RequestID || w.IdempotencyKey != r.IdempotencyKey ||
						!w.VotedAt.Equal(r.VotedAt) || len(r.OptionIDs) != 1 || r.OptionIDs[0] != w.OptionIDs[0]:
						t.Errorf("row %v/%v read as %+v, written as %+v", r.PollID, r.VoterID, r, w)
					}
					return nil
				})
			if err != nil {
				t.Fatalf("scan: %v", err)
			}
			for k := range want {
				if seen[k] != 1 {
					t.Errorf("row %v/%v seen %d times", k.poll, k.voter, seen[k])
				}
			}
			if len(seen) != len(want) {
				t.Errorf("saw %d distinct rows, want %d", len(seen), len(want))
			}
			t.Logf("scan read %d token ranges", progress[len(progress)-1])
			if n := len(progress); n == 0 || progress[n-2] != progress[n-1] {
				t.Errorf("progress did not end at total: %v", progress[max(0, n-2):])
			}
			if tc.splits > 0 && progress[len(progress)-1] < tc.splits {
				t.Errorf("scan used %d ranges, asked for %d", progress[len(progress)-1], tc.splits)
			}
		})
	}

	t.Run("fn error stops the scan", func(t *testing.T) {
		stop := errors.New("stop")
		err := cassandra.ScanVotes(ctx, s, scan.Options{Workers: 4}, func(vote.Ballot) error { return stop })
		if !errors.Is(err, stop) {
			t.Fatalf("scan returned %v, want the callback's error", err)
		}
	})
}
