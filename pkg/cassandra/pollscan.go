package cassandra

import (
	"context"
	"fmt"

	"github.com/scylladb/gocqlx/v2"
	"github.com/scylladb/gocqlx/v2/qb"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/scan"
	"github.com/tally-vote/tally/pkg/vote"
	"golang.org/x/sync/errgroup"
)

// bucketVoters lists the voters of one bucket of a poll's index.
var bucketVoters = newStatement(votesByPollTable.Select("voter_id"))

// votesByKeys reads the vote rows of some voters of one poll: poll_id is
// bound, voter_id IN a list, so the coordinator fans out to the partitions
// and one round trip serves many.
var votesByKeys = newStatement(qb.Select(votesTable.Name()).Columns(scanColumns...).
	Where(qb.Eq("poll_id"), qb.In("voter_id")).ToCql())

const (
	// pollRowsPerRead is how many voters one read asks for.
	pollRowsPerRead = 50
	// pollRowReads bounds the reads of vote rows one index page starts.
	pollRowReads = 8
)

// ReadPollBucket calls fn, in the calling goroutine, for the vote row of
// every voter listed in one bucket of a poll's per-poll index: the index
// names the partitions, the rows themselves (the truth) are read by key.
// An index row whose vote row is missing, which the vote path never leaves
// (the row is written before its index row), is skipped and counted in
// orphans.
func ReadPollBucket(ctx context.Context, s gocqlx.Session, pollID id.ID, bucket int, cons scan.Consistency,
	fn func(vote.Ballot) error) (orphans int64, err error) {
	q := bucketVoters.query(ctx, s).BindStruct(voteIndexRow{PollID: pollID, Bucket: bucket}).Consistency(readConsistency(cons))
	what := fmt.Sprintf("read vote index bucket %d", bucket)
	var state []byte
	for {
		voters, next, err := readPage(ctx, what, q, state, func(r voteIndexRow) id.ID { return r.VoterID })
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

// readVoteRows reads the vote rows of voters, pollRowsPerRead voters a
// query and a bounded number of queries at once; a voter without a row gets
// nil.
func readVoteRows(ctx context.Context, s gocqlx.Session, pollID id.ID, voters []id.ID, cons scan.Consistency) ([]*vote.Ballot, error) {
	out := make([]*vote.Ballot, len(voters))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(pollRowReads)
	for lo := 0; lo < len(voters); lo += pollRowsPerRead {
		chunk := voters[lo:min(lo+pollRowsPerRead, len(voters))]
		g.Go(func() error {
			q := votesByKeys.query(gctx, s).BindMap(qb.M{"poll_id": pollID, "voter_id": chunk}).Consistency(readConsistency(cons))
			found := make(map[id.ID]vote.Ballot, len(chunk))
			var state []byte
			for {
				rows, next, err := readPage(gctx, "read vote rows", q, state, voteRow.toScanRow)
				if err != nil {
					return err
				}
				for _, r := range rows {
					found[r.VoterID] = r
				}
				if len(next) == 0 {
					break
				}
				state = next
			}
			for i, v := range chunk {
				if r, ok := found[v]; ok {
					out[lo+i] = &r
				}
			}
			return nil
		})
	}
	return out, g.Wait()
}
