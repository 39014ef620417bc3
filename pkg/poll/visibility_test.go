package poll

import (
	"errors"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/apperr"
)

func TestSettingsPatchVisibility(t *testing.T) {
	yes, no := true, false
	mode := func(v ResultsVisibility) *ResultsVisibility { return &v }
	tests := []struct {
		name  string
		sp    SettingsPatch
		want  ResultsVisibility // "" when the patch leaves the mode alone
		field string            // the refused field, if any
	}{
		{"neither", SettingsPatch{}, "", ""},
		{"alias true", SettingsPatch{ShowResultsDuringVoting: &yes}, ResultsAlways, ""},
		{"alias false", SettingsPatch{ShowResultsDuringVoting: &no}, ResultsAfterVote, ""},
		{"mode", SettingsPatch{ResultsVisibility: mode(ResultsOwnerOnly)}, ResultsOwnerOnly, ""},
		{"both always", SettingsPatch{ShowResultsDuringVoting: &yes, ResultsVisibility: mode(ResultsAlways)}, ResultsAlways, ""},
		// A document shows false beside every mode but always: sending it
		// back is not a conflict.
		{"false with after_close", SettingsPatch{ShowResultsDuringVoting: &no, ResultsVisibility: mode(ResultsAfterClose)}, ResultsAfterClose, ""},
		{"false with owner_only", SettingsPatch{ShowResultsDuringVoting: &no, ResultsVisibility: mode(ResultsOwnerOnly)}, ResultsOwnerOnly, ""},
		{"true with after_vote", SettingsPatch{ShowResultsDuringVoting: &yes, ResultsVisibility: mode(ResultsAfterVote)}, "", "settings.show_results_during_voting"},
		{"true with owner_only", SettingsPatch{ShowResultsDuringVoting: &yes, ResultsVisibility: mode(ResultsOwnerOnly)}, "", "settings.show_results_during_voting"},
		{"false with always", SettingsPatch{ShowResultsDuringVoting: &no, ResultsVisibility: mode(ResultsAlways)}, "", "settings.show_results_during_voting"},
		{"unknown mode", SettingsPatch{ResultsVisibility: mode("voters")}, "", "settings.results_visibility"},
		{"empty mode", SettingsPatch{ResultsVisibility: mode("")}, "", "settings.results_visibility"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.sp.Validate()
			var ve *apperr.ValidationError
			if tc.field != "" {
				if !errors.As(err, &ve) || ve.Field != tc.field {
					t.Fatalf("Validate = %v, want a refusal of %s", err, tc.field)
				}
				return
			}
			if err != nil {
				t.Fatalf("Validate = %v", err)
			}
			base := Settings{ResultsVisibility: ResultsAfterClose}
			got := tc.sp.Apply(base).ResultsVisibility
			if want := cmpOr(tc.want, base.ResultsVisibility); got != want {
				t.Fatalf("Apply sets %q, want %q", got, want)
			}
		})
	}
}

func cmpOr(a, b ResultsVisibility) ResultsVisibility {
	if a != "" {
		return a
	}
	return b
}

func TestVisibilityAlias(t *testing.T) {
	for _, v := range []ResultsVisibility{ResultsAlways, ResultsAfterVote, ResultsAfterClose, ResultsOwnerOnly} {
		if !v.Valid() {
			t.Fatalf("%s not valid", v)
		}
		if v.ShownDuringVoting() != (v == ResultsAlways) {
			t.Fatalf("%s shown during voting: %v", v, v.ShownDuringVoting())
		}
	}
	if VisibilityOf(true) != ResultsAlways || VisibilityOf(false) != ResultsAfterVote {
		t.Fatal("alias maps wrong")
	}
	if (Settings{}).Visibility() != ResultsAfterVote || DefaultSettings.Visibility() != ResultsAlways {
		t.Fatal("zero settings must read after_vote, the default always")
	}
}

// TestPatchValidateVisibility: a PATCH's settings are checked with the
// rest of the patch.
func TestPatchValidateVisibility(t *testing.T) {
	now := time.Now()
	p := &Poll{StartTime: now.Add(-time.Hour), EndTime: now.Add(time.Hour), Options: make([]Option, 2)}
	bad := ResultsVisibility("sometimes")
	var ve *apperr.ValidationError
	if err := (Patch{Settings: &SettingsPatch{ResultsVisibility: &bad}}).Validate(p, now); !errors.As(err, &ve) ||
		ve.Field != "settings.results_visibility" {
		t.Fatalf("Validate = %v", err)
	}
	in := CreateInput{Title: "t", Options: opts("a", "b"), Settings: Settings{ResultsVisibility: bad}}
	if err := in.Validate(); !errors.As(err, &ve) || ve.Field != "settings.results_visibility" {
		t.Fatalf("create Validate = %v", err)
	}
}

// TestFingerprintStable: a create request fingerprints as it did before
// results_visibility existed when the boolean can say its mode, so a
// retry across the deploy still matches its claim; the new modes
// fingerprint apart from each other and from after_vote. The hashes were
// taken with the code before the change.
func TestFingerprintStable(t *testing.T) {
	start := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	two := 2
	in := func(s Settings) CreateInput {
		return CreateInput{Title: "Lunch", Description: "d", Options: []OptionInput{{Text: "a"}, {Text: "b", DisplayOrder: &two}},
			StartTime: &start, Settings: s}
	}
	hidden := Settings{ResultsVisibility: ResultsAfterVote, AllowMultipleOptions: true, MaxVotesPerUser: 2,
		BotPolicy: BotReject, AnonymousAccess: AnonymousOpen}
	if got := in(DefaultSettings).fingerprint(); got != "57b0c6afa901b684ba958ff45c80536b3cbd72ef78adb6a45914d73993b6623d" {
		t.Fatalf("always: %s", got)
	}
	if got := in(hidden).fingerprint(); got != "b4fb79a3e79269a602b663cf9ab2a6d92f42469cfce81f01918b412b769aed23" {
		t.Fatalf("after_vote: %s", got)
	}
	seen := map[string]ResultsVisibility{}
	for _, v := range []ResultsVisibility{ResultsAlways, ResultsAfterVote, ResultsAfterClose, ResultsOwnerOnly} {
		s := hidden
		s.ResultsVisibility = v
		f := in(s).fingerprint()
		if prev, ok := seen[f]; ok {
			t.Fatalf("%s and %s fingerprint alike", prev, v)
		}
		seen[f] = v
	}
}
