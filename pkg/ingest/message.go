// Package ingest is the burst path: the API accepts a vote into Kafka and
// answers 202, a worker drains the votes topic into Cassandra exactly once,
// and request status is derived from what was stored.
package ingest

import (
	"crypto/sha1"
	"encoding/json"
	"errors"
	"time"

	"github.com/gocql/gocql"

	"github.com/tally-vote/tally/pkg/vote"
)

// Message is a vote on the votes topic. It carries everything the worker
// needs to write the ballot, so the worker never depends on API state.
type Message struct {
	RequestID      gocql.UUID   `json:"request_id"`
	VoteID         gocql.UUID   `json:"vote_id"`
	PollID         gocql.UUID   `json:"poll_id"`
	VoterID        gocql.UUID   `json:"voter_id"`
	OptionIDs      []gocql.UUID `json:"option_ids"`
	IdempotencyKey string       `json:"idempotency_key,omitempty"`
	AcceptedAt     time.Time    `json:"accepted_at"`
	Anonymous      bool         `json:"anonymous,omitempty"`
	IP             string       `json:"ip,omitempty"`
	UserAgent      string       `json:"user_agent,omitempty"`
	// PollSeenAt is when the accepting API read the poll it checked the
	// vote against; OptionsVersion is the options' version it saw. The
	// worker re-checks a vote accepted on a stale view (see Worker).
	PollSeenAt     time.Time `json:"poll_seen_at,omitzero"`
	OptionsVersion int       `json:"options_version,omitempty"`
}

// FromBallot builds the message for an accepted ballot.
func FromBallot(b *vote.Ballot) Message {
	return Message{
		RequestID: b.RequestID, VoteID: b.VoteID, PollID: b.PollID, VoterID: b.VoterID,
		OptionIDs: b.OptionIDs, IdempotencyKey: b.IdempotencyKey, AcceptedAt: b.VotedAt,
		Anonymous: b.Anonymous, IP: b.IP, UserAgent: b.UserAgent,
	}
}

// Ballot is the row the message becomes.
func (m Message) Ballot() *vote.Ballot {
	return &vote.Ballot{
		PollID: m.PollID, VoterID: m.VoterID, OptionIDs: m.OptionIDs, VoteID: m.VoteID,
		RequestID: m.RequestID, IdempotencyKey: m.IdempotencyKey, VotedAt: m.AcceptedAt,
		Anonymous: m.Anonymous, IP: m.IP, UserAgent: m.UserAgent,
	}
}

var errMalformed = errors.New("malformed vote message")

// Decode parses and checks a message; a malformed one is poison.
func Decode(b []byte) (Message, error) {
	var m Message
	if err := json.Unmarshal(b, &m); err != nil {
		return m, errors.Join(errMalformed, err)
	}
	var zero gocql.UUID
	if m.RequestID == zero || m.VoteID == zero || m.PollID == zero || m.VoterID == zero || len(m.OptionIDs) == 0 {
		return m, errMalformed
	}
	return m, nil
}

// requestNamespace seeds deterministic request ids.
var requestNamespace = gocql.UUID{0x6b, 0x1e, 0x0f, 0x4a, 0x2c, 0x55, 0x4d, 0x1b, 0x9a, 0x61, 0x0e, 0x3c, 0x7d, 0x20, 0x44, 0x91}

// RequestID is the id of a vote request. With an Idempotency-Key it is a
// name-based (v5-style) UUID of poll, voter and key, so every retry of the
// request carries the same id without any shared state; the worker then
// recognises a retry by the id stored in the ballot row. Without a key each
// request is new.
func RequestID(pollID, voterID gocql.UUID, key string) gocql.UUID {
	if key == "" {
		return gocql.MustRandomUUID()
	}
	h := sha1.New()
	h.Write(requestNamespace[:])
	h.Write(pollID[:])
	h.Write(voterID[:])
	h.Write([]byte(key))
	var id gocql.UUID
	copy(id[:], h.Sum(nil))
	id[6] = (id[6] & 0x0f) | 0x50
	id[8] = (id[8] & 0x3f) | 0x80
	return id
}
