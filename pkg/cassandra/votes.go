package cassandra

import (
	"context"
	"errors"
	"slices"

	"github.com/gocql/gocql"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/scylladb/gocqlx/v2"
	"github.com/scylladb/gocqlx/v2/qb"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/vote"
)

// VoteStore implements vote.Store.
type VoteStore struct {
	s       gocqlx.Session
	serial  gocql.SerialConsistency
	unknown prometheus.Counter
}

// NewVoteStore builds the store and registers its metric.
func NewVoteStore(s gocqlx.Session, cfg Config, reg prometheus.Registerer) *VoteStore {
	serial, _ := parseSerial(cfg.SerialConsistency)
	unknown := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tally_vote_lwt_unknown_outcomes_total",
		Help: "Vote LWTs whose outcome the cluster did not report (write timeout, CAS unknown, no answer), each resolved by a serial read.",
	})
	reg.MustRegister(unknown)
	return &VoteStore{s: s, serial: serial, unknown: unknown}
}

// A ballot's optional columns are written only when it has them, so an
// unflagged, unscored ballot or one without a receipt commitment leaves
// them unset rather than null: a null would write a tombstone (for a
// collection, one into every row of the index partition). Each combination
// has its statement, indexed by optionalColumns.
const (
	withFlags = 1 << iota
	withScores
	withCommitment
	optionalCombinations
)

// optionalColumns is the set of optional columns b's values fill.
func optionalColumns(flags []string, scores []int, commitment []byte) int {
	m := 0
	if len(flags) > 0 {
		m |= withFlags
	}
	if len(scores) > 0 {
		m |= withScores
	}
	if len(commitment) > 0 {
		m |= withCommitment
	}
	return m
}

// withOptional is columns and the optional columns m names, in a fixed
// order.
func withOptional(columns []string, m int) []string {
	out := slices.Clone(columns)
	if m&withFlags != 0 {
		out = append(out, "flags")
	}
	if m&withScores != 0 {
		out = append(out, "scores")
	}
	if m&withCommitment != 0 {
		out = append(out, "commitment")
	}
	return out
}

var (
	// insertVotes[m] writes a ballot whose optional columns are m, and
	// insertVoteIndexes[m] its index row.
	insertVotes, insertVoteIndexes = optionalInserts()
	selectVote                     = newStatement(votesTable.Get("option_ids", "vote_id", "request_id", "idempotency_key",
		"voted_at", "anonymous", "ip", "user_agent", "write_id", "device", "flags", "scores", "commitment",
		"version", "revoked", "changed_at", "change_requests"))
	selectVoteIndex = newStatement(votesByPollTable.Get("vote_id"))
)

// optionalInserts builds the ballot and index inserts for every set of
// optional columns.
func optionalInserts() (votes, index [optionalCombinations]statement) {
	for m := range optionalCombinations {
		votes[m] = newStatement(qb.Insert(votesTable.Name()).Columns(withOptional(voteColumns, m)...).Unique().ToCql())
		// Written USING TIMESTAMP the ballot's accept time (see
		// voteIndexRow.TS).
		index[m] = newStatement(qb.Insert(votesByPollTable.Name()).Columns(withOptional(voteIndexColumns, m)...).TimestampNamed("ts").ToCql())
	}
	return votes, index
}

// voteColumns are the columns every ballot is written with.
var voteColumns = []string{"poll_id", "voter_id", "option_ids", "vote_id", "request_id", "idempotency_key",
	"voted_at", "anonymous", "ip", "user_agent", "write_id", "device"}

// voteInsert is the statement that writes b.
func voteInsert(b *vote.Ballot) statement {
	return insertVotes[optionalColumns(b.Flags, b.Scores, b.Commitment)]
}

// indexInsert is the statement that writes an index row with these
// optional values.
func indexInsert(flags []string, scores []int, commitment []byte) statement {
	return insertVoteIndexes[optionalColumns(flags, scores, commitment)]
}

// Insert writes the ballot with IF NOT EXISTS, resolving unknown outcomes.
// Every attempt carries a fresh write id: when an attempt's outcome is
// unknown, the serial read tells "this attempt applied" (the stored write
// id is ours) from "an earlier delivery of the same ballot applied" (same
// vote id, another write id), so a redelivered ballot is never counted as
// new.
func (st *VoteStore) Insert(ctx context.Context, b *vote.Ballot) (bool, *vote.Ballot, error) {
	key := voteRow{PollID: b.PollID, VoterID: b.VoterID}
	applied, stored, err := insertIfAbsent{
		op: "insert vote",
		attempt: func(ctx context.Context) (*gocqlx.Queryx, func(map[string]any) bool) {
			writeID := id.New()
			q := voteInsert(b).query(ctx, st.s).BindStruct(toVoteRow(b, writeID))
			return q, func(row map[string]any) bool { return mapID(row["write_id"]) == writeID }
		},
		read:                   func(ctx context.Context) *gocqlx.Queryx { return selectVote.query(ctx, st.s).BindStruct(key) },
		serial:                 st.serial,
		reissueAfterFailedRead: true,
		unknown:                st.unknown.Inc,
	}.run(ctx)
	if err != nil || applied {
		return applied, nil, err
	}
	return false, voteRowFromMap(b.PollID, b.VoterID, stored).toBallot(), nil
}

// Get reads the voter's ballot.
func (st *VoteStore) Get(ctx context.Context, pollID, voterID id.ID) (*vote.Ballot, error) {
	r := voteRow{PollID: pollID, VoterID: voterID}
	err := selectVote.query(ctx, st.s).BindStruct(r).GetRelease(&r)
	if errors.Is(err, gocql.ErrNotFound) {
		return nil, vote.ErrNoVote
	}
	if err != nil {
		return nil, apperr.Unavailable("read vote", err)
	}
	return r.toBallot(), nil
}

// Indexed reports whether the ballot's per-poll index row exists with its
// vote id. Follow-ups write counters before the index row, so an indexed
// ballot has been counted.
func (st *VoteStore) Indexed(ctx context.Context, b *vote.Ballot, bucket int) (bool, error) {
	var id id.ID
	err := selectVoteIndex.query(ctx, st.s).BindStruct(ballotIndexRow(b.PollID, bucket, b)).GetRelease(&id)
	if errors.Is(err, gocql.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, apperr.Unavailable("read vote index", err)
	}
	return id == b.VoteID, nil
}

// Index writes ballots into one partition of the per-poll index: a single
// statement for one ballot, an unlogged single-partition batch for more
// (one mutation on one replica set, no batch log).
func (st *VoteStore) Index(ctx context.Context, pollID id.ID, bucket int, ballots []*vote.Ballot) error {
	var err error
	if len(ballots) == 1 {
		err = indexInsert(ballots[0].Flags, ballots[0].Scores, ballots[0].Commitment).query(ctx, st.s).BindStruct(ballotIndexRow(pollID, bucket, ballots[0])).ExecRelease()
	} else {
		batch := newBatch(ctx, st.s, gocql.UnloggedBatch)
		for _, b := range ballots {
			batch.add(indexInsert(b.Flags, b.Scores, b.Commitment), ballotIndexRow(pollID, bucket, b))
		}
		err = batch.exec(st.s)
	}
	if err != nil {
		return apperr.Unavailable("index votes", err)
	}
	return nil
}
