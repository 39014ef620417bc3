//go:build integration

package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/anonaccess"
	"github.com/tally-vote/tally/pkg/audit"
	"github.com/tally-vote/tally/pkg/config"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/testenv"
)

// Anonymous access that still means one vote per person (issue 14, item
// 4), against the real router and stack: token farming against an invite
// poll, proof of work, and open polls as before. Every count is read from
// the votes table.

func newAnonEnv(t *testing.T, mod func(*config.Config)) *env {
	t.Helper()
	cfg := testenv.Config(t)
	cfg.AnonAccess.PoWDifficulty = 8
	if mod != nil {
		mod(&cfg)
	}
	a, srv := testenv.Server(t, cfg)
	return &env{app: a, c: testenv.NewClient(t, srv.URL)}
}

func (e *env) anonToken(t *testing.T) string {
	t.Helper()
	return e.c.Do("POST", "/v1/auth/anonymous", "", nil).Must(t, http.StatusOK).Str("access_token")
}

// refused fails unless r is status with code in the envelope.
func refused(t *testing.T, what string, r testenv.Response, status int, code string) {
	t.Helper()
	if r.Status != status || r.Code() != code {
		t.Errorf("%s: %d %s, want %d %s", what, r.Status, r.Raw, status, code)
	}
}

var codePattern = regexp.MustCompile(`^[A-Za-z0-9_-]{24}$`)

