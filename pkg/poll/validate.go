package poll

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/count"
)

// Limits from the SPEC.
const (
	MaxTitle       = 255
	MaxDescription = 2000
	MinOptions     = 2
	MaxOptions     = 50
	MaxOptionText  = 200
	DefaultLength  = 7 * 24 * time.Hour
)

// OptionInput is an option as the creator sends it.
type OptionInput struct {
	Text         string
	DisplayOrder *int
}

// CreateInput is a create request after parsing.
type CreateInput struct {
	Title       string
	Description string
	Options     []OptionInput
	StartTime   *time.Time
	EndTime     *time.Time
	Settings    Settings
}

func checkTitle(title string) error {
	if n := utf8.RuneCountInString(strings.TrimSpace(title)); n < 1 || utf8.RuneCountInString(title) > MaxTitle {
		return apperr.Invalid("title", "must be 1 to %d characters", MaxTitle)
	}
	return nil
}

func checkDescription(d string) error {
	if utf8.RuneCountInString(d) > MaxDescription {
		return apperr.Invalid("description", "must be at most %d characters", MaxDescription)
	}
	return nil
}

// MaxDisplayOrder is the largest display_order: the column is a CQL int.
const MaxDisplayOrder = 1<<31 - 1

func checkOptions(opts []OptionInput) error {
	if len(opts) < MinOptions || len(opts) > MaxOptions {
		return apperr.Invalid("options", "must hold %d to %d options", MinOptions, MaxOptions)
	}
	seen := make(map[string]bool, len(opts))
	for i, o := range opts {
		t := strings.TrimSpace(o.Text)
		if n := utf8.RuneCountInString(t); n < 1 || utf8.RuneCountInString(o.Text) > MaxOptionText {
			return apperr.Invalid("options", "option %d text must be 1 to %d characters", i, MaxOptionText)
		}
		key := strings.ToLower(t)
		if seen[key] {
			return apperr.Invalid("options", "option %d duplicates another option's text", i)
		}
		seen[key] = true
		if o.DisplayOrder != nil && (*o.DisplayOrder < 0 || *o.DisplayOrder > MaxDisplayOrder) {
			return apperr.Invalid("options", "option %d display_order must be 0 to %d", i, MaxDisplayOrder)
		}
	}
	return nil
}

func checkSettings(s Settings, numOptions int) error {
	if s.MaxVotesPerUser < 0 {
		return apperr.Invalid("settings.max_votes_per_user", "must not be negative")
	}
	if !s.AllowMultipleOptions && s.MaxVotesPerUser > 1 {
		return apperr.Invalid("settings.max_votes_per_user", "needs allow_multiple_options")
	}
	if s.MaxVotesPerUser > numOptions {
		return apperr.Invalid("settings.max_votes_per_user", "must not exceed the number of options")
	}
	if err := checkChoiceLimits(s, numOptions); err != nil {
		return err
	}
	if s.MaxVoteChanges < 0 || s.MaxVoteChanges > MaxVoteChangesLimit {
		return apperr.Invalid("settings.max_vote_changes", "must be from 1 to %d", MaxVoteChangesLimit)
	}
	if s.ResultsVisibility != "" && !s.ResultsVisibility.Valid() {
		return apperr.Invalid("settings.results_visibility", "must be always, after_vote, after_close or owner_only")
	}
	// Empty is the default (flag, open): settings built in code.
	switch s.BotPolicy {
	case "", BotOff, BotFlag, BotReject:
	default:
		return apperr.Invalid("settings.bot_policy", "must be off, flag or reject")
	}
	switch s.AnonymousAccess {
	case "", AnonymousOpen, AnonymousInvite, AnonymousPoW:
	default:
		return apperr.Invalid("settings.anonymous_access", "must be open, invite or pow")
	}
	return checkEmbedOrigins(s.EmbedOrigins)
}

