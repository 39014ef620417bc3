package main

import (
	"context"
	"time"

	"github.com/gocql/gocql"
	"github.com/scylladb/gocqlx/v2"
)

// The checker reads the votes table through cassandra.ScanVotes, the
// token-range scan in pkg/cassandra/scan.go. Until that is committed this
// file stands in for it with the same signature (a plain paged read of the
// whole table, fine for a chaos keyspace); switching is a matter of
// replacing these three declarations with aliases of the cassandra ones.

type voteRow struct {
	PollID, VoterID, VoteID, RequestID gocql.UUID
	OptionIDs                          []gocql.UUID
	IdempotencyKey                     string
	VotedAt                            time.Time
}

type scanOptions struct {
	Splits      int
	Workers     int
	Consistency gocql.Consistency
	Progress    func(done, total int)
}

func scanVotes(ctx context.Context, s gocqlx.Session, opts scanOptions, fn func(voteRow) error) error {
	q := s.Session.Query(`SELECT poll_id, voter_id, option_ids, vote_id, request_id, idempotency_key, voted_at FROM votes`).
		WithContext(ctx).PageSize(1000)
	if opts.Consistency != gocql.Any {
		q = q.Consistency(opts.Consistency)
	}
	iter := q.Iter()
	var r voteRow
	for iter.Scan(&r.PollID, &r.VoterID, &r.OptionIDs, &r.VoteID, &r.RequestID, &r.IdempotencyKey, &r.VotedAt) {
		if err := fn(r); err != nil {
			iter.Close()
			return err
		}
		r = voteRow{}
	}
	return iter.Close()
}