func TestInviteCodesStopTokenFarming(t *testing.T) {
	e := newAnonEnv(t, nil)
	owner, _ := e.c.Account()
	stranger, _ := e.c.Account()
	pollID, opts := e.c.Poll(owner, map[string]any{"allow_anonymous": true, "anonymous_access": "invite"})
	invites := "/v1/polls/" + pollID + "/invites"
	votes := "/v1/polls/" + pollID + "/votes"

	// Minting: owner only, 1 to 1000.
	refused(t, "stranger mints", e.c.Do("POST", invites, stranger, map[string]any{"count": 1}), 403, "NOT_POLL_OWNER")
	refused(t, "anonymous mints", e.c.Do("POST", invites, e.anonToken(t), map[string]any{"count": 1}), 403, "FORBIDDEN")
	refused(t, "no token", e.c.Do("POST", invites, "", map[string]any{"count": 1}), 401, "UNAUTHENTICATED")
	for _, body := range []any{map[string]any{"count": 0}, map[string]any{"count": 1001}, map[string]any{}, map[string]any{"count": "3"},
		map[string]any{"count": 1.5}} {
		refused(t, fmt.Sprintf("mint %v", body), e.c.Do("POST", invites, owner, body), 400, "VALIDATION_FAILED")
	}
	refused(t, "mint on a missing poll", e.c.Do("POST", "/v1/polls/"+id.New().String()+"/invites", owner,
		map[string]any{"count": 1}), 404, "POLL_NOT_FOUND")
	refused(t, "stranger counts", e.c.Do("GET", invites, stranger, nil), 403, "NOT_POLL_OWNER")

	r := e.c.Do("POST", invites, owner, map[string]any{"count": 3}).Must(t, http.StatusCreated)
	var codes []string
	for _, c := range r.Body["codes"].([]any) {
		codes = append(codes, c.(string))
	}
	if len(codes) != 3 || codes[0] == codes[1] || codes[1] == codes[2] || !codePattern.MatchString(codes[0]) {
		t.Fatalf("minted %v", codes)
	}
	counts := e.c.Do("GET", invites, owner, nil).Must(t, http.StatusOK)
	if counts.Body["minted"] != 3.0 || counts.Body["used"] != 0.0 {
		t.Fatalf("counts before voting: %s", counts.Raw)
	}
	// The audit log names the mint and its size, never the codes.
	pid, _ := id.Parse(pollID)
	events, err := e.app.Audit.List(context.Background(), pid, 10)
	if err != nil {
		t.Fatal(err)
	}
	minted := false
	for _, ev := range events {
		if ev.Kind == audit.InvitesMinted {
			minted = ev.Detail["count"] == 3.0
			if strings.Contains(fmt.Sprint(ev.Detail), codes[0]) {
				t.Fatalf("audit entry holds a code: %v", ev.Detail)
			}
		}
	}
	if !minted {
		t.Fatalf("no poll.invites_minted entry with count 3: %+v", events)
	}

	// Refusals, before any ballot.
	vote := map[string]any{"option_id": opts[0]}
	refused(t, "no code", e.c.Do("POST", votes, e.anonToken(t), vote), 403, "INVITE_REQUIRED")
	refused(t, "unknown code", e.c.Do("POST", votes, e.anonToken(t), vote, anonaccess.InviteHeader, strings.Repeat("A", 24)),
		403, "INVITE_INVALID")
	refused(t, "malformed code", e.c.Do("POST", votes, e.anonToken(t), vote, anonaccess.InviteHeader, "let-me-in"), 403, "INVITE_INVALID")
	otherPoll, _ := e.c.Poll(owner, map[string]any{"allow_anonymous": true, "anonymous_access": "invite"})
	otherCode := e.c.Do("POST", "/v1/polls/"+otherPoll+"/invites", owner, map[string]any{"count": 1}).Must(t, http.StatusCreated).
		Body["codes"].([]any)[0].(string)
	refused(t, "another poll's code", e.c.Do("POST", votes, e.anonToken(t), vote, anonaccess.InviteHeader, otherCode), 403, "INVITE_INVALID")
	if rows := e.voteRows(t, pollID); len(rows) != 0 {
		t.Fatalf("refused votes wrote %d rows", len(rows))
	}

	// Token farming: 20 fresh anonymous tokens, one code, all at once.
	tokens := make([]string, 20)
	for i := range tokens {
		tokens[i] = e.anonToken(t)
	}
	statuses := make([]int, len(tokens))
	var wg sync.WaitGroup
	for i, tok := range tokens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := e.c.Do("POST", votes, tok, map[string]any{"option_id": opts[i%2]}, anonaccess.InviteHeader, codes[0])
			statuses[i] = r.Status
			if r.Status == http.StatusConflict && r.Code() != "ALREADY_VOTED" {
				t.Errorf("farmed vote %d: %s", i, r.Raw)
			}
		}()
	}
	wg.Wait()
	ok, dup := 0, 0
	for _, s := range statuses {
		switch s {
		case http.StatusOK:
			ok++
		case http.StatusConflict:
			dup++
		}
	}
	if ok != 1 || dup != len(tokens)-1 {
		t.Fatalf("20 tokens with one code: %d recorded, %d ALREADY_VOTED (%v)", ok, dup, statuses)
	}
	if rows := e.voteRows(t, pollID); len(rows) != 1 {
		t.Fatalf("one code stored %d ballots", len(rows))
	}

	// The second code is a second voter; a signed-in voter needs no code.
	second := e.c.Do("POST", votes, e.anonToken(t), vote, anonaccess.InviteHeader, codes[1], "Idempotency-Key", "second").
		Must(t, http.StatusOK)
	account, _ := e.c.Account()
	e.c.Do("POST", votes, account, vote).Must(t, http.StatusOK)
	rows := e.voteRows(t, pollID)
	if len(rows) != 3 {
		t.Fatalf("%d ballots, want 3 (two codes, one account)", len(rows))
	}
	if total, _ := e.c.Results(owner, pollID, "final"); total != 3 {
		t.Fatalf("final total %d, want 3", total)
	}
	counts = e.c.Do("GET", invites, owner, nil).Must(t, http.StatusOK)
	if counts.Body["minted"] != 3.0 || counts.Body["used"] != 2.0 {
		t.Fatalf("counts after voting: %s", counts.Raw)
	}

	// A retry with the same key from yet another token gets the original.
	retry := e.c.Do("POST", votes, e.anonToken(t), vote, anonaccess.InviteHeader, codes[1], "Idempotency-Key", "second").
		Must(t, http.StatusOK)
	if retry.Str("vote_id") != second.Str("vote_id") {
		t.Fatalf("retry answered %s, original %s", retry.Raw, second.Raw)
	}

	// Reads name the voter by the code.
	tok := e.anonToken(t)
	me := "/v1/polls/" + pollID + "/votes/me"
	if r := e.c.Do("GET", me, tok, nil, anonaccess.InviteHeader, codes[1]).Must(t, http.StatusOK); r.Body["has_voted"] != true {
		t.Fatalf("votes/me with the code: %s", r.Raw)
	}
	if r := e.c.Do("GET", me, tok, nil).Must(t, http.StatusOK); r.Body["has_voted"] != false {
		t.Fatalf("votes/me without the code: %s", r.Raw)
	}
	refused(t, "votes/me with a foreign code", e.c.Do("GET", me, tok, nil, anonaccess.InviteHeader, otherCode), 403, "INVITE_INVALID")
	status := "/v1/polls/" + pollID + "/votes/requests/" + second.Str("request_id")
	if r := e.c.Do("GET", status, tok, nil, anonaccess.InviteHeader, codes[1]).Must(t, http.StatusOK); r.Str("state") != "completed" {
		t.Fatalf("request status with the code: %s", r.Raw)
	}
	refused(t, "request status without the code", e.c.Do("GET", status, tok, nil), 404, "REQUEST_NOT_FOUND")
}

