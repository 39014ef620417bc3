//go:build integration

package httpapi_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The attacks of issue 10, item 5, against the real router and stack. Each
// names the defence it proves; see TestBadTokens and TestPollLifecycle
// for alg:none, a forged key, expiry and a non-owner's title edit.

// testSecret is testenv.Config's JWT secret: tokens signed with it pass
// the signature check, so the claim checks are what refuses them.
const testSecret = "test-secret-0123456789abcdef0123456789"

func TestTokenAttacks(t *testing.T) {
	e := newEnv(t)
	good, userID := e.c.Account()
	now := time.Now()
	claims := func(mod func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{"iss": "tally", "sub": userID, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
		mod(c)
		return c
	}
	hs := func(c jwt.MapClaims, key []byte) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	same := func(jwt.MapClaims) {}
	// The control: the same claims signed with the secret pass.
	e.c.Do("GET", "/v1/users/me", hs(claims(same), []byte(testSecret)), nil).Must(t, http.StatusOK)

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rs, _ := jwt.NewWithClaims(jwt.SigningMethodRS256, claims(same)).SignedString(rsaKey)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	es, _ := jwt.NewWithClaims(jwt.SigningMethodES256, claims(same)).SignedString(ecKey)
	pub, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})
	// HS384 with the real secret: right key, algorithm not the pinned one.
	hs384, _ := jwt.NewWithClaims(jwt.SigningMethodHS384, claims(same)).SignedString([]byte(testSecret))

	// A tampered payload: a valid token's signature over another subject.
	parts := strings.Split(good, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var pc map[string]any
	_ = json.Unmarshal(payload, &pc)
	pc["sub"] = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
	pc["exp"] = now.Add(1000 * time.Hour).Unix()
	forgedPayload, _ := json.Marshal(pc)
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(forgedPayload) + "." + parts[2]

	for name, tok := range map[string]string{
		"RS256 with some key":           rs,
		"ES256 with some key":           es,
		"HS256 keyed with a public key": hs(claims(same), pubPEM),
		"HS384 with the secret":         hs384,
		"payload tampered":              tampered,
		"not yet valid":                 hs(claims(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Hour).Unix() }), []byte(testSecret)),
		"wrong issuer":                  hs(claims(func(c jwt.MapClaims) { c["iss"] = "evil" }), []byte(testSecret)),
		"no issuer":                     hs(claims(func(c jwt.MapClaims) { delete(c, "iss") }), []byte(testSecret)),
		"no expiry":                     hs(claims(func(c jwt.MapClaims) { delete(c, "exp") }), []byte(testSecret)),
		"subject not a uuid":            hs(claims(func(c jwt.MapClaims) { c["sub"] = "admin" }), []byte(testSecret)),
		"oversized":                     strings.Repeat("a", 60<<10),
	} {
		r := e.c.Do("GET", "/v1/users/me", tok, nil)
		if r.Status != http.StatusUnauthorized || r.Code() != "UNAUTHENTICATED" {
			t.Errorf("%s: %d %s", name, r.Status, r.Raw)
		}
	}
}

func TestAnonymousTokensWhereNotAllowed(t *testing.T) {
	e := newEnv(t)
	owner, _ := e.c.Account()
	pollID, _ := e.c.Poll(owner, map[string]any{"allow_anonymous": true})
	anon := e.c.Do("POST", "/v1/auth/anonymous", "", nil).Must(t, http.StatusOK).Str("access_token")
	for _, tc := range []struct {
		method, path string
		body         any
	}{
		{"GET", "/v1/users/me", nil},
		{"GET", "/v1/polls", nil},
		{"PATCH", "/v1/polls/" + pollID, map[string]any{"status": "closed"}},
	} {
		if r := e.c.Do(tc.method, tc.path, anon, tc.body); r.Status != http.StatusForbidden || r.Code() != "FORBIDDEN" {
			t.Errorf("anonymous %s %s: %d %s", tc.method, tc.path, r.Status, r.Raw)
		}
	}
	if s := e.c.Do("GET", "/v1/polls/"+pollID, "", nil).Must(t, http.StatusOK).Str("status"); s != "active" {
		t.Fatalf("poll is %s after an anonymous close", s)
	}
}

