package cassandra

import (
	"context"
	"errors"
	"time"

	"github.com/gocql/gocql"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/scylladb/gocqlx/v2"

	"github.com/tally-vote/tally/pkg/apperr"
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

const (
	insertVote = `INSERT INTO votes (poll_id, voter_id, option_ids, vote_id, request_id, idempotency_key,
		voted_at, anonymous, ip, user_agent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS`
	selectVote = `SELECT option_ids, vote_id, request_id, idempotency_key, voted_at, anonymous, ip, user_agent
		FROM votes WHERE poll_id = ? AND voter_id = ?`
	insertVoteIndex = `INSERT INTO votes_by_poll (poll_id, bucket, voter_id, options, vote_id, voted_at)
		VALUES (?, ?, ?, ?, ?, ?)`
)

// maxLWTAttempts bounds re-issuing an insert whose outcome was unknown and
// that a serial read then showed had not applied.
const maxLWTAttempts = 3

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// Insert writes the ballot with IF NOT EXISTS, resolving unknown outcomes.
func (st *VoteStore) Insert(ctx context.Context, b *vote.Ballot) (bool, *vote.Ballot, error) {
	var lastErr error
	for attempt := 0; attempt < maxLWTAttempts; attempt++ {
		q := st.s.Session.Query(insertVote, b.PollID, b.VoterID, b.OptionIDs, b.VoteID, b.RequestID,
			nullString(b.IdempotencyKey), b.VotedAt, b.Anonymous, nullString(b.IP), nullString(b.UserAgent)).
			WithContext(ctx)
		applied, existing, err := casInsert(q)
		if err == nil {
			if applied {
				return true, nil, nil
			}
			return false, ballotFromMap(b.PollID, b.VoterID, existing), nil
		}
		if !outcomeUnknown(err) || ctx.Err() != nil {
			return false, nil, apperr.Unavailable("insert vote", err)
		}
		// The write may or may not have applied. A serial read finishes any
		// in-flight Paxos round on the partition, then tells which.
		st.unknown.Inc()
		lastErr = err
		stored, rerr := st.get(ctx, b.PollID, b.VoterID, true)
		switch {
		case rerr == nil && stored.VoteID == b.VoteID:
			return true, nil, nil
		case rerr == nil:
			return false, stored, nil
		case errors.Is(rerr, vote.ErrNoVote):
			continue // not applied: try again
		default:
			lastErr = rerr
		}
		select {
		case <-ctx.Done():
			return false, nil, apperr.Unavailable("insert vote", ctx.Err())
		case <-time.After(time.Duration(50*(attempt+1)) * time.Millisecond):
		}
	}
	return false, nil, apperr.Unavailable("insert vote: outcome unresolved", lastErr)
}

func ballotFromMap(pollID, voterID gocql.UUID, m map[string]any) *vote.Ballot {
	b := &vote.Ballot{PollID: pollID, VoterID: voterID}
	b.OptionIDs, _ = m["option_ids"].([]gocql.UUID)
	b.VoteID, _ = m["vote_id"].(gocql.UUID)
	b.RequestID, _ = m["request_id"].(gocql.UUID)
	b.IdempotencyKey, _ = m["idempotency_key"].(string)
	b.VotedAt, _ = m["voted_at"].(time.Time)
	b.Anonymous, _ = m["anonymous"].(bool)
	b.IP, _ = m["ip"].(string)
	b.UserAgent, _ = m["user_agent"].(string)
	return b
}

func (st *VoteStore) get(ctx context.Context, pollID, voterID gocql.UUID, serial bool) (*vote.Ballot, error) {
	b := &vote.Ballot{PollID: pollID, VoterID: voterID}
	var key, ip, ua *string
	q := st.s.Session.Query(selectVote, pollID, voterID).WithContext(ctx)
	if serial {
		q = serialRead(q, st.serial)
	}
	err := q.Scan(&b.OptionIDs, &b.VoteID, &b.RequestID, &key, &b.VotedAt, &b.Anonymous, &ip, &ua)
	if errors.Is(err, gocql.ErrNotFound) {
		return nil, vote.ErrNoVote
	}
	if err != nil {
		return nil, apperr.Unavailable("read vote", err)
	}
	b.IdempotencyKey, b.IP, b.UserAgent = deref(key), deref(ip), deref(ua)
	return b, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// Get reads the voter's ballot.
func (st *VoteStore) Get(ctx context.Context, pollID, voterID gocql.UUID) (*vote.Ballot, error) {
	return st.get(ctx, pollID, voterID, false)
}

// Index writes ballots into one partition of the per-poll index: a single
// statement for one ballot, an unlogged single-partition batch for more
// (one mutation on one replica set, no batch log).
func (st *VoteStore) Index(ctx context.Context, pollID gocql.UUID, bucket int, ballots []*vote.Ballot) error {
	var err error
	if len(ballots) == 1 {
		b := ballots[0]
		err = st.s.Session.Query(insertVoteIndex, pollID, bucket, b.VoterID, b.OptionIDs, b.VoteID, b.VotedAt).
			WithContext(ctx).Exec()
	} else {
		batch := st.s.Session.NewBatch(gocql.UnloggedBatch).WithContext(ctx)
		for _, b := range ballots {
			batch.Query(insertVoteIndex, pollID, bucket, b.VoterID, b.OptionIDs, b.VoteID, b.VotedAt)
		}
		err = st.s.Session.ExecuteBatch(batch)
	}
	if err != nil {
		return apperr.Unavailable("index votes", err)
	}
	return nil
}
