package cassandra

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gocql/gocql"
	"github.com/scylladb/gocqlx/v2"
	"golang.org/x/sync/errgroup"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/retry"
)

// bucketVoters lists the voters of one bucket of a poll's index.
var bucketVoters = newStatement(votesByPollTable.Select("voter_id"))

// voteByKey reads one vote row with the columns a scan reads.
var voteByKey = newStatement(votesTable.Get(scanColumns...))

// pollRowReads bounds the point reads of vote rows one index page starts.
const pollRowReads = 32

// ReadPollBucket calls fn, in the calling goroutine, for the vote row of
// every voter listed in one bucket of a poll's per-poll index: the index
// names the partitions, the rows themselves (the truth) are read by key.
// An index row whose vote row is missing, which the vote path never leaves
// (the row is written before its index row), is skipped and counted in
// orphans.
func ReadPollBucket(ctx context.Context, s gocqlx.Session, pollID gocql.UUID, bucket int, cons gocql.Consistency,
	fn func(VoteRow) error) (orphans int64, err error) {
	cons = ReadConsistency(cons)
	q := bucketVoters.query(ctx, s).BindStruct(voteIndexRow{PollID: pollID, Bucket: bucket}).Consistency(cons)
	what := fmt.Sprintf("read vote index bucket %d", bucket)
	var state []byte
	for {
		voters, next, err := readPage(ctx, what, q, state, func(r voteIndexRow) gocql.UUID { return r.VoterID })
		if err != nil {
			return orphans, err
		}
		rows, err := readVoteRows(ctx, s, pollID, voters, cons)
		if err != nil {
			return orphans, err
		}
		for _, r := range rows {
			if r == nil {
				orphans++
				continue
			}
			if err := fn(*r); err != nil {
				return orphans, err
			}
		}
		if len(next) == 0 {
			return orphans, nil
		}
		state = next
	}
}

// readVoteRows reads the vote rows of voters by key, a bounded number at
// once; a voter without a row gets nil.
func readVoteRows(ctx context.Context, s gocqlx.Session, pollID gocql.UUID, voters []gocql.UUID, cons gocql.Consistency) ([]*VoteRow, error) {
	out := make([]*VoteRow, len(voters))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(pollRowReads)
	for i, voter := range voters {
		g.Go(func() error {
			var r voteRow
			policy := retry.Policy{Base: 200 * time.Millisecond, Max: 5 * time.Second, Attempts: scanPageAttempts}
			err := retry.Do(gctx, policy, func(int) error {
				err := voteByKey.query(gctx, s).BindStruct(voteRow{PollID: pollID, VoterID: voter}).Consistency(cons).Get(&r)
				if errors.Is(err, gocql.ErrNotFound) || gctx.Err() != nil {
					return retry.Permanent(err)
				}
				return err
			}, nil)
			if errors.Is(err, gocql.ErrNotFound) {
				return nil
			}
			if err != nil {
				if gctx.Err() != nil {
					return gctx.Err()
				}
				return apperr.Unavailable("read vote row", err)
			}
			row := r.toScanRow()
			out[i] = &row
			return nil
		})
	}
	return out, g.Wait()
}