func TestNonOwnerCannotEdit(t *testing.T) {
	e := newEnv(t)
	owner, _ := e.c.Account()
	other, _ := e.c.Account()
	pollID, opts := e.c.Poll(owner, nil)
	path := "/v1/polls/" + pollID
	for name, body := range map[string]any{
		"close":           map[string]any{"status": "closed"},
		"replace options": map[string]any{"options": []map[string]any{{"text": "p"}, {"text": "q"}}},
		"settings":        map[string]any{"settings": map[string]any{"show_results_during_voting": false}},
		"end time":        map[string]any{"end_time": time.Now().Add(time.Minute).UTC().Format(time.RFC3339)},
	} {
		if r := e.c.Do("PATCH", path, other, body); r.Status != http.StatusForbidden || r.Code() != "NOT_POLL_OWNER" {
			t.Errorf("non-owner %s: %d %s", name, r.Status, r.Raw)
		}
	}
	// There is no delete: the method is refused for everyone.
	if r := e.c.Do("DELETE", path, other, nil); r.Status != http.StatusMethodNotAllowed {
		t.Errorf("delete: %d %s", r.Status, r.Raw)
	}
	p := e.c.Do("GET", path, "", nil).Must(t, http.StatusOK)
	got, _ := p.Body["options"].([]any)
	if p.Str("status") != "active" || len(got) != len(opts) || p.Body["settings"].(map[string]any)["show_results_during_voting"] != true {
		t.Fatalf("a non-owner changed the poll: %s", p.Raw)
	}
}

func TestOtherVotersRequestStatusIsNotFound(t *testing.T) {
	e := newEnv(t)
	owner, _ := e.c.Account()
	pollID, opts := e.c.Poll(owner, nil)
	voter, _ := e.c.Account()
	other, _ := e.c.Account()
	rid := e.c.Do("POST", "/v1/polls/"+pollID+"/votes", voter, map[string]any{"option_id": opts[0]}).
		Must(t, http.StatusOK).Str("request_id")
	path := "/v1/polls/" + pollID + "/votes/requests/" + rid
	if st := e.c.Do("GET", path, voter, nil).Must(t, http.StatusOK).Str("state"); st != "completed" {
		t.Fatalf("the voter's own request: %s", st)
	}
	for name, tok := range map[string]string{"another voter": other, "the poll's owner": owner} {
		r := e.c.Do("GET", path, tok, nil)
		if r.Status != http.StatusNotFound || r.Code() != "REQUEST_NOT_FOUND" || strings.Contains(string(r.Raw), opts[0]) {
			t.Errorf("%s reads the voter's request: %d %s", name, r.Status, r.Raw)
		}
	}
}

func TestOversizedInput(t *testing.T) {
	e := newEnv(t)
	owner, _ := e.c.Account()
	// A body past 1 MiB sent without a Content-Length (chunked) is cut off
	// as it is read.
	big := `{"title":"t","options":[{"text":"a"},{"text":"b"}],"pad":"` + strings.Repeat("x", 1<<20) + `"}`
	req, _ := http.NewRequest("POST", e.c.Base+"/v1/polls", io.NopCloser(strings.NewReader(big)))
	req.ContentLength = -1
	req.Header.Set("Authorization", "Bearer "+owner)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(raw), "BODY_TOO_LARGE") {
		t.Fatalf("chunked 1 MiB body: %d %.200s", resp.StatusCode, raw)
	}
	if r := e.c.Do("POST", "/v1/polls", owner, map[string]any{"title": "t", "options": []map[string]any{{"text": "a"}, {"text": "b"}}},
		"Idempotency-Key", strings.Repeat("k", 256)); r.Status != 400 || r.Code() != "VALIDATION_FAILED" {
		t.Fatalf("256-character Idempotency-Key: %d %s", r.Status, r.Raw)
	}
	if n := len(e.c.Do("GET", "/v1/polls", owner, nil).Must(t, http.StatusOK).Body["polls"].([]any)); n != 0 {
		t.Fatalf("oversized requests created %d polls", n)
	}
}

