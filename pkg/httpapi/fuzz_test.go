package httpapi

import (
	"encoding/json"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/net/http/httpguts"

	"github.com/tally-vote/tally/pkg/auth"
	"github.com/tally-vote/tally/pkg/count"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
)

// Fuzz targets for every decoder and validator the network reaches, run
// through the real router (see fuzz_rig_test.go). Seeds live in
// testdata/fuzz/<FuzzName>/; `make fuzz` runs each target for FUZZTIME.
// Each asserts: a refusal is the SPEC envelope at the status the one mapper
// assigns; what gets past validation (reaches a store) satisfies the
// documented constraints and the OpenAPI document accepts it; and, where
// the document states every rule, what it accepts the server does not
// refuse as invalid.

var (
	usernameRule = regexp.MustCompile(`^[a-z0-9_]{3,32}$`)
	emailRule    = regexp.MustCompile(auth.EmailPattern)
)

// field reads one string field of a JSON object body, matching the key as
// encoding/json does (exact first, then case-insensitively).
func field(body []byte, name string) (string, bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return "", false
	}
	raw, ok := m[name]
	if !ok {
		for k, v := range m {
			if strings.EqualFold(k, name) {
				raw, ok = v, true
			}
		}
	}
	var s string
	if !ok || json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

func FuzzRegisterBody(f *testing.F) {
	f.Add([]byte(`{"email":"ada@example.com","username":"ada_l","password":"correct-horse"}`))
	f.Add([]byte(`{"email":"","username":"ada_l","password":"correct-horse"}`))
	r := newRig(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		a := r.do("POST", "/v1/auth/register", "", body)
		checkEnvelope(t, a, 400, 503)
		u := r.rec.user
		if (a.status == 503) != (u != nil) {
			t.Fatalf("status %d, store reached: %v", a.status, u != nil)
		}
		pw, _ := field(body, "password")
		if u != nil {
			email, _ := field(body, "email")
			switch {
			case u.Email != strings.ToLower(strings.TrimSpace(email)) || len(u.Email) > 254 || !emailRule.MatchString(u.Email):
				t.Fatalf("stored email %q from %q", u.Email, email)
			case !usernameRule.MatchString(u.Username):
				t.Fatalf("stored username %q", u.Username)
			case utf8.RuneCountInString(pw) < 8 || utf8.RuneCountInString(pw) > 72:
				t.Fatalf("accepted password of %d characters", utf8.RuneCountInString(pw))
			case !r.documentAccepts("RegisterRequest", body):
				t.Fatalf("server accepted a body the document refuses: %q", body)
			}
			return
		}
		// The document states every rule of this body.
		if a.status == 400 && r.documentAccepts("RegisterRequest", body) && shapeOK(body) {
			t.Fatalf("document accepts, server refuses: %q: %s", body, a.body)
		}
	})
}

func FuzzLoginBody(f *testing.F) {
	f.Add([]byte(`{"login":"ada_l","password":"x"}`))
	f.Add([]byte(`{"login":"Ada@Example.com ","password":"x"}`))
	f.Add([]byte(`{"login":"","password":""}`))
	r := newRig(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		a := r.do("POST", "/v1/auth/login", "", body)
		checkEnvelope(t, a, 400, 503)
		got := r.rec.login
		if (a.status == 503) != (got != nil) {
			t.Fatalf("status %d, store reached: %v", a.status, got != nil)
		}
		if got != nil {
			login, _ := field(body, "login")
			want := strings.TrimSpace(login)
			if strings.Contains(want, "@") {
				want = strings.ToLower(want)
			}
			if pw, _ := field(body, "password"); *got != want || want == "" || pw == "" {
				t.Fatalf("looked up %q for login %q", *got, login)
			}
			if !r.documentAccepts("LoginRequest", body) {
				t.Fatalf("server accepted a body the document refuses: %q", body)
			}
		} else if r.documentAccepts("LoginRequest", body) && shapeOK(body) {
			t.Fatalf("document accepts, server refuses: %q: %s", body, a.body)
		}
		// Anonymous sign-in ignores any body and always mints a fresh
		// anonymous voter.
		a = r.do("POST", "/v1/auth/anonymous", "", body)
		checkEnvelope(t, a, 200)
		var tok auth.Token
		if err := json.Unmarshal(a.body, &tok); err != nil {
			t.Fatal(err)
		}
		if p, err := r.tokens.Verify(tok.AccessToken); err != nil || !p.Anonymous {
			t.Fatalf("anonymous token %+v %v", p, err)
		}
	})
}