func TestInviteCodesHiddenResultsForTheirVoters(t *testing.T) {
	e := newAnonEnv(t, nil)
	owner, _ := e.c.Account()
	pollID, opts := e.c.Poll(owner, map[string]any{"allow_anonymous": true, "anonymous_access": "invite",
		"show_results_during_voting": false})
	code := e.c.Do("POST", "/v1/polls/"+pollID+"/invites", owner, map[string]any{"count": 1}).Must(t, http.StatusCreated).
		Body["codes"].([]any)[0].(string)
	tok := e.anonToken(t)
	results := "/v1/polls/" + pollID + "/results"
	refused(t, "results before voting", e.c.Do("GET", results, tok, nil, anonaccess.InviteHeader, code), 403, "RESULTS_HIDDEN")
	e.c.Do("POST", "/v1/polls/"+pollID+"/votes", tok, map[string]any{"option_id": opts[0]}, anonaccess.InviteHeader, code).
		Must(t, http.StatusOK)
	e.c.Do("GET", results, e.anonToken(t), nil, anonaccess.InviteHeader, code).Must(t, http.StatusOK)
	refused(t, "results without the code", e.c.Do("GET", results, tok, nil), 403, "RESULTS_HIDDEN")
}

// challenge fetches a challenge and returns it with its difficulty and
// expiry.
func (e *env) challenge(t *testing.T, pollID, token string) (string, int, time.Time) {
	t.Helper()
	r := e.c.Do("GET", "/v1/polls/"+pollID+"/challenge", token, nil).Must(t, http.StatusOK)
	if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
		t.Fatalf("challenge Cache-Control %q", cc)
	}
	exp, err := time.Parse(time.RFC3339, r.Str("expires_at"))
	if err != nil {
		t.Fatalf("expires_at: %s", r.Raw)
	}
	return r.Str("challenge"), int(r.Body["difficulty"].(float64)), exp
}