func TestJSONShapeAttacks(t *testing.T) {
	e := newEnv(t)
	owner, ownerID := e.c.Account()
	pollID, opts := e.c.Poll(owner, nil)
	voter, _ := e.c.Account()
	victim, victimID := e.c.Account()
	two := `"options":[{"text":"a"},{"text":"b"}]`
	for name, tc := range map[string]struct{ path, token, body string }{
		"duplicate title":           {"/v1/polls", owner, `{"title":"harmless",` + two + `,"title":"other"}`},
		"duplicate in another case": {"/v1/polls", owner, `{"title":"harmless",` + two + `,"TITLE":"other"}`},
		"duplicate in an option":    {"/v1/polls", owner, `{"title":"t","options":[{"text":"a","text":"c"},{"text":"b"}]}`},
		"duplicate option_id":       {"/v1/polls/" + pollID + "/votes", voter, `{"option_id":"` + opts[0] + `","option_id":"` + opts[1] + `"}`},
		"duplicate email":           {"/v1/auth/register", "", `{"email":"a@b.co","username":"dupkey","password":"longenough","Email":"c@d.co"}`},
		"nested 33 deep":            {"/v1/polls", owner, `{"title":"t",` + two + `,"meta":` + strings.Repeat("[", 32) + strings.Repeat("]", 32) + `}`},
	} {
		r := e.c.Do("POST", tc.path, tc.token, tc.body)
		if r.Status != http.StatusBadRequest || r.Code() != "VALIDATION_FAILED" || r.Body["error"].(map[string]any)["field"] != "body" {
			t.Errorf("%s: %d %s", name, r.Status, r.Raw)
		}
	}
	if rows := e.voteRows(t, pollID); len(rows) != 0 {
		t.Fatalf("refused votes wrote %d rows", len(rows))
	}
	// Nesting within the bound is fine.
	e.c.Do("POST", "/v1/polls", owner, `{"title":"nested",`+two+`,"meta":`+strings.Repeat("[", 31)+strings.Repeat("]", 31)+`}`).
		Must(t, http.StatusCreated)

	// Unknown fields are ignored and cannot set what the server decides:
	// owner, id, status, frozen options, the voter.
	fixedID := "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
	r := e.c.Do("POST", "/v1/polls", owner, `{"title":"mass",`+two+`,"creator_id":"`+victimID+`","poll_id":"`+fixedID+
		`","status":"closed","closed_at":"2020-01-01T00:00:00Z","options_frozen":true}`).Must(t, http.StatusCreated)
	if r.Str("creator_id") != ownerID || r.Str("poll_id") == fixedID || r.Str("status") != "active" {
		t.Fatalf("unknown fields took effect: %s", r.Raw)
	}
	mass := r.Str("poll_id")
	e.c.Do("PATCH", "/v1/polls/"+mass, owner, map[string]any{"options": []map[string]any{{"text": "p"}, {"text": "q"}}}).
		Must(t, http.StatusOK)
	e.c.Do("POST", "/v1/polls/"+pollID+"/votes", voter, `{"option_id":"`+opts[0]+`","voter_id":"`+victimID+`","user_id":"`+victimID+`"}`).
		Must(t, http.StatusOK)
	if mine := e.c.Do("GET", "/v1/polls/"+pollID+"/votes/me", victim, nil).Must(t, http.StatusOK); mine.Body["has_voted"] != false {
		t.Fatalf("a vote landed on the account named in an unknown field: %s", mine.Raw)
	}
}
