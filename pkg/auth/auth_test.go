package auth

import (
	"errors"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/id"
)

func TestTokens(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	tk := NewTokens("secret-secret-secret-secret-12345", time.Hour, clock)
	p := Principal{UserID: id.New(), Anonymous: true}
	tok, err := tk.Issue(p)
	if err != nil {
		t.Fatal(err)
	}
	got, err := tk.Verify(tok.AccessToken)
	p.ExpiresAt = now.Add(time.Hour)
	if err != nil || got.UserID != p.UserID || got.Anonymous != p.Anonymous || !got.ExpiresAt.Equal(p.ExpiresAt) {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": p.UserID.String(), "iss": "tally",
		"exp": now.Add(time.Hour).Unix()}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	other := NewTokens("another-secret-another-secret-123", time.Hour, clock)
	foreign, _ := other.Issue(p)
	later := NewTokens("secret-secret-secret-secret-12345", time.Hour, func() time.Time { return now.Add(2 * time.Hour) })
	for name, check := range map[string]func() error{
		"alg none":  func() error { _, err := tk.Verify(none); return err },
		"foreign":   func() error { _, err := tk.Verify(foreign.AccessToken); return err },
		"expired":   func() error { _, err := later.Verify(tok.AccessToken); return err },
		"malformed": func() error { _, err := tk.Verify("a.b.c"); return err },
		"empty":     func() error { _, err := tk.Verify(""); return err },
	} {
		if err := check(); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestRegistrationValidate(t *testing.T) {
	tests := []struct {
		name  string
		r     Registration
		field string
	}{
		{"ok", Registration{Email: " Ada@Example.com ", Username: "ada_99", Password: "12345678"}, ""},
		{"bad email", Registration{Email: "ada", Username: "ada", Password: "12345678"}, "email"},
		{"short username", Registration{Email: "a@b.co", Username: "ad", Password: "12345678"}, "username"},
		{"upper username", Registration{Email: "a@b.co", Username: "Ada", Password: "12345678"}, "username"},
		{"long username", Registration{Email: "a@b.co", Username: "a123456789012345678901234567890123", Password: "12345678"}, "username"},
		{"short password", Registration{Email: "a@b.co", Username: "ada", Password: "1234567"}, "password"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.r.Normalize()
			err := tc.r.Validate()
			var ve *apperr.ValidationError
			if tc.field == "" && err != nil || tc.field != "" && (!errors.As(err, &ve) || ve.Field != tc.field) {
				t.Fatalf("got %v, want field %q", err, tc.field)
			}
		})
	}
}
