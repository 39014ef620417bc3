//go:build integration

package httpapi_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestRegisterAndLogin(t *testing.T) {
	e := newEnv(t)
	c := e.c
	reg := map[string]any{"email": "Ada@Example.test", "username": "ada_l", "password": "difference engine"}
	r := c.Do("POST", "/v1/auth/register", "", reg).Must(t, http.StatusCreated)
	if r.Str("email") != "ada@example.test" || r.Str("user_id") == "" {
		t.Fatalf("register: %s", r.Raw)
	}
	if r := c.Do("POST", "/v1/auth/register", "", reg); r.Status != http.StatusConflict || r.Code() != "EMAIL_TAKEN" {
		t.Fatalf("same email: %d %s", r.Status, r.Raw)
	}
	reg["email"] = "other@example.test"
	if r := c.Do("POST", "/v1/auth/register", "", reg); r.Status != http.StatusConflict || r.Code() != "USERNAME_TAKEN" {
		t.Fatalf("same username: %d %s", r.Status, r.Raw)
	}
	// The lost username claim released the email claim.
	reg["username"] = "ada_2"
	c.Do("POST", "/v1/auth/register", "", reg).Must(t, http.StatusCreated)

	for _, login := range []string{"ada_l", "ADA@example.test"} {
		tok := c.Do("POST", "/v1/auth/login", "", map[string]any{"login": login, "password": "difference engine"}).
			Must(t, http.StatusOK)
		if tok.Str("token_type") != "Bearer" || tok.Body["expires_in"].(float64) <= 0 {
			t.Fatalf("login %s: %s", login, tok.Raw)
		}
		me := c.Do("GET", "/v1/users/me", tok.Str("access_token"), nil).Must(t, http.StatusOK)
		if me.Str("username") != "ada_l" || strings.Contains(string(me.Raw), "password") {
			t.Fatalf("me: %s", me.Raw)
		}
	}
	if r := c.Do("POST", "/v1/auth/login", "", map[string]any{"login": "ada_l", "password": "wrong password"}); r.Status != 401 {
		t.Fatalf("wrong password: %d", r.Status)
	}
	if r := c.Do("POST", "/v1/auth/login", "", map[string]any{"login": "nobody", "password": "whatever1"}); r.Status != 401 {
		t.Fatalf("unknown login: %d", r.Status)
	}
}

func TestConcurrentRegistrationOneWinner(t *testing.T) {
	e := newEnv(t)
	var wg sync.WaitGroup
	statuses := make([]int, 10)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = e.c.Do("POST", "/v1/auth/register", "", map[string]any{
				"email": "race" + string(rune('a'+i)) + "@example.test", "username": "racer", "password": "password123",
			}).Status
		}()
	}
	wg.Wait()
	won := 0
	for _, s := range statuses {
		if s == http.StatusCreated {
			won++
		} else if s != http.StatusConflict {
			t.Errorf("status %d", s)
		}
	}
	if won != 1 {
		t.Fatalf("%d registrations won, want 1", won)
	}
}

func TestBadTokens(t *testing.T) {
	e := newEnv(t)
	good, _ := e.c.Account()
	parts := strings.Split(good, ".")
	none := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "x", "iss": "tally", "exp": time.Now().Add(time.Hour).Unix()})
	noneTok, _ := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	expired := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "6ba7b810-9dad-11d1-80b4-00c04fd430c8",
		"iss": "tally", "exp": time.Now().Add(-time.Minute).Unix()})
	expiredTok, _ := expired.SignedString([]byte("test-secret-0123456789abcdef0123456789"))
	forged := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "6ba7b810-9dad-11d1-80b4-00c04fd430c8",
		"iss": "tally", "exp": time.Now().Add(time.Hour).Unix()})
	forgedTok, _ := forged.SignedString([]byte("not-the-secret"))
	for name, tok := range map[string]string{
		"alg none":  noneTok,
		"tampered":  parts[0] + "." + parts[1] + "x." + parts[2],
		"expired":   expiredTok,
		"forged":    forgedTok,
		"malformed": "not.a.jwt",
		"garbage":   "%%%",
	} {
		r := e.c.Do("GET", "/v1/users/me", tok, nil)
		if r.Status != http.StatusUnauthorized || r.Code() != "UNAUTHENTICATED" {
			t.Errorf("%s: %d %s", name, r.Status, r.Raw)
		}
	}
	if r := e.c.Do("GET", "/v1/users/me", "", nil); r.Status != http.StatusUnauthorized {
		t.Errorf("no token: %d", r.Status)
	}
}

