package vote

import (
	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/count"
	"github.com/tally-vote/tally/pkg/poll"
)

// CheckScores validates a ballot's scores against p's method, after Choose
// has checked its options (options is how many) (each listed once, known, within min..max). A
// score poll's ballot scores every option it lists, each an integer from 0
// to count.MaxScore, scores[i] for options[i]; a ballot of any other method
// carries no scores. Both refusals are VALIDATION_FAILED (400), field
// scores.
func CheckScores(p *poll.Poll, options int, scores []int) error {
	if p.Settings.CountingMethod() != count.Score {
		if scores != nil {
			return apperr.Invalid("scores", "this poll takes option_ids, not scores (its method is %s)", p.Settings.CountingMethod())
		}
		return nil
	}
	if len(scores) == 0 || len(scores) != options {
		return apperr.Invalid("scores", "a score poll takes scores: one {option_id, score} per option scored")
	}
	for _, s := range scores {
		if s < 0 || s > count.MaxScore {
			return apperr.Invalid("scores", "each score is an integer from 0 to %d", count.MaxScore)
		}
	}
	return nil
}