// checkKey asserts the Idempotency-Key rule: surrounding spaces trimmed,
// a key that is not UTF-8 or longer than 255 characters refused.
func checkKey(t *testing.T, a answer, key string, stored *string) {
	t.Helper()
	k := strings.TrimSpace(key)
	if !utf8.ValidString(k) || utf8.RuneCountInString(k) > 255 {
		if a.status != 400 || a.err.Field != "Idempotency-Key" {
			t.Fatalf("key %q of %d characters: %d %s", k, utf8.RuneCountInString(k), a.status, a.body)
		}
		return
	}
	if a.err.Field == "Idempotency-Key" {
		t.Fatalf("key %q refused: %s", key, a.body)
	}
	if stored != nil && *stored != k {
		t.Fatalf("stored key %q for %q", *stored, key)
	}
}

// checkOptions asserts the option rules on what reached the store.
func checkOptions(t *testing.T, opts []poll.Option) {
	t.Helper()
	if len(opts) < poll.MinOptions || len(opts) > poll.MaxOptions {
		t.Fatalf("%d options stored", len(opts))
	}
	seen := map[string]bool{}
	for _, o := range opts {
		n := utf8.RuneCountInString(o.Text)
		if n < 1 || n > poll.MaxOptionText || strings.TrimSpace(o.Text) != o.Text || seen[strings.ToLower(o.Text)] {
			t.Fatalf("option text %q stored", o.Text)
		}
		seen[strings.ToLower(o.Text)] = true
		if o.DisplayOrder < 0 || o.DisplayOrder > poll.MaxDisplayOrder {
			t.Fatalf("display_order %d stored", o.DisplayOrder)
		}
	}
}

func checkSettings(t *testing.T, s poll.Settings, options int) {
	t.Helper()
	if s.MaxVotesPerUser < 0 || s.MaxVotesPerUser > options || (!s.AllowMultipleOptions && s.MaxVotesPerUser > 1) ||
		!s.ResultsVisibility.Valid() {
		t.Fatalf("settings %+v stored for %d options", s, options)
	}
	// The method is stored by name, agrees with the boolean, and 1 ≤ min ≤
	// max (0: every option) ≤ options.
	m, maxChoices := s.CountingMethod(), s.MaxVotesPerUser
	if maxChoices == 0 {
		maxChoices = options
	}
	if m == count.Plurality {
		maxChoices = 1
	}
	if (s.Method != "" && s.Method != m) || s.AllowMultipleOptions != (m != count.Plurality) ||
		s.MinVotesPerUser < 0 || s.MinVotesPerUser > maxChoices {
		t.Fatalf("settings %+v stored for %d options", s, options)
	}
}

// checkVisibilityPatch: a stored settings change never carries a
// results_visibility and an alias that disagree.
func checkVisibilityPatch(t *testing.T, sp *poll.SettingsPatch) {
	t.Helper()
	if sp.ResultsVisibility != nil && sp.ShowResultsDuringVoting != nil &&
		*sp.ShowResultsDuringVoting != sp.ResultsVisibility.ShownDuringVoting() {
		t.Fatalf("results_visibility %q stored with show_results_during_voting %v", *sp.ResultsVisibility, *sp.ShowResultsDuringVoting)
	}
}

func checkTitle(t *testing.T, title string) {
	t.Helper()
	if n := utf8.RuneCountInString(title); n < 1 || n > poll.MaxTitle || strings.TrimSpace(title) != title {
		t.Fatalf("title %q stored", title)
	}
}