func TestBadInputWritesNothing(t *testing.T) {
	e := newEnv(t)
	owner, _ := e.c.Account()
	pollID, opts := e.c.Poll(owner, nil)
	voter, _ := e.c.Account()
	votes := "/v1/polls/" + pollID + "/votes"
	huge := `{"option_id": "` + strings.Repeat("a", 2<<20) + `"}`
	cases := []struct {
		name, method, path, token string
		body                      any
		status                    int
		code                      string
	}{
		{"malformed json", "POST", votes, voter, `{"option_id": `, 400, "VALIDATION_FAILED"},
		{"wrong type", "POST", votes, voter, `{"option_id": 7}`, 400, "VALIDATION_FAILED"},
		{"not a uuid", "POST", votes, voter, `{"option_id": "abc"}`, 400, "VALIDATION_FAILED"},
		{"no option", "POST", votes, voter, `{}`, 400, "VALIDATION_FAILED"},
		{"empty body", "POST", votes, voter, ``, 400, "VALIDATION_FAILED"},
		{"huge body", "POST", votes, voter, huge, 413, "BODY_TOO_LARGE"},
		{"unknown option", "POST", votes, voter, map[string]any{"option_id": "6ba7b810-9dad-11d1-80b4-00c04fd430c8"}, 422, "INVALID_OPTION"},
		{"two options on single choice", "POST", votes, voter, map[string]any{"option_ids": opts[:2]}, 400, "VALIDATION_FAILED"},
		{"both fields", "POST", votes, voter, map[string]any{"option_id": opts[0], "option_ids": opts[:1]}, 400, "VALIDATION_FAILED"},
		{"unknown poll", "POST", "/v1/polls/6ba7b810-9dad-11d1-80b4-00c04fd430c8/votes", voter, map[string]any{"option_id": opts[0]}, 404, "POLL_NOT_FOUND"},
		{"bad poll id", "POST", "/v1/polls/xyz/votes", voter, map[string]any{"option_id": opts[0]}, 400, "VALIDATION_FAILED"},
		{"no token", "POST", votes, "", map[string]any{"option_id": opts[0]}, 401, "UNAUTHENTICATED"},
		{"forged token", "POST", votes, "eyJhbGciOiJIUzI1NiJ9.e30.x", map[string]any{"option_id": opts[0]}, 401, "UNAUTHENTICATED"},
		{"unknown route", "GET", "/v1/nope", "", nil, 404, "NOT_FOUND"},
		{"bad tally mode", "GET", "/v1/polls/" + pollID + "/results?tally=fake", owner, nil, 400, "VALIDATION_FAILED"},
		{"empty title", "POST", "/v1/polls", owner, map[string]any{"title": " ", "options": []map[string]any{{"text": "a"}, {"text": "b"}}}, 400, "VALIDATION_FAILED"},
		{"long title", "POST", "/v1/polls", owner, map[string]any{"title": strings.Repeat("t", 256), "options": []map[string]any{{"text": "a"}, {"text": "b"}}}, 400, "VALIDATION_FAILED"},
		{"one option", "POST", "/v1/polls", owner, map[string]any{"title": "t", "options": []map[string]any{{"text": "a"}}}, 400, "VALIDATION_FAILED"},
		{"duplicate options", "POST", "/v1/polls", owner, map[string]any{"title": "t", "options": []map[string]any{{"text": "a"}, {"text": "A "}}}, 400, "VALIDATION_FAILED"},
		{"end before start", "POST", "/v1/polls", owner, map[string]any{"title": "t", "options": []map[string]any{{"text": "a"}, {"text": "b"}},
			"start_time": "2030-01-02T00:00:00Z", "end_time": "2030-01-01T00:00:00Z"}, 400, "VALIDATION_FAILED"},
		{"bad time", "POST", "/v1/polls", owner, `{"title":"t","options":[{"text":"a"},{"text":"b"}],"start_time":"tomorrow"}`, 400, "VALIDATION_FAILED"},
		{"short password", "POST", "/v1/auth/register", "", map[string]any{"email": "a@b.co", "username": "abc", "password": "short"}, 400, "VALIDATION_FAILED"},
		{"bad email", "POST", "/v1/auth/register", "", map[string]any{"email": "nope", "username": "abc", "password": "longenough"}, 400, "VALIDATION_FAILED"},
		{"bad username", "POST", "/v1/auth/register", "", map[string]any{"email": "a@b.co", "username": "A!", "password": "longenough"}, 400, "VALIDATION_FAILED"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.c.Do(tc.method, tc.path, tc.token, tc.body)
			if r.Status != tc.status || r.Code() != tc.code {
				t.Fatalf("got %d %q, want %d %q: %.300s", r.Status, r.Code(), tc.status, tc.code, r.Raw)
			}
			if msg, _ := r.Body["error"].(map[string]any)["message"].(string); msg == "" || strings.Contains(msg, "goroutine") {
				t.Fatalf("message %q", msg)
			}
		})
	}
	if rows := e.voteRows(t, pollID); len(rows) != 0 {
		t.Fatalf("bad input wrote %d vote rows", len(rows))
	}
	list := e.c.Do("GET", "/v1/polls", owner, nil).Must(t, http.StatusOK)
	if n := len(list.Body["polls"].([]any)); n != 1 {
		t.Fatalf("owner has %d polls, want 1 (bad creates must store nothing)", n)
	}
	e.c.Do("GET", "/healthz", "", nil).Must(t, http.StatusOK)
	e.c.Do("POST", votes, voter, map[string]any{"option_id": opts[0]}).Must(t, http.StatusOK)
}