// fingerprint identifies the request's content, to tell a retry from a
// different request that reuses an Idempotency-Key. Claims live a day and
// outlive a deploy, so a request fingerprints as it did before
// results_visibility existed whenever the old boolean could say it.
func (in CreateInput) fingerprint() string {
	b, _ := json.Marshal(fingerprintInput{ // plain data: cannot fail
		Title: in.Title, Description: in.Description, Options: in.Options,
		StartTime: in.StartTime, EndTime: in.EndTime, Settings: fingerprintSettingsOf(in.Settings),
	})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// fingerprintInput is CreateInput as fingerprints have always encoded it.
type fingerprintInput struct {
	Title       string
	Description string
	Options     []OptionInput
	StartTime   *time.Time
	EndTime     *time.Time
	Settings    fingerprintSettings
}

// fingerprintSettings is Settings as fingerprints encode it: the boolean
// first, as before, and the mode only when the boolean cannot say it.
type fingerprintSettings struct {
	ShowResultsDuringVoting bool              `json:"show_results_during_voting"`
	AllowAnonymous          bool              `json:"allow_anonymous"`
	AllowMultipleOptions    bool              `json:"allow_multiple_options"`
	MaxVotesPerUser         int               `json:"max_votes_per_user"`
	BotPolicy               BotPolicy         `json:"bot_policy"`
	AnonymousAccess         AnonymousAccess   `json:"anonymous_access"`
	ResultsVisibility       ResultsVisibility `json:"results_visibility,omitempty"`
	// EmbedOrigins is left out when empty, so a request without it
	// fingerprints as before the setting existed.
	EmbedOrigins    []string     `json:"embed_origins,omitempty"`
	Method          count.Method `json:"method,omitempty"`
	MinVotesPerUser int          `json:"min_votes_per_user,omitempty"`
	// The vote-change settings are left out when unset, so a request
	// without them fingerprints as before they existed.
	AllowVoteChange bool `json:"allow_vote_change,omitempty"`
	MaxVoteChanges  int  `json:"max_vote_changes,omitempty"`
}

func fingerprintSettingsOf(s Settings) fingerprintSettings {
	f := fingerprintSettings{
		ShowResultsDuringVoting: s.Visibility().ShownDuringVoting(),
		AllowAnonymous:          s.AllowAnonymous, AllowMultipleOptions: s.AllowMultipleOptions,
		MaxVotesPerUser: s.MaxVotesPerUser, BotPolicy: s.BotPolicy, AnonymousAccess: s.AnonymousAccess,
		EmbedOrigins: s.EmbedOrigins,
	}
	if v := s.Visibility(); v != VisibilityOf(f.ShowResultsDuringVoting) {
		f.ResultsVisibility = v
	}
	if m := s.CountingMethod(); m != methodOf(s.AllowMultipleOptions) {
		f.Method = m
	}
	f.MinVotesPerUser = s.MinVotesPerUser
	f.AllowVoteChange, f.MaxVoteChanges = s.AllowVoteChange, s.MaxVoteChanges
	return f
}

// Validate checks a create request against the SPEC's limits.
func (in CreateInput) Validate() error {
	if err := checkTitle(in.Title); err != nil {
		return err
	}
	if err := checkDescription(in.Description); err != nil {
		return err
	}
	if err := checkOptions(in.Options); err != nil {
		return err
	}
	if in.StartTime != nil && in.EndTime != nil && !in.EndTime.After(*in.StartTime) {
		return apperr.Invalid("end_time", "must be after start_time")
	}
	return checkSettings(in.Settings, len(in.Options))
}

// Patch is an owner's update; nil fields are left alone.
type Patch struct {
	Title       *string
	Description *string
	EndTime     *time.Time
	Settings    *SettingsPatch
	Options     []OptionInput // nil: unchanged
	Close       bool
}

// Validate checks a patch against the poll it applies to, at now.
//
// An end_time at or before now is refused, not taken as a close: moving
// the end into the past would refuse votes already answered 202 and still
// queued while those already applied stay counted, and no close (closed_at,
// the close hook, the frozen tally) would follow. Ending a poll now is the
// close ({"status":"closed"}), which keeps every vote accepted before it.
func (pt Patch) Validate(p *Poll, now time.Time) error {
	if pt.Title != nil {
		if err := checkTitle(*pt.Title); err != nil {
			return err
		}
	}
	if pt.Description != nil {
		if err := checkDescription(*pt.Description); err != nil {
			return err
		}
	}
	if pt.EndTime != nil && !pt.EndTime.After(p.StartTime) {
		return apperr.Invalid("end_time", "must be after start_time")
	}
	if pt.EndTime != nil && !pt.EndTime.Truncate(time.Millisecond).After(now) {
		return apperr.Invalid("end_time", `must be in the future; to end the poll now, close it with {"status":"closed"}`)
	}
	n := len(p.Options)
	if pt.Options != nil {
		if err := checkOptions(pt.Options); err != nil {
			return err
		}
		n = len(pt.Options)
	}
	settings := p.Settings
	if pt.Settings != nil {
		if err := pt.Settings.Validate(); err != nil {
			return err
		}
		settings = pt.Settings.Apply(settings)
	}
	return checkSettings(settings, n)
}

// SettingsPatch changes the settings that are set and leaves the rest.
type SettingsPatch struct {
	// ShowResultsDuringVoting is the deprecated alias of ResultsVisibility
	// (true: always, false: after_vote); Visibility reads the two.
	ShowResultsDuringVoting *bool
	ResultsVisibility       *ResultsVisibility
	AllowAnonymous          *bool
	AllowMultipleOptions    *bool
	MaxVotesPerUser         *int
	BotPolicy               *BotPolicy
	AnonymousAccess         *AnonymousAccess
	// EmbedOrigins replaces the whole list; an empty list clears it.
	EmbedOrigins    *[]string
	MinVotesPerUser *int
	Method          *count.Method
	AllowVoteChange *bool
	MaxVoteChanges  *int
}

// Apply overlays the patch on base.
func (sp SettingsPatch) Apply(base Settings) Settings {
	if v, ok := sp.Visibility(); ok {
		base.ResultsVisibility = v
	}
	if sp.AllowAnonymous != nil {
		base.AllowAnonymous = *sp.AllowAnonymous
	}
	base = sp.applyMethod(base)
	if sp.MaxVotesPerUser != nil {
		base.MaxVotesPerUser = *sp.MaxVotesPerUser
	}
	if sp.BotPolicy != nil {
		base.BotPolicy = *sp.BotPolicy
	}
	if sp.AnonymousAccess != nil {
		base.AnonymousAccess = *sp.AnonymousAccess
	}
	if sp.AllowVoteChange != nil {
		base.AllowVoteChange = *sp.AllowVoteChange
	}
	if sp.MaxVoteChanges != nil {
		base.MaxVoteChanges = *sp.MaxVoteChanges
	}
	if sp.EmbedOrigins != nil {
		// A copy: the patch's slice belongs to the request.
		base.EmbedOrigins = slices.Clone(*sp.EmbedOrigins)
		if len(base.EmbedOrigins) == 0 {
			base.EmbedOrigins = nil
		}
	}
	return base
}
