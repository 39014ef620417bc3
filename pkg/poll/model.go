// Package poll owns polls: their options and settings, validation, status
// derived from time and owner action, and the owner's rules.
package poll

import (
	"errors"
	"time"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/count"
	"github.com/tally-vote/tally/pkg/id"
)

// Sentinels.
var (
	ErrNotFound      = apperr.New(apperr.CodePollNotFound, "poll not found")
	ErrNotOwner      = apperr.New(apperr.CodeNotPollOwner, "only the poll's owner can do this")
	ErrNotActive     = apperr.New(apperr.CodePollNotActive, "the poll is not open for voting")
	ErrOptionsFrozen = apperr.New(apperr.CodeOptionsFrozen, "options cannot change once a vote exists")
	ErrClosed        = apperr.New(apperr.CodePollNotActive, "the poll is closed")
	// ErrIdempotencyConflict: an Idempotency-Key reused with another body.
	ErrIdempotencyConflict = apperr.New(apperr.CodeIdempotencyConflict, "this Idempotency-Key was used with a different request")
)

// ErrChangedSince: another owner change was written since the poll was
// read; the change must be judged again against the poll as it is now.
var ErrChangedSince = errors.New("poll changed since it was read")

// Status is derived, never stored.
type Status string

// Statuses.
const (
	Draft  Status = "draft"
	Active Status = "active"
	Closed Status = "closed"
)

// Settings are the owner's choices.
type Settings struct {
	// ResultsVisibility is who sees the results, and when; read it with
	// Visibility, which gives the empty value its meaning.
	ResultsVisibility    ResultsVisibility `json:"results_visibility"`
	AllowAnonymous       bool              `json:"allow_anonymous"`
	AllowMultipleOptions bool              `json:"allow_multiple_options"`
	MaxVotesPerUser      int               `json:"max_votes_per_user"`
	// MinVotesPerUser is the fewest options a ballot may hold (0: one).
	MinVotesPerUser int `json:"min_votes_per_user"`
	// Method is how ballots are counted; read it with CountingMethod,
	// which gives the empty value of older polls its meaning. It is fixed
	// with the options once a vote exists.
	Method count.Method `json:"method"`
	// BotPolicy is what a vote that trips a bot signal gets (see
	// pkg/abuse): recorded with its reasons (flag), refused with 403
	// SUSPICIOUS_ACTIVITY (reject), or no check at all (off).
	BotPolicy BotPolicy `json:"bot_policy"`
	// AnonymousAccess is how anonymous voters reach an anonymous poll:
	// any anonymous token (open), or one vote per owner-issued invite code
	// (invite), or per solved proof-of-work challenge (pow).
	AnonymousAccess AnonymousAccess `json:"anonymous_access"`
	// EmbedOrigins are the origins whose pages may frame the poll's widget
	// (/embed/{poll_id}); empty lets none. See checkEmbedOrigins.
	EmbedOrigins []string `json:"embed_origins,omitempty"`
	// AllowVoteChange lets a voter change or revoke their ballot while
	// the poll is open (PUT and DELETE /v1/polls/{id}/votes/me); off
	// unless the creator asks for it.
	AllowVoteChange bool `json:"allow_vote_change"`
	// MaxVoteChanges bounds how often one voter may change, revoke or
	// cast again after a revoke (0: DefaultMaxVoteChanges). Read it with
	// VoteChanges.
	MaxVoteChanges int `json:"max_vote_changes"`
}

// DefaultMaxVoteChanges is a voter's limit on changes where the poll sets
// none; MaxVoteChangesLimit is the highest a poll may set.
const (
	DefaultMaxVoteChanges = 5
	MaxVoteChangesLimit   = 100
)

// VoteChanges is how many changes (a change, a revoke, a vote after a
// revoke) one voter may make on the poll.
func (s Settings) VoteChanges() int {
	if s.MaxVoteChanges > 0 {
		return s.MaxVoteChanges
	}
	return DefaultMaxVoteChanges
}

