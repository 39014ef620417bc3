package vote

import (
	"errors"
	"testing"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/count"
	"github.com/tally-vote/tally/pkg/poll"
)

func TestCheckScores(t *testing.T) {
	score := &poll.Poll{Settings: poll.Settings{Method: count.Score, AllowMultipleOptions: true}}
	ranked := &poll.Poll{Settings: poll.Settings{Method: count.Ranked, AllowMultipleOptions: true}}
	for _, tc := range []struct {
		name    string
		p       *poll.Poll
		options int
		scores  []int
		ok      bool
	}{
		{"every score from 0 to 5", score, 6, []int{0, 1, 2, 3, 4, 5}, true},
		{"one option scored", score, 1, []int{5}, true},
		{"above 5", score, 2, []int{5, 6}, false},
		{"negative", score, 1, []int{-1}, false},
		{"options without scores", score, 2, nil, false},
		{"fewer scores than options", score, 2, []int{3}, false},
		{"another method without scores", ranked, 2, nil, true},
		{"scores on another method", ranked, 1, []int{3}, false},
	} {
		err := CheckScores(tc.p, tc.options, tc.scores)
		var ve *apperr.ValidationError
		switch {
		case tc.ok && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case !tc.ok && (!errors.As(err, &ve) || ve.Field != "scores"):
			t.Errorf("%s: %v, want a validation error on scores", tc.name, err)
		}
	}
}