func TestProofOfWorkPoll(t *testing.T) {
	e := newAnonEnv(t, func(c *config.Config) { c.AnonAccess.PoWTTL = 5 * time.Second })
	owner, _ := e.c.Account()
	pollID, opts := e.c.Poll(owner, map[string]any{"allow_anonymous": true, "anonymous_access": "pow"})
	otherPoll, _ := e.c.Poll(owner, map[string]any{"allow_anonymous": true, "anonymous_access": "pow"})
	votes := "/v1/polls/" + pollID + "/votes"
	vote := map[string]any{"option_id": opts[1]}

	chal, difficulty, exp := e.challenge(t, pollID, e.anonToken(t))
	if difficulty != 8 || time.Until(exp) > 5*time.Second {
		t.Fatalf("difficulty %d, expires in %s", difficulty, time.Until(exp))
	}
	solution := anonaccess.Solve(chal, difficulty)
	unsolved := ""
	for i := 0; unsolved == ""; i++ {
		if s := fmt.Sprintf("n%d", i); !anonaccess.Solved(chal, s, difficulty) {
			unsolved = s
		}
	}
	tampered := []byte(chal)
	tampered[40] = 'A'
	if chal[40] == 'A' {
		tampered[40] = 'B'
	}
	foreign, _, _ := e.challenge(t, otherPoll, "")
	proof := chal + ":" + solution

	refused(t, "no proof", e.c.Do("POST", votes, e.anonToken(t), vote), 403, "POW_REQUIRED")
	for name, p := range map[string]string{
		"not enough work":        chal + ":" + unsolved,
		"tampered challenge":     string(tampered) + ":" + solution,
		"another poll's":         foreign + ":" + anonaccess.Solve(foreign, difficulty),
		"malformed":              "please",
		"challenge, no solution": chal,
	} {
		refused(t, name, e.c.Do("POST", votes, e.anonToken(t), vote, anonaccess.PoWHeader, p), 403, "POW_INVALID")
	}
	if rows := e.voteRows(t, pollID); len(rows) != 0 {
		t.Fatalf("refused votes wrote %d rows", len(rows))
	}

	first := e.c.Do("POST", votes, e.anonToken(t), vote, anonaccess.PoWHeader, proof, "Idempotency-Key", "pow-1").
		Must(t, http.StatusOK)
	refused(t, "same solution, new token", e.c.Do("POST", votes, e.anonToken(t), vote, anonaccess.PoWHeader, proof), 409, "ALREADY_VOTED")
	// Another solution of the same challenge is the same voter.
	for i := 0; ; i++ {
		if s := fmt.Sprintf("alt%d", i); anonaccess.Solved(chal, s, difficulty) {
			refused(t, "same challenge, other solution", e.c.Do("POST", votes, e.anonToken(t), vote, anonaccess.PoWHeader,
				chal+":"+s), 409, "ALREADY_VOTED")
			break
		}
	}
	// A second solved challenge is a second voter; accounts need none.
	chal2, _, exp2 := e.challenge(t, pollID, "")
	e.c.Do("POST", votes, e.anonToken(t), vote, anonaccess.PoWHeader, chal2+":"+anonaccess.Solve(chal2, difficulty)).
		Must(t, http.StatusOK)
	account, _ := e.c.Account()
	e.c.Do("POST", votes, account, vote).Must(t, http.StatusOK)

	// Expired: an unspent challenge is refused; a spent one is recognised
	// (the same key gets the original answer, another attempt 409).
	chal3, _, exp3 := e.challenge(t, pollID, "")
	wait := exp3
	for _, x := range []time.Time{exp, exp2} {
		if x.After(wait) {
			wait = x
		}
	}
	time.Sleep(time.Until(wait) + 200*time.Millisecond)
	refused(t, "expired, unspent", e.c.Do("POST", votes, e.anonToken(t), vote, anonaccess.PoWHeader,
		chal3+":"+anonaccess.Solve(chal3, difficulty)), 403, "POW_INVALID")
	retry := e.c.Do("POST", votes, e.anonToken(t), vote, anonaccess.PoWHeader, proof, "Idempotency-Key", "pow-1").
		Must(t, http.StatusOK)
	if retry.Str("vote_id") != first.Str("vote_id") {
		t.Fatalf("retry after expiry: %s, original %s", retry.Raw, first.Raw)
	}
	refused(t, "expired, spent", e.c.Do("POST", votes, e.anonToken(t), vote, anonaccess.PoWHeader, proof), 409, "ALREADY_VOTED")
	if r := e.c.Do("GET", "/v1/polls/"+pollID+"/votes/me", e.anonToken(t), nil, anonaccess.PoWHeader, proof).
		Must(t, http.StatusOK); r.Body["has_voted"] != true {
		t.Fatalf("votes/me with the spent challenge: %s", r.Raw)
	}

	if rows := e.voteRows(t, pollID); len(rows) != 3 {
		t.Fatalf("%d ballots, want 3 (two challenges, one account)", len(rows))
	}
	if total, _ := e.c.Results(owner, pollID, "final"); total != 3 {
		t.Fatalf("final total %d, want 3", total)
	}
}

// Open polls behave as before: every anonymous token is a voter, and the
// access headers are ignored; a poll without allow_anonymous refuses
// anonymous tokens whatever its access mode.
func TestOpenAnonymousPollsUnchanged(t *testing.T) {
	e := newAnonEnv(t, nil)
	owner, _ := e.c.Account()
	pollID, opts := e.c.Poll(owner, map[string]any{"allow_anonymous": true})
	if s := e.c.Do("GET", "/v1/polls/"+pollID, "", nil).Must(t, http.StatusOK).Body["settings"].(map[string]any); s["anonymous_access"] != "open" {
		t.Fatalf("default anonymous_access %v", s["anonymous_access"])
	}
	votes := "/v1/polls/" + pollID + "/votes"
	tok := e.anonToken(t)
	e.c.Do("POST", votes, tok, map[string]any{"option_id": opts[0]}).Must(t, http.StatusOK)
	e.c.Do("POST", votes, e.anonToken(t), map[string]any{"option_id": opts[0]}, anonaccess.InviteHeader, "ignored",
		anonaccess.PoWHeader, "ignored").Must(t, http.StatusOK)
	refused(t, "same token twice", e.c.Do("POST", votes, tok, map[string]any{"option_id": opts[1]}), 409, "ALREADY_VOTED")
	if rows := e.voteRows(t, pollID); len(rows) != 2 {
		t.Fatalf("%d ballots, want 2", len(rows))
	}

	closed, copts := e.c.Poll(owner, map[string]any{"allow_anonymous": false, "anonymous_access": "invite"})
	refused(t, "anonymous on an accounts-only invite poll", e.c.Do("POST", "/v1/polls/"+closed+"/votes", e.anonToken(t),
		map[string]any{"option_id": copts[0]}), 403, "FORBIDDEN")
}
