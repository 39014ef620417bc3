package poll

import (
	"errors"
	"testing"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/count"
)

func ptr[T any](v T) *T { return &v }

// TestCreateSettingsMethod is what a create's settings become, as the HTTP
// layer builds them: the patch validated, then applied to the defaults.
func TestCreateSettingsMethod(t *testing.T) {
	tests := []struct {
		name     string
		sp       SettingsPatch
		options  int
		method   count.Method
		multiple bool
		field    string
	}{
		{"default is plurality", SettingsPatch{}, 3, count.Plurality, false, ""},
		{"the boolean alone is approval", SettingsPatch{AllowMultipleOptions: ptr(true)}, 3, count.Approval, true, ""},
		{"ranked sets the boolean", SettingsPatch{Method: ptr(count.Ranked)}, 3, count.Ranked, true, ""},
		{"schulze with the boolean", SettingsPatch{Method: ptr(count.Schulze), AllowMultipleOptions: ptr(true)}, 3, count.Schulze, true, ""},
		{"approval and a minimum", SettingsPatch{Method: ptr(count.Approval), MinVotesPerUser: ptr(2), MaxVotesPerUser: ptr(3)}, 3, count.Approval, true, ""},
		{"min equals max", SettingsPatch{Method: ptr(count.Ranked), MinVotesPerUser: ptr(2), MaxVotesPerUser: ptr(2)}, 3, count.Ranked, true, ""},
		{"plurality with the boolean", SettingsPatch{Method: ptr(count.Plurality), AllowMultipleOptions: ptr(true)}, 3, "", false, "settings.allow_multiple_options"},
		{"ranked without the boolean", SettingsPatch{Method: ptr(count.Ranked), AllowMultipleOptions: ptr(false)}, 3, "", false, "settings.allow_multiple_options"},
		{"unknown method", SettingsPatch{Method: ptr(count.Method("borda"))}, 3, "", false, "settings.method"},
		{"score sets the boolean", SettingsPatch{Method: ptr(count.Score)}, 3, count.Score, true, ""},
		{"min zero", SettingsPatch{Method: ptr(count.Approval), MinVotesPerUser: ptr(0)}, 3, "", false, "settings.min_votes_per_user"},
		{"min over max", SettingsPatch{Method: ptr(count.Approval), MinVotesPerUser: ptr(3), MaxVotesPerUser: ptr(2)}, 3, "", false, "settings.min_votes_per_user"},
		{"min over options", SettingsPatch{Method: ptr(count.Ranked), MinVotesPerUser: ptr(4)}, 3, "", false, "settings.min_votes_per_user"},
		{"min 2 on plurality", SettingsPatch{MinVotesPerUser: ptr(2)}, 3, "", false, "settings.min_votes_per_user"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.sp.Validate()
			var s Settings
			if err == nil {
				s = tc.sp.Apply(DefaultSettings)
				err = checkSettings(s, tc.options)
			}
			var ve *apperr.ValidationError
			switch {
			case tc.field == "" && err != nil:
				t.Fatalf("unexpected %v", err)
			case tc.field != "" && (!errors.As(err, &ve) || ve.Field != tc.field):
				t.Fatalf("got %v, want a validation error on %s", err, tc.field)
			case tc.field == "" && (s.CountingMethod() != tc.method || s.AllowMultipleOptions != tc.multiple):
				t.Fatalf("method %s multiple %v, want %s %v", s.CountingMethod(), s.AllowMultipleOptions, tc.method, tc.multiple)
			}
		})
	}
}

// A poll stored before methods has no method: the boolean names it, and a
// patch of the boolean alone moves it between plurality and approval.
func TestLegacyPollMethod(t *testing.T) {
	legacy := Settings{AllowMultipleOptions: true}
	if legacy.CountingMethod() != count.Approval || (Settings{}).CountingMethod() != count.Plurality {
		t.Fatal("the boolean does not name the method")
	}
	s := SettingsPatch{AllowMultipleOptions: ptr(false)}.Apply(legacy)
	if s.CountingMethod() != count.Plurality || s.Method != count.Plurality {
		t.Fatalf("got %+v", s)
	}
	// On a ranked poll the boolean alone cannot switch methods: refused.
	ranked := Settings{Method: count.Ranked, AllowMultipleOptions: true}
	if err := checkSettings(SettingsPatch{AllowMultipleOptions: ptr(false)}.Apply(ranked), 3); err == nil {
		t.Fatal("ranked poll took allow_multiple_options=false")
	}
}

// The store writes the method and the boolean together, so a reader of
// either sees the same method.
func TestWithMethodColumns(t *testing.T) {
	sp := SettingsPatch{AllowMultipleOptions: ptr(true)}.withMethodColumns(Settings{Method: count.Plurality})
	if sp.Method == nil || *sp.Method != count.Approval || !*sp.AllowMultipleOptions {
		t.Fatalf("got %+v", sp)
	}
	sp = SettingsPatch{Method: ptr(count.Schulze)}.withMethodColumns(DefaultSettings)
	if sp.AllowMultipleOptions == nil || !*sp.AllowMultipleOptions {
		t.Fatalf("got %+v", sp)
	}
	if sp := (SettingsPatch{AllowAnonymous: ptr(true)}).withMethodColumns(DefaultSettings); sp.Method != nil || sp.AllowMultipleOptions != nil {
		t.Fatalf("a patch without the method wrote it: %+v", sp)
	}
}

// A poll created with the boolean alone fingerprints as it did before
// methods existed, so a retried create across the deploy is still a retry.
func TestFingerprintKeepsLegacyShape(t *testing.T) {
	in := CreateInput{Title: "t", Options: opts("a", "b"), Settings: SettingsPatch{AllowMultipleOptions: ptr(true)}.Apply(DefaultSettings)}
	legacy := in
	legacy.Settings.Method = ""
	if in.fingerprint() != legacy.fingerprint() {
		t.Fatal("approval by the boolean changed the fingerprint")
	}
	ranked := in
	ranked.Settings.Method = count.Ranked
	if ranked.fingerprint() == in.fingerprint() {
		t.Fatal("ranked fingerprints like approval")
	}
}

func TestMinChoices(t *testing.T) {
	p := Poll{Options: make([]Option, 4), Settings: Settings{Method: count.Ranked, AllowMultipleOptions: true}}
	if p.MinChoices() != 1 || p.MaxChoices() != 4 {
		t.Fatalf("min %d max %d", p.MinChoices(), p.MaxChoices())
	}
	p.Settings.MinVotesPerUser = 3
	if p.MinChoices() != 3 {
		t.Fatal("minimum ignored")
	}
}
