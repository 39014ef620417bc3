package poll

import "github.com/tally-vote/tally/pkg/apperr"

// ResultsVisibility is who sees a poll's results, and when (the SPEC's
// settings.results_visibility). The rule that applies it is
// tally.Visible; this type only names the modes.
type ResultsVisibility string

// Results visibility modes. The owner sees the results in every mode.
const (
	// ResultsAlways: everyone, at any time.
	ResultsAlways ResultsVisibility = "always"
	// ResultsAfterVote: before the poll closes, the owner and callers who
	// voted; everyone once it closed.
	ResultsAfterVote ResultsVisibility = "after_vote"
	// ResultsAfterClose: before the poll closes, the owner alone;
	// everyone once it closed.
	ResultsAfterClose ResultsVisibility = "after_close"
	// ResultsOwnerOnly: the owner alone, also after the poll closed.
	ResultsOwnerOnly ResultsVisibility = "owner_only"
)

// Valid reports whether v is one of the four modes.
func (v ResultsVisibility) Valid() bool {
	switch v {
	case ResultsAlways, ResultsAfterVote, ResultsAfterClose, ResultsOwnerOnly:
		return true
	}
	return false
}

// ShownDuringVoting is the deprecated show_results_during_voting that
// older clients read: true only for always.
func (v ResultsVisibility) ShownDuringVoting() bool { return v == ResultsAlways }

// VisibilityOf maps the deprecated show_results_during_voting to its mode:
// true is always, false is after_vote.
func VisibilityOf(showDuringVoting bool) ResultsVisibility {
	if showDuringVoting {
		return ResultsAlways
	}
	return ResultsAfterVote
}

// Visibility is the settings' mode. Empty is after_vote: the zero Settings
// kept the meaning it had when the setting was the boolean
// show_results_during_voting, whose zero was false.
func (s Settings) Visibility() ResultsVisibility {
	if s.ResultsVisibility == "" {
		return ResultsAfterVote
	}
	return s.ResultsVisibility
}

// Visibility is the mode the patch sets, from results_visibility or else
// from its alias show_results_during_voting; false when it sets neither.
func (sp SettingsPatch) Visibility() (ResultsVisibility, bool) {
	switch {
	case sp.ResultsVisibility != nil:
		return *sp.ResultsVisibility, true
	case sp.ShowResultsDuringVoting != nil:
		return VisibilityOf(*sp.ShowResultsDuringVoting), true
	}
	return "", false
}

// Validate checks what the patch says on its own: the method and the
// minimum (validateMethod), and about visibility: a known mode, and
// an alias that agrees with it when a client sends both. They agree when
// the alias is what a poll document would show beside the mode (true only
// for always), so a client that sends back the settings it read is never
// refused.
func (sp SettingsPatch) Validate() error {
	if err := sp.validateMethod(); err != nil {
		return err
	}
	if sp.MaxVoteChanges != nil && (*sp.MaxVoteChanges < 1 || *sp.MaxVoteChanges > MaxVoteChangesLimit) {
		return apperr.Invalid("settings.max_vote_changes", "must be from 1 to %d", MaxVoteChangesLimit)
	}
	if sp.ResultsVisibility == nil {
		return nil
	}
	v := *sp.ResultsVisibility
	if !v.Valid() {
		return apperr.Invalid("settings.results_visibility", "must be always, after_vote, after_close or owner_only")
	}
	if sp.ShowResultsDuringVoting != nil && *sp.ShowResultsDuringVoting != v.ShownDuringVoting() {
		return apperr.Invalid("settings.show_results_during_voting",
			"conflicts with settings.results_visibility %q (it is the deprecated alias: true means always)", v)
	}
	return nil
}
