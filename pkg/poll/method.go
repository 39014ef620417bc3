package poll

import (
	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/count"
)

// ErrMethodFrozen: the counting method, like the options, is fixed once a
// vote exists, since the ballots already cast were cast for it.
var ErrMethodFrozen = apperr.New(apperr.CodeOptionsFrozen, "the counting method cannot change once a vote exists")

// CountingMethod is the poll's counting method. Polls created before
// methods existed, and clients that know only allow_multiple_options, name
// none: theirs is what the boolean says (approval when true).
func (s Settings) CountingMethod() count.Method {
	if s.Method.Valid() {
		return s.Method
	}
	return methodOf(s.AllowMultipleOptions)
}

func methodOf(multiple bool) count.Method {
	if multiple {
		return count.Approval
	}
	return count.Plurality
}

// validateMethod checks what a patch says about the method on its own: a
// known method, and an allow_multiple_options that agrees with it when a
// client sends both (true for every method but plurality), so a client
// that sends back the settings it read is never refused.
func (sp SettingsPatch) validateMethod() error {
	if sp.MinVotesPerUser != nil && *sp.MinVotesPerUser < 1 {
		return apperr.Invalid("settings.min_votes_per_user", "must be at least 1")
	}
	if sp.Method == nil {
		return nil
	}
	m := *sp.Method
	if !m.Valid() {
		return apperr.Invalid("settings.method", "must be plurality, approval, ranked, schulze or score")
	}
	if sp.AllowMultipleOptions != nil && *sp.AllowMultipleOptions != (m != count.Plurality) {
		return apperr.Invalid("settings.allow_multiple_options", "conflicts with settings.method %q (true for every method but plurality)", m)
	}
	return nil
}

// applyMethod overlays the patch's method, allow_multiple_options and
// min_votes_per_user on base. The method and the boolean always move
// together: a method sets the boolean; the boolean alone switches between
// plurality and approval, the two methods it can name, and leaves a ranked
// method to checkSettings to refuse.
func (sp SettingsPatch) applyMethod(base Settings) Settings {
	switch {
	case sp.Method != nil:
		base.Method = *sp.Method
		base.AllowMultipleOptions = base.Method != count.Plurality
	case sp.AllowMultipleOptions != nil:
		base.AllowMultipleOptions = *sp.AllowMultipleOptions
		if m := base.CountingMethod(); m == count.Plurality || m == count.Approval {
			base.Method = methodOf(base.AllowMultipleOptions)
		}
	}
	if sp.MinVotesPerUser != nil {
		base.MinVotesPerUser = *sp.MinVotesPerUser
	}
	return base
}

// withMethodColumns is the patch as the store writes it: when it touches
// the method or the boolean it writes both, as applied to base, so a
// reader of either column sees the same method.
func (sp SettingsPatch) withMethodColumns(base Settings) SettingsPatch {
	if sp.Method == nil && sp.AllowMultipleOptions == nil {
		return sp
	}
	s := sp.applyMethod(base)
	m, multiple := s.CountingMethod(), s.AllowMultipleOptions
	sp.Method, sp.AllowMultipleOptions = &m, &multiple
	return sp
}

// checkChoiceLimits checks the method against the boolean and the ballot
// size limits: 1 ≤ min ≤ max ≤ options, where max 0 means every option
// and min 0 means one.
func checkChoiceLimits(s Settings, numOptions int) error {
	m := s.CountingMethod()
	if s.Method != "" && s.AllowMultipleOptions != (m != count.Plurality) {
		return apperr.Invalid("settings.allow_multiple_options", "must be %v for method %q", m != count.Plurality, m)
	}
	if s.MinVotesPerUser < 0 {
		return apperr.Invalid("settings.min_votes_per_user", "must not be negative")
	}
	if s.MinVotesPerUser > numOptions {
		return apperr.Invalid("settings.min_votes_per_user", "must not exceed the number of options")
	}
	if s.MinVotesPerUser > maxChoices(s, numOptions) {
		return apperr.Invalid("settings.min_votes_per_user", "must not exceed max_votes_per_user (%d)", maxChoices(s, numOptions))
	}
	return nil
}

// maxChoices is how many options one ballot may hold under s.
func maxChoices(s Settings, numOptions int) int {
	switch {
	case s.CountingMethod() == count.Plurality:
		return 1
	case s.MaxVotesPerUser <= 0:
		return numOptions
	}
	return s.MaxVotesPerUser
}

// MinChoices is how many options one ballot must hold.
func (p *Poll) MinChoices() int { return max(p.Settings.MinVotesPerUser, 1) }
