// Package events publishes Tally's public event stream: CloudEvents 1.0 in
// structured JSON mode on the tally.events Kafka topic, keyed by poll id.
//
// The four types are poll.created, poll.closed, tally.frozen and
// results.changed (docs/architecture.md, "Public events"). Publishing is
// best effort: an event that cannot be written is logged and counted, and
// never fails the owner's action or a vote.
package events

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
)

// SpecVersion is the CloudEvents version of every event.
const SpecVersion = "1.0"

// ContentType is the Kafka content-type header of a structured-mode event.
const ContentType = "application/cloudevents+json"

// Event types.
const (
	TypePollCreated    = "poll.created"
	TypePollClosed     = "poll.closed"
	TypeTallyFrozen    = "tally.frozen"
	TypeResultsChanged = "results.changed"
)

// Event is one CloudEvent in structured mode. Data is the type's payload
// (PollCreated, PollClosed, TallyFrozen, ResultsChanged).
type Event struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject"`
	Time            time.Time       `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	Data            json.RawMessage `json:"data"`
}

// Source is the CloudEvents source of a poll's events.
func Source(pollID id.ID) string { return "/tally/polls/" + pollID.String() }

// idSpace is the UUIDv5 namespace of the event ids derived from a poll and
// a type.
var idSpace = uuid.MustParse("6f6a3c1e-2b7d-5e8a-9c41-7a1d3e5b9f20")

// StableID is the id of the one event of its type a poll ever has
// (poll.created, poll.closed, tally.frozen): every emission of it, a
// retried create's, a re-run freeze's, carries the same id, so consumers
// deduplicate them.
func StableID(pollID id.ID, typ string) string {
	return uuid.NewSHA1(idSpace, []byte(pollID.String()+"/"+typ)).String()
}

func newEvent(pollID id.ID, typ, eventID string, at time.Time, data any) (Event, error) {
	b, err := json.Marshal(data)
	if err != nil {
		return Event{}, err
	}
	return Event{SpecVersion: SpecVersion, ID: eventID, Source: Source(pollID), Type: typ, Subject: pollID.String(),
		Time: at.UTC(), DataContentType: "application/json", Data: b}, nil
}

// PollOption is an option of a created poll.
type PollOption struct {
	OptionID string `json:"option_id"`
	Text     string `json:"text"`
}

// PollCreated is poll.created's data. The creator's id is left out: the
// stream is public.
type PollCreated struct {
	PollID            string       `json:"poll_id"`
	Title             string       `json:"title"`
	Options           []PollOption `json:"options"`
	StartTime         time.Time    `json:"start_time"`
	EndTime           *time.Time   `json:"end_time,omitempty"`
	CountingMethod    string       `json:"counting_method"`
	ResultsVisibility string       `json:"results_visibility"`
	CreatedAt         time.Time    `json:"created_at"`
}

// PollClosed is poll.closed's data: closed_at is the owner's close, or
// the end time of a poll that ran out.
type PollClosed struct {
	PollID   string    `json:"poll_id"`
	ClosedAt time.Time `json:"closed_at"`
}

// Counts are results as the stream shows them: ballots and votes per
// option id.
type Counts struct {
	Ballots int64            `json:"ballots"`
	Options map[string]int64 `json:"options"`
}

// TallyFrozen is tally.frozen's data. Counts is absent when the poll's
// results are never public (owner_only).
type TallyFrozen struct {
	PollID   string    `json:"poll_id"`
	FrozenAt time.Time `json:"frozen_at"`
	Counts   *Counts   `json:"counts,omitempty"`
}

// ResultsChanged is results.changed's data: coarsened live counts (Step is
// the rounding step, the counts are multiples of it), never a voter.
type ResultsChanged struct {
	PollID string    `json:"poll_id"`
	AsOf   time.Time `json:"as_of"`
	Step   int64     `json:"step"`
	Counts Counts    `json:"counts"`
}

// NewPollCreated is the poll's poll.created event.
func NewPollCreated(p *poll.Poll) (Event, error) {
	d := PollCreated{PollID: p.ID.String(), Title: p.Title, StartTime: p.StartTime.UTC(),
		CountingMethod: string(p.Settings.CountingMethod()), ResultsVisibility: string(p.Settings.Visibility()),
		CreatedAt: p.CreatedAt.UTC()}
	if !p.EndTime.IsZero() {
		e := p.EndTime.UTC()
		d.EndTime = &e
	}
	for _, o := range p.Options {
		d.Options = append(d.Options, PollOption{OptionID: o.ID.String(), Text: o.Text})
	}
	return newEvent(p.ID, TypePollCreated, StableID(p.ID, TypePollCreated), p.CreatedAt, d)
}

// NewPollClosed is the poll's poll.closed event.
func NewPollClosed(p *poll.Poll) (Event, error) {
	at := p.ClosedAt
	if at.IsZero() {
		at = p.EndTime
	}
	return newEvent(p.ID, TypePollClosed, StableID(p.ID, TypePollClosed), at, PollClosed{PollID: p.ID.String(), ClosedAt: at.UTC()})
}

// NewTallyFrozen is the poll's tally.frozen event; counts nil leaves them
// out.
func NewTallyFrozen(pollID id.ID, frozenAt time.Time, counts *Counts) (Event, error) {
	return newEvent(pollID, TypeTallyFrozen, StableID(pollID, TypeTallyFrozen), frozenAt,
		TallyFrozen{PollID: pollID.String(), FrozenAt: frozenAt.UTC(), Counts: counts})
}

// NewResultsChanged is a results.changed event with a fresh id: each
// emission is its own event (its id travels in the record, so a
// redelivered record keeps it).
func NewResultsChanged(pollID id.ID, asOf time.Time, step int64, c Counts) (Event, error) {
	return newEvent(pollID, TypeResultsChanged, uuid.NewString(), asOf,
		ResultsChanged{PollID: pollID.String(), AsOf: asOf.UTC(), Step: step, Counts: c})
}
