package cassandra

import (
	"context"

	"github.com/scylladb/gocqlx/v2"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/scan"
	"github.com/tally-vote/tally/pkg/vote"
)

// VoteSource reads the vote rows as ballots for the jobs that read them in
// bulk (export, verify): the whole table by token range, or one poll
// through its index. It implements their ports.
type VoteSource struct {
	s gocqlx.Session
	// buckets is a poll's index bucket count (poll.ErrNotFound when the
	// poll does not exist).
	buckets func(ctx context.Context, pollID id.ID) (int, error)
}

// NewVoteSource reads through s; buckets tells a poll's index layout.
func NewVoteSource(s gocqlx.Session, buckets func(ctx context.Context, pollID id.ID) (int, error)) *VoteSource {
	return &VoteSource{s: s, buckets: buckets}
}

// Plan is the token ranges of a scan of at least splits ranges (PlanScan).
func (v *VoteSource) Plan(ctx context.Context, splits int) []scan.Range {
	return PlanScan(ctx, v.s, splits)
}

// Range reads one token range (ScanRange).
func (v *VoteSource) Range(ctx context.Context, r scan.Range, cons scan.Consistency, fn func(vote.Ballot) error) error {
	return ScanRange(ctx, v.s, r, cons, fn)
}

// Scan reads every vote row (ScanVotes).
func (v *VoteSource) Scan(ctx context.Context, opts scan.Options, fn func(vote.Ballot) error) error {
	return ScanVotes(ctx, v.s, opts, fn)
}

// Buckets is a poll's index bucket count.
func (v *VoteSource) Buckets(ctx context.Context, pollID id.ID) (int, error) {
	return v.buckets(ctx, pollID)
}

// Bucket reads the vote rows one index bucket names (ReadPollBucket).
func (v *VoteSource) Bucket(ctx context.Context, pollID id.ID, bucket int, cons scan.Consistency, fn func(vote.Ballot) error) (int64, error) {
	return ReadPollBucket(ctx, v.s, pollID, bucket, cons, fn)
}
