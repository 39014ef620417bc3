package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/id"
)

const fuzzSecret = "fuzz-secret-0123456789abcdef0123456789"

var fuzzNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// signedByKey is an independent statement of what Verify must demand: three
// segments, a header naming HS256, an HMAC-SHA256 of the first two under
// the key, issuer "tally", an expiry after now, no not-before after now,
// and a UUID subject. It decodes like golang-jwt (unpadded base64url, which
// skips line breaks) but shares no code with it.
func signedByKey(raw string, secret []byte, now time.Time) (sub string, anon bool, ok bool) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return "", false, false
	}
	dec := base64.RawURLEncoding
	hb, err1 := dec.DecodeString(parts[0])
	pb, err2 := dec.DecodeString(parts[1])
	sig, err3 := dec.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil {
		return "", false, false
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if json.Unmarshal(hb, &h) != nil || h.Alg != "HS256" {
		return "", false, false
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(parts[0] + "." + parts[1]))
	if !hmac.Equal(sig, m.Sum(nil)) {
		return "", false, false
	}
	var c struct {
		Iss  string   `json:"iss"`
		Sub  string   `json:"sub"`
		Exp  *float64 `json:"exp"`
		Nbf  *float64 `json:"nbf"`
		Anon bool     `json:"anon"`
	}
	if json.Unmarshal(pb, &c) != nil || c.Iss != issuer || c.Exp == nil || time.Unix(int64(*c.Exp), 0).Before(now) ||
		c.Nbf != nil && time.Unix(int64(*c.Nbf), 0).After(now) {
		return "", false, false
	}
	if _, err := id.Parse(c.Sub); err != nil {
		return "", false, false
	}
	return c.Sub, c.Anon, true
}

// FuzzVerify: nothing but a token signed with the key, with the right
// algorithm, issuer and times, verifies, and what it yields is its claims.
func FuzzVerify(f *testing.F) {
	tk := NewTokens(fuzzSecret, time.Hour, func() time.Time { return fuzzNow })
	good, _ := tk.Issue(Principal{UserID: id.New()})
	f.Add(good.AccessToken)
	f.Add("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJpc3MiOiJ0YWxseSIsInN1YiI6IjZiYTdiODEwLTlkYWQtMTFkMS04MGI0LTAwYzA0ZmQ0MzBjOCIsImV4cCI6NDEwMjQ0NDgwMH0.")
	f.Add("a.b.c")
	f.Add("")
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := tk.Verify(raw)
		sub, anon, ok := signedByKey(raw, []byte(fuzzSecret), fuzzNow)
		if err == nil && !ok {
			t.Fatalf("verified a token the key did not sign validly: %q", raw)
		}
		if err == nil && (p.UserID.String() != strings.ToLower(sub) && !sameUUID(p.UserID, sub) || p.Anonymous != anon) {
			t.Fatalf("verified %q as %+v, claims say sub %q anon %v", raw, p, sub, anon)
		}
	})
}

func sameUUID(u id.ID, s string) bool {
	u, err := id.Parse(s)
	return err == nil && u == u
}

// FuzzTokenMutation: a token the service issued verifies, for its principal
// only while it is valid, and one changed byte anywhere makes it fail
// unless the change decodes to the very same signed bytes.
func FuzzTokenMutation(f *testing.F) {
	f.Add([]byte("principal-16byte"), true, int64(0), uint16(10), byte('x'))
	f.Add([]byte{}, false, int64(3601), uint16(200), byte('.'))
	f.Add([]byte("x"), false, int64(-1), uint16(0), byte('e'))
	f.Fuzz(func(t *testing.T, id []byte, anon bool, skew int64, at uint16, b byte) {
		var p Principal
		copy(p.UserID[:], id)
		p.Anonymous = anon
		issuer := NewTokens(fuzzSecret, time.Hour, func() time.Time { return fuzzNow })
		tok, err := issuer.Issue(p)
		if err != nil {
			t.Fatal(err)
		}
		raw := tok.AccessToken
		// Verified at issue time + skew seconds: valid from issue until
		// expiry (exp is exclusive), never before issue would matter only
		// with nbf, which Tally does not set.
		at2 := fuzzNow.Add(time.Duration(skew%7200) * time.Second)
		verifier := NewTokens(fuzzSecret, time.Hour, func() time.Time { return at2 })
		got, err := verifier.Verify(raw)
		valid := at2.Before(fuzzNow.Add(time.Hour))
		if valid != (err == nil) || valid && (got.UserID != p.UserID || got.Anonymous != p.Anonymous) {
			t.Fatalf("at %v: %+v %v (issued %v)", at2.Sub(fuzzNow), got, err, p)
		}
		if other := NewTokens(fuzzSecret+"x", time.Hour, func() time.Time { return fuzzNow }); true {
			if _, err := other.Verify(raw); err == nil {
				t.Fatal("verified under another key")
			}
		}
		i := int(at) % len(raw)
		m := raw[:i] + string([]byte{b}) + raw[i+1:]
		if m == raw {
			return
		}
		if _, err := issuer.Verify(m); err == nil {
			if _, _, ok := signedByKey(m, []byte(fuzzSecret), fuzzNow); !ok || !sameSigned(m, raw) {
				t.Fatalf("mutated token verified: %q (issued %q)", m, raw)
			}
		}
	})
}

// sameSigned reports whether two tokens carry the same signing input and
// the same signature bytes (base64 lets a few strings decode alike).
func sameSigned(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	if len(pa) != 3 || len(pb) != 3 || pa[0] != pb[0] || pa[1] != pb[1] {
		return false
	}
	sa, e1 := base64.RawURLEncoding.DecodeString(pa[2])
	sb, e2 := base64.RawURLEncoding.DecodeString(pb[2])
	return e1 == nil && e2 == nil && string(sa) == string(sb)
}