func FuzzCreatePollBody(f *testing.F) {
	f.Add([]byte(`{"title":"t","options":[{"text":"a"},{"text":"b"}]}`), "")
	f.Add([]byte(`{"title":"t","options":[{"text":"a","display_order":2147483648},{"text":"b"}]}`), "k")
	f.Add([]byte(`{"title":"t","options":[{"text":"a"},{"text":"b"}],"end_time":"2020-01-01T00:00:00Z"}`), "")
	f.Add([]byte(`{"title":"t","options":[{"text":"a"},{"text":"b"}],"settings":{"results_visibility":"after_close","show_results_during_voting":false}}`), "")
	f.Add([]byte(`{"title":"t","options":[{"text":"a"},{"text":"b"},{"text":"c"}],"settings":{"method":"ranked","min_votes_per_user":2}}`), "")
	f.Add([]byte(`{"title":"t","options":[{"text":"a"},{"text":"b"}],"settings":{"method":"plurality","allow_multiple_options":true}}`), "")
	f.Add([]byte(`{"title":"t","options":[{"text":"a"},{"text":"b"}],"settings":{"method":"approval","min_votes_per_user":3,"max_votes_per_user":2}}`), "")
	r := newRig(f)
	f.Fuzz(func(t *testing.T, body []byte, key string) {
		if !httpguts.ValidHeaderFieldValue(key) {
			return // net/http refuses it on the wire before any handler
		}
		a := r.do("POST", "/v1/polls", r.ownerTok, body, "Idempotency-Key", key)
		checkEnvelope(t, a, 400, 503)
		checkKey(t, a, key, r.rec.key)
		p := r.rec.poll
		if (a.status == 503) != (p != nil) {
			t.Fatalf("status %d, store reached: %v", a.status, p != nil)
		}
		if p == nil {
			return
		}
		checkTitle(t, p.Title)
		if utf8.RuneCountInString(p.Description) > poll.MaxDescription {
			t.Fatalf("description of %d runes stored", utf8.RuneCountInString(p.Description))
		}
		checkOptions(t, p.Options)
		checkSettings(t, p.Settings, len(p.Options))
		if !p.EndTime.After(p.StartTime) || p.CreatorID != r.owner {
			t.Fatalf("stored poll %+v", p)
		}
		if !r.documentAccepts("PollCreate", body) {
			t.Fatalf("server accepted a body the document refuses: %q", body)
		}
	})
}

func FuzzPatchPollBody(f *testing.F) {
	f.Add([]byte(`{"status":"closed"}`))
	f.Add([]byte(`{"title":"new","options":[{"text":"p"},{"text":"q"}],"settings":{"allow_multiple_options":true,"max_votes_per_user":2}}`))
	f.Add([]byte(`{"end_time":"2020-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"settings":{"results_visibility":"owner_only","show_results_during_voting":true}}`))
	f.Add([]byte(`{"settings":{"method":"schulze","min_votes_per_user":2}}`))
	f.Add([]byte(`{"settings":{"allow_multiple_options":true,"method":"score"}}`))
	r := newRig(f)
	target := "/v1/polls/" + r.draft.ID.String()
	f.Fuzz(func(t *testing.T, body []byte) {
		a := r.do("PATCH", target, r.ownerTok, body)
		checkEnvelope(t, a, 400, 503)
		ch, opts := r.rec.change, r.rec.options
		if (a.status == 503) != (ch != nil || opts != nil) {
			t.Fatalf("status %d, store reached: %v", a.status, ch != nil || opts != nil)
		}
		if ch == nil && opts == nil {
			return
		}
		n := len(r.draft.Options)
		if opts != nil {
			checkOptions(t, opts)
			n = len(opts)
		}
		if ch != nil {
			if ch.Title != nil {
				checkTitle(t, *ch.Title)
			}
			if ch.Description != nil && utf8.RuneCountInString(*ch.Description) > poll.MaxDescription {
				t.Fatalf("description of %d runes stored", utf8.RuneCountInString(*ch.Description))
			}
			if ch.EndTime != nil && !ch.EndTime.After(r.draft.StartTime) {
				t.Fatalf("end_time %v stored for a poll starting %v", ch.EndTime, r.draft.StartTime)
			}
			if ch.Settings != nil {
				checkVisibilityPatch(t, ch.Settings)
				checkSettings(t, ch.Settings.Apply(r.draft.Settings), n)
				if (ch.Settings.Method == nil) != (ch.Settings.AllowMultipleOptions == nil) {
					t.Fatalf("the method and allow_multiple_options written apart: %+v", ch.Settings)
				}
			}
		}
		if !r.documentAccepts("PollPatch", body) {
			t.Fatalf("server accepted a body the document refuses: %q", body)
		}
	})
}

