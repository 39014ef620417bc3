package poll

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/apperr"
)

func TestStatusAt(t *testing.T) {
	t0 := time.Date(2026, 4, 5, 10, 0, 0, 0, time.UTC)
	p := Poll{StartTime: t0, EndTime: t0.Add(time.Hour)}
	closedEarly := p
	closedEarly.ClosedAt = t0.Add(10 * time.Minute)
	tests := []struct {
		name string
		p    Poll
		at   time.Time
		want Status
	}{
		{"before start", p, t0.Add(-time.Second), Draft},
		{"at start", p, t0, Active},
		{"just before end", p, t0.Add(time.Hour - time.Nanosecond), Active},
		{"at end", p, t0.Add(time.Hour), Closed},
		{"closed by owner", closedEarly, t0.Add(11 * time.Minute), Closed},
		{"before owner close", closedEarly, t0.Add(9 * time.Minute), Active},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.p.StatusAt(tc.at); got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func opts(texts ...string) []OptionInput {
	out := make([]OptionInput, len(texts))
	for i, t := range texts {
		out[i] = OptionInput{Text: t}
	}
	return out
}

func TestCreateValidate(t *testing.T) {
	now := time.Now()
	later := now.Add(time.Hour)
	neg := -1
	huge := MaxDisplayOrder + 1
	many := make([]string, 51)
	for i := range many {
		many[i] = strings.Repeat("x", i+1)
	}
	tests := []struct {
		name  string
		in    CreateInput
		field string
	}{
		{"ok", CreateInput{Title: "t", Options: opts("a", "b")}, ""},
		{"empty title", CreateInput{Title: "  ", Options: opts("a", "b")}, "title"},
		{"title 255 runes ok", CreateInput{Title: strings.Repeat("é", 255), Options: opts("a", "b")}, ""},
		{"title 256", CreateInput{Title: strings.Repeat("t", 256), Options: opts("a", "b")}, "title"},
		{"description too long", CreateInput{Title: "t", Description: strings.Repeat("d", 2001), Options: opts("a", "b")}, "description"},
		{"one option", CreateInput{Title: "t", Options: opts("a")}, "options"},
		{"51 options", CreateInput{Title: "t", Options: opts(many...)}, "options"},
		{"empty option", CreateInput{Title: "t", Options: opts("a", " ")}, "options"},
		{"option too long", CreateInput{Title: "t", Options: opts("a", strings.Repeat("o", 201))}, "options"},
		{"duplicate options", CreateInput{Title: "t", Options: opts("Yes", "yes ")}, "options"},
		{"negative order", CreateInput{Title: "t", Options: []OptionInput{{Text: "a", DisplayOrder: &neg}, {Text: "b"}}}, "options"},
		{"order past the int column", CreateInput{Title: "t", Options: []OptionInput{{Text: "a", DisplayOrder: &huge}, {Text: "b"}}}, "options"},
		{"end before start", CreateInput{Title: "t", Options: opts("a", "b"), StartTime: &later, EndTime: &now}, "end_time"},
		{"max without multiple", CreateInput{Title: "t", Options: opts("a", "b"), Settings: Settings{MaxVotesPerUser: 2}}, "settings.max_votes_per_user"},
		{"max over options", CreateInput{Title: "t", Options: opts("a", "b"), Settings: Settings{AllowMultipleOptions: true, MaxVotesPerUser: 3}}, "settings.max_votes_per_user"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.in.Validate()
			var ve *apperr.ValidationError
			switch {
			case tc.field == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case tc.field != "" && (!errors.As(err, &ve) || ve.Field != tc.field):
				t.Fatalf("got %v, want a validation error on %s", err, tc.field)
			}
		})
	}
}

func TestMaxChoices(t *testing.T) {
	p := Poll{Options: make([]Option, 4)}
	if p.MaxChoices() != 1 {
		t.Fatal("single choice")
	}
	p.Settings.AllowMultipleOptions = true
	if p.MaxChoices() != 4 {
		t.Fatal("unlimited multiple choice is every option")
	}
	p.Settings.MaxVotesPerUser = 2
	if p.MaxChoices() != 2 {
		t.Fatal("capped")
	}
}

func TestPatchEndTime(t *testing.T) {
	t0 := time.Date(2026, 4, 5, 10, 0, 0, 0, time.UTC)
	p := &Poll{StartTime: t0, EndTime: t0.Add(24 * time.Hour), Options: []Option{{}, {}}}
	now := t0.Add(time.Hour)
	at := func(d time.Duration) *time.Time { v := now.Add(d); return &v }
	tests := []struct {
		name  string
		end   *time.Time
		valid bool
	}{
		{"later", at(time.Hour), true},
		{"a millisecond ahead", at(time.Millisecond), true},
		{"now", at(0), false},
		{"within the same millisecond as now", at(500 * time.Microsecond), false},
		{"in the past, after start", at(-time.Minute), false},
		{"before start", at(-2 * time.Hour), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Patch{EndTime: tc.end}.Validate(p, now)
			var inval *apperr.ValidationError
			switch {
			case tc.valid && err != nil:
				t.Fatalf("refused: %v", err)
			case !tc.valid && (!errors.As(err, &inval) || inval.Field != "end_time"):
				t.Fatalf("got %v, want a validation error on end_time", err)
			}
		})
	}
}
