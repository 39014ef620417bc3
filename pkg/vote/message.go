package vote

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/tally-vote/tally/pkg/id"
)

// Message is a queued ballot: the contract between the API that accepts a
// vote and the worker that drains it (the votes topic carries it as JSON,
// whose field names must not change). It carries everything the worker
// needs to write the ballot, so the worker never depends on API state.
type Message struct {
	RequestID      id.ID     `json:"request_id"`
	VoteID         id.ID     `json:"vote_id"`
	PollID         id.ID     `json:"poll_id"`
	VoterID        id.ID     `json:"voter_id"`
	OptionIDs      []id.ID   `json:"option_ids"`
	Scores         []int     `json:"scores,omitempty"`
	IdempotencyKey string    `json:"idempotency_key,omitempty"`
	AcceptedAt     time.Time `json:"accepted_at"`
	Anonymous      bool      `json:"anonymous,omitempty"`
	IP             string    `json:"ip,omitempty"`
	UserAgent      string    `json:"user_agent,omitempty"`
	Device         string    `json:"device,omitempty"`
	Flags          []string  `json:"flags,omitempty"`
	// PollSeenAt is when the accepting API read the poll it checked the
	// vote against; OptionsVersion is the options' version it saw, and
	// PollVersion the poll's (poll.Poll.Version). The worker re-checks a
	// vote accepted on a stale view, and never judges a vote by a copy of
	// the poll older than PollVersion (see Drainer). Messages produced
	// before PollVersion existed read 0: any copy is at least as new.
	PollSeenAt     time.Time `json:"poll_seen_at,omitzero"`
	OptionsVersion int       `json:"options_version,omitempty"`
	PollVersion    int       `json:"poll_version,omitempty"`
	// HTTPRequestID is the X-Request-Id of the HTTP request that cast the
	// vote, for the worker's outcome line (pkg/reqid).
	HTTPRequestID string `json:"http_request_id,omitempty"`
	// Commitment is the ballot's receipt commitment (base64 in JSON);
	// absent when receipts are off. The salt that opens it never travels
	// on the topic.
	Commitment []byte `json:"commitment,omitempty"`
	// Change marks a queued change of the voter's ballot (KindChanged,
	// with the new choice, or KindRevoked); empty for a vote. VoteID is
	// then the ballot's.
	Change string `json:"change,omitempty"`
}

// FromBallot builds the message for an accepted ballot.
func FromBallot(b *Ballot) Message {
	return Message{
		RequestID: b.RequestID, VoteID: b.VoteID, PollID: b.PollID, VoterID: b.VoterID,
		OptionIDs: b.OptionIDs, Scores: b.Scores, IdempotencyKey: b.IdempotencyKey, AcceptedAt: b.VotedAt,
		Anonymous: b.Anonymous, IP: b.IP, UserAgent: b.UserAgent, Device: b.Device, Flags: b.Flags, Change: b.Change,
		Commitment: b.Commitment,
	}
}

// Ballot is the row the message becomes.
func (m Message) Ballot() *Ballot {
	return &Ballot{
		PollID: m.PollID, VoterID: m.VoterID, OptionIDs: m.OptionIDs, Scores: m.Scores, VoteID: m.VoteID,
		RequestID: m.RequestID, IdempotencyKey: m.IdempotencyKey, VotedAt: m.AcceptedAt,
		Anonymous: m.Anonymous, IP: m.IP, UserAgent: m.UserAgent, Device: m.Device, Flags: m.Flags, Change: m.Change,
		Commitment: m.Commitment,
	}
}

var errMalformed = errors.New("malformed vote message")

// Decode parses and checks a message; a malformed one is poison.
func Decode(b []byte) (Message, error) {
	var m Message
	if err := json.Unmarshal(b, &m); err != nil {
		return m, errors.Join(errMalformed, err)
	}
	var zero id.ID
	if m.RequestID == zero || m.VoteID == zero || m.PollID == zero || m.VoterID == zero ||
		(len(m.OptionIDs) == 0 && m.Change != KindRevoked) {
		return m, errMalformed
	}
	switch m.Change {
	case "", KindChanged, KindRevoked:
	default:
		return m, errMalformed
	}
	return m, nil
}