func FuzzVoteBody(f *testing.F) {
	f.Add([]byte(`{"option_id":"3f0e5a1c-6d2b-4c6e-9a51-2b7d8e4f1a90"}`), "")
	f.Add([]byte(`{"option_id":"3f0e5a1c-6d2b-4c6e-9a51-2b7d8e4f1a90","option_ids":["3f0e5a1c-6d2b-4c6e-9a51-2b7d8e4f1a90"]}`), "k")
	r := newRig(f)
	target := "/v1/polls/" + r.active.ID.String() + "/votes"
	// Seeds that name the rig's real options, so the fuzzer starts from
	// votes that pass.
	for i, o := range r.active.Options {
		f.Add([]byte(`{"option_id":"`+o.ID.String()+`"}`), strconv.Itoa(i))
		f.Add([]byte(`{"option_ids":["`+o.ID.String()+`","`+r.active.Options[(i+1)%3].ID.String()+`"]}`), " key ")
		// Score ballots: the rig's poll is not a score poll, so each is
		// refused on scores, whatever its scores.
		f.Add([]byte(`{"scores":[{"option_id":"`+o.ID.String()+`","score":`+strconv.Itoa(i*3)+`}]}`), "s")
		f.Add([]byte(`{"scores":[{"option_id":"`+o.ID.String()+`","score":2.5},{"option_id":"`+o.ID.String()+`"}],"option_ids":null}`), "")
	}
	f.Fuzz(func(t *testing.T, body []byte, key string) {
		if !httpguts.ValidHeaderFieldValue(key) {
			return
		}
		a := r.do("POST", target, r.voterTok, body, "Idempotency-Key", key)
		checkEnvelope(t, a, 400, 422, 503)
		checkKey(t, a, key, nil)
		b := r.rec.ballot
		if (a.status == 503) != (b != nil) {
			t.Fatalf("status %d, store reached: %v", a.status, b != nil)
		}
		if b == nil {
			// Everything the document accepts is a ballot of well-formed
			// UUIDs; the server may still refuse it for the poll's rules
			// (422 for an option it lacks, 400 past max_votes_per_user,
			// 400 on scores sent to a poll that is not a score poll),
			// never for its form.
			if a.status == 400 && a.err.Field != "option_ids" && a.err.Field != "scores" && a.err.Field != "Idempotency-Key" &&
				r.documentAccepts("VoteRequest", body) && shapeOK(body) {
				t.Fatalf("document accepts, server refuses: %q: %s", body, a.body)
			}
			return
		}
		seen := map[id.ID]bool{}
		for _, o := range b.OptionIDs {
			if _, ok := r.active.Option(o); !ok || seen[o] {
				t.Fatalf("ballot %v holds an option twice or one the poll lacks", b.OptionIDs)
			}
			seen[o] = true
		}
		k := strings.TrimSpace(key)
		if len(b.OptionIDs) < 1 || len(b.OptionIDs) > r.active.Settings.MaxVotesPerUser || b.VoterID != r.voter ||
			b.IdempotencyKey != k {
			t.Fatalf("ballot %+v", b)
		}
		if k != "" {
			// A retry with the same key is the same request.
			r.do("POST", target, r.voterTok, body, "Idempotency-Key", key)
			if again := r.rec.ballot; again == nil || again.RequestID != b.RequestID {
				t.Fatalf("a retry with key %q is another request: %+v then %+v", k, b, again)
			}
		}
		if !r.documentAccepts("VoteRequest", body) {
			t.Fatalf("server accepted a body the document refuses: %q", body)
		}
	})
}

