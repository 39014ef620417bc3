package auth

import (
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// The password limits count characters, as the SPEC and the OpenAPI
// document (maxLength) do, not bytes.
func TestPasswordLimitsCountCharacters(t *testing.T) {
	for _, tc := range []struct {
		name, pw string
		ok       bool
	}{
		{"8 ascii", "abcdefgh", true},
		{"7 ascii", "abcdefg", false},
		{"8 three-byte characters", strings.Repeat("語", 8), true},
		{"72 ascii", strings.Repeat("a", 72), true},
		{"73 ascii", strings.Repeat("a", 73), false},
		{"72 two-byte characters (144 bytes)", strings.Repeat("é", 72), true},
		{"72 four-byte characters (288 bytes)", strings.Repeat("🗳", 72), true},
		{"73 two-byte characters", strings.Repeat("é", 73), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Registration{Email: "a@example.test", Username: "ada", Password: tc.pw}.Validate()
			if (err == nil) != tc.ok {
				t.Fatalf("Validate(%d chars, %d bytes) = %v, want ok=%v", len([]rune(tc.pw)), len(tc.pw), err, tc.ok)
			}
		})
	}
}

// Every character of a long password counts: two passwords that differ
// only after bcrypt's 72 bytes must not match each other's hash, and a
// password of at most 72 bytes is hashed as before.
func TestBcryptInputUsesEveryCharacter(t *testing.T) {
	a := strings.Repeat("é", 40) + "a" // 81 bytes
	b := strings.Repeat("é", 40) + "b"
	h, err := bcrypt.GenerateFromPassword(bcryptInput(a), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if bcrypt.CompareHashAndPassword(h, bcryptInput(a)) != nil {
		t.Fatal("a long password does not match its own hash")
	}
	if bcrypt.CompareHashAndPassword(h, bcryptInput(b)) == nil {
		t.Fatal("two long passwords that differ past byte 72 share a hash")
	}
	short := "correct horse battery"
	old, _ := bcrypt.GenerateFromPassword([]byte(short), bcrypt.MinCost)
	if bcrypt.CompareHashAndPassword(old, bcryptInput(short)) != nil {
		t.Fatal("a hash stored before the pre-hash rule no longer matches")
	}
}
