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
		voted_at, anonymous, ip, user_agent, write_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS`
	selectVote = `SELECT option_ids, vote_id, request_id, idempotency_key, voted_at, anonymous, ip, user_agent, write_id
		FROM votes WHERE poll_id = ? AND voter_id = ?`
	selectVoteIndex = `SELECT vote_id FROM votes_by_poll WHERE poll_id = ? AND bucket = ? AND voter_id = ?`
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
// Every attempt carries a fresh write id: when an attempt's outcome is
// unknown, the serial read tells "this attempt applied" (the stored write
// id is ours) from "an earlier delivery of the same ballot applied" (same
// vote id, another write id), so a redelivered ballot is never counted as
// new.
func (st *VoteStore) Insert(ctx context.Context, b *vote.Ballot) (bool, *vote.Ballot, error) {
	var lastErr error
	for attempt := 0; attempt < maxLWTAttempts; attempt++ {
		writeID := gocql.MustRandomUUID()
		q := st.s.Session.Query(insertVote, b.PollID, b.VoterID, b.OptionIDs, b.VoteID, b.RequestID,
			nullString(b.IdempotencyKey), b.VotedAt, b.Anonymous, nullString(b.IP), nullString(b.UserAgent), writeID).
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
		stored, storedWrite, rerr := st.get(ctx, b.PollID, b.VoterID, true)
		switch {
		case rerr == nil && storedWrite == writeID:
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

func (st *VoteStore) get(ctx context.Context, pollID, voterID gocql.UUID, serial bool) (*vote.Ballot, gocql.UUID, error) {
	b := &vote.Ballot{PollID: pollID, VoterID: voterID}
	var (
		key, ip, ua *string
		writeID     gocql.UUID
	)
	q := st.s.Session.Query(selectVote, pollID, voterID).WithContext(ctx)
	if serial {
		q = serialRead(q, st.serial)
	}
	err := q.Scan(&b.OptionIDs, &b.VoteID, &b.RequestID, &key, &b.VotedAt, &b.Anonymous, &ip, &ua, &writeID)
	if errors.Is(err, gocql.ErrNotFound) {
		return nil, writeID, vote.ErrNoVote
	}
	if err != nil {
		return nil, writeID, apperr.Unavailable("read vote", err)
	}
	b.IdempotencyKey, b.IP, b.UserAgent = deref(key), deref(ip), deref(ua)
	return b, writeID, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// Get reads the voter's ballot.
func (st *VoteStore) Get(ctx context.Context, pollID, voterID gocql.UUID) (*vote.Ballot, error) {
	b, _, err := st.get(ctx, pollID, voterID, false)
	return b, err
}

// Indexed reports whether the ballot's per-poll index row exists with its
// vote id. Follow-ups write counters before the index row, so an indexed
// ballot has been counted.
func (st *VoteStore) Indexed(ctx context.Context, b *vote.Ballot, bucket int) (bool, error) {
	var id gocql.UUID
	err := st.s.Session.Query(selectVoteIndex, b.PollID, bucket, b.VoterID).WithContext(ctx).Scan(&id)
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