// FuzzChangeBody covers PUT and DELETE …/votes/me: a change's body is a
// vote's, judged by the same rules before the store is reached (the rig's
// store answers 503), so the server and the document agree on it; a
// revoke ignores its body.
func FuzzChangeBody(f *testing.F) {
	f.Add([]byte(`{"option_id":"3f0e5a1c-6d2b-4c6e-9a51-2b7d8e4f1a90"}`), "")
	f.Add([]byte(`{}`), "k")
	f.Add([]byte(`{"option_ids":[]}`), "")
	r := newRig(f)
	target := "/v1/polls/" + r.active.ID.String() + "/votes/me"
	for i, o := range r.active.Options {
		f.Add([]byte(`{"option_id":"`+o.ID.String()+`"}`), strconv.Itoa(i))
		f.Add([]byte(`{"option_ids":["`+o.ID.String()+`","`+r.active.Options[(i+1)%3].ID.String()+`"]}`), " key ")
		f.Add([]byte(`{"option_ids":["`+o.ID.String()+`","`+o.ID.String()+`"]}`), "")
		f.Add([]byte(`{"scores":[{"option_id":"`+o.ID.String()+`","score":1}]}`), "s")
	}
	f.Fuzz(func(t *testing.T, body []byte, key string) {
		if !httpguts.ValidHeaderFieldValue(key) {
			return
		}
		a := r.do("PUT", target, r.voterTok, body, "Idempotency-Key", key)
		checkEnvelope(t, a, 400, 422, 503)
		checkKey(t, a, key, nil)
		switch {
		case a.status == 503 && !r.documentAccepts("VoteRequest", body):
			t.Fatalf("server took a change body the document refuses: %q", body)
		case a.status == 400 && a.err.Field != "option_ids" && a.err.Field != "option_id" && a.err.Field != "scores" &&
			a.err.Field != "Idempotency-Key" && r.documentAccepts("VoteRequest", body) && shapeOK(body):
			t.Fatalf("document accepts, server refuses: %q: %s", body, a.body)
		}
		d := r.do("DELETE", target, r.voterTok, body, "Idempotency-Key", key)
		checkEnvelope(t, d, 400, 503)
		checkKey(t, d, key, nil)
	})
}

// FuzzQueryParams covers the query and path parameters: limit and cursor
// of the poll list, tally of the results, and a poll id in the path.
func FuzzQueryParams(f *testing.F) {
	f.Add("20", "", "live", "")
	f.Add("0", "__main__", "final", "not-a-uuid")
	f.Add("100", "AQID.xyz", "", "0f8fad5b-d9cb-469f-a165-70867728950e")
	r := newRig(f)
	f.Add("1", r.cursors.Seal(r.owner, []byte{0, 1, 2, 0xff}), "fake", r.active.ID.String())
	f.Fuzz(func(t *testing.T, limit, cursor, mode, pollID string) {
		q := url.Values{"cursor": {cursor}}
		if limit != "" {
			q.Set("limit", limit)
		}
		a := r.do("GET", "/v1/polls?"+q.Encode(), r.ownerTok, nil)
		checkEnvelope(t, a, 400, 503)
		n, err := strconv.Atoi(limit)
		limitOK := limit == "" || err == nil && n >= 1 && n <= 100
		if (a.err.Field == "limit") == limitOK {
			t.Fatalf("limit %q: %d %s", limit, a.status, a.body)
		}
		if limitOK {
			_, openErr := r.cursors.Open(r.owner, cursor)
			switch {
			case a.status == 503 && (openErr != nil || !r.rec.listed):
				t.Fatalf("cursor %q reached the store", cursor)
			case a.status == 503 && cursor != "" && r.cursors.Seal(r.owner, r.rec.page) != cursor:
				t.Fatalf("cursor %q opened, but it is not the one sealed for its state", cursor)
			case a.status == 400 && (a.err.Field != "cursor" || openErr == nil):
				t.Fatalf("cursor %q: %s", cursor, a.body)
			}
		}

		// Results: a valid tally mode reaches the visibility rule (the
		// active poll hides results, so it asks the vote store: 503).
		a = r.do("GET", "/v1/polls/"+r.active.ID.String()+"/results?"+url.Values{"tally": {mode}}.Encode(), r.voterTok, nil)
		checkEnvelope(t, a, 400, 503)
		if (a.status == 503) != (mode == "live" || mode == "final") {
			t.Fatalf("tally=%q: %d %s", mode, a.status, a.body)
		}

		// A poll id in the path: the known poll, 404, or 400 naming it.
		if pollID == "" || strings.ContainsAny(pollID, "/?#%") || !utf8.ValidString(pollID) {
			return
		}
		a = r.do("GET", "/v1/polls/"+url.PathEscape(pollID), "", nil)
		checkEnvelope(t, a, 200, 400, 404)
		id, err := id.Parse(pollID)
		switch {
		case err != nil && (a.status != 400 || a.err.Field != "poll_id"):
			t.Fatalf("poll id %q: %d %s", pollID, a.status, a.body)
		case err == nil && (a.status == 200) != (id == r.active.ID || id == r.draft.ID):
			t.Fatalf("poll id %q: %d %s", pollID, a.status, a.body)
		}
	})
}