// BotPolicy is a poll's answer to a vote that trips a bot signal.
type BotPolicy string

// Bot policies.
const (
	BotOff    BotPolicy = "off"
	BotFlag   BotPolicy = "flag"
	BotReject BotPolicy = "reject"
)

// AnonymousAccess is how anonymous voters are admitted to a poll.
type AnonymousAccess string

// Anonymous access modes.
const (
	AnonymousOpen   AnonymousAccess = "open"
	AnonymousInvite AnonymousAccess = "invite"
	AnonymousPoW    AnonymousAccess = "pow"
)

// DefaultSettings are a new poll's settings before the creator's choices:
// results visible while voting, accounts only, one option per ballot
// (plurality), suspicious votes flagged.
var DefaultSettings = Settings{ResultsVisibility: ResultsAlways, BotPolicy: BotFlag, AnonymousAccess: AnonymousOpen,
	Method: count.Plurality}

// Option is one choice.
type Option struct {
	ID           id.ID
	Text         string
	DisplayOrder int
}

// Poll is the aggregate: metadata, settings and options.
type Poll struct {
	ID          id.ID
	CreatorID   id.ID
	Title       string
	Description string
	StartTime   time.Time
	EndTime     time.Time
	ClosedAt    time.Time // zero unless the owner closed it
	CreatedAt   time.Time
	UpdatedAt   time.Time
	Settings    Settings
	Options     []Option // sorted by DisplayOrder
	// CounterShards and IndexBuckets are fixed at creation so every reader
	// and writer of this poll agrees on them.
	CounterShards int
	IndexBuckets  int
	// OptionsVersion counts option replacements; OptionsFrozen is set once
	// a vote has been accepted, after which options never change.
	OptionsVersion int
	OptionsFrozen  bool
	// Version counts owner changes (any PATCH, a close): each one writes
	// the next version, conditional on the one it read. A vote carries the
	// version it was judged by, so the worker can tell a copy of the poll
	// older than the API's from one at least as new.
	Version int
}

// Change is what an owner's update writes. Only set fields are written,
// so concurrent updates of different fields never undo each other. It
// applies only while the poll is still at Version (the version it was
// judged against), and moves it to Version+1; otherwise the store answers
// ErrChangedSince.
type Change struct {
	Version     int
	Title       *string
	Description *string
	EndTime     *time.Time
	Settings    *SettingsPatch
	ClosedAt    *time.Time
	UpdatedAt   time.Time
	// OptionsVersion, when set, makes the change also move the options
	// version on from it, and apply only while no vote has frozen the
	// options. A change of what votes are judged by besides the options
	// (the counting method) sets it: a vote checked against the poll as it
	// was then fails its freeze (ErrOptionsChanged) and is checked again,
	// and a vote that froze the options first makes the change lose its
	// condition (ErrChangedSince), to be judged again as frozen.
	OptionsVersion *int
}

// StatusAt derives the status at now.
func (p *Poll) StatusAt(now time.Time) Status {
	switch {
	case !p.ClosedAt.IsZero() && !now.Before(p.ClosedAt):
		return Closed
	case now.Before(p.StartTime):
		return Draft
	case !now.Before(p.EndTime):
		return Closed
	}
	return Active
}

// ClosedSince is when the poll stopped taking votes, or zero while it
// still takes them.
func (p *Poll) ClosedSince(now time.Time) time.Time {
	if p.StatusAt(now) != Closed {
		return time.Time{}
	}
	if !p.ClosedAt.IsZero() && p.ClosedAt.Before(p.EndTime) {
		return p.ClosedAt
	}
	return p.EndTime
}

// Option returns the option with id.
func (p *Poll) Option(id id.ID) (Option, bool) {
	for _, o := range p.Options {
		if o.ID == id {
			return o, true
		}
	}
	return Option{}, false
}

// MaxChoices is how many options one ballot may hold.
func (p *Poll) MaxChoices() int { return maxChoices(p.Settings, len(p.Options)) }
