package anonaccess

import (
	"crypto/hmac"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/tally-vote/tally/pkg/id"
)

// An invite code is 18 bytes written as 24 characters of URL-safe base64
// (no padding): 12 random bytes (96 bits, the part nobody can guess) and a
// 6-byte tag, an HMAC of the poll and the random part. The tag lets the vote
// path refuse a code this server never minted for this poll without asking
// Cassandra, and admit one it did mint while Cassandra cannot answer. The
// code itself is never stored: the store holds codeHash, a keyed hash.
const (
	codeRandomBytes = 12
	codeTagBytes    = 6
	codeBytes       = codeRandomBytes + codeTagBytes
	// CodeLen is the length of an invite code in characters.
	CodeLen = codeBytes * 4 / 3
)

// code is a parsed invite code.
type code [codeBytes]byte

// newCode mints a code for a poll.
func (k keys) newCode(pollID id.ID) (string, error) {
	var c code
	if _, err := rand.Read(c[:codeRandomBytes]); err != nil {
		return "", fmt.Errorf("read random: %w", err)
	}
	copy(c[codeRandomBytes:], sum(k.tagKey, pollID[:], c[:codeRandomBytes]))
	return base64.RawURLEncoding.EncodeToString(c[:]), nil
}

// isCodeChar reports whether b is in the URL-safe base64 alphabet.
func isCodeChar(b byte) bool {
	return 'A' <= b && b <= 'Z' || 'a' <= b && b <= 'z' || '0' <= b && b <= '9' || b == '-' || b == '_'
}

// parseCode reads the X-Invite-Code header's value: exactly CodeLen
// characters of the URL-safe alphabet, surrounding spaces and tabs ignored.
// The alphabet is checked before decoding because the decoder skips line
// breaks, which would let other spellings of one code through.
func parseCode(s string) (code, bool) {
	var c code
	s = strings.Trim(s, " \t")
	if len(s) != CodeLen {
		return c, false
	}
	for i := 0; i < len(s); i++ {
		if !isCodeChar(s[i]) {
			return c, false
		}
	}
	n, err := base64.RawURLEncoding.Strict().Decode(c[:], []byte(s))
	return c, err == nil && n == codeBytes
}

// minted reports whether c carries this poll's tag: whether this server
// (with this secret) minted it for pollID.
func (k keys) minted(pollID id.ID, c code) bool {
	want := sum(k.tagKey, pollID[:], c[:codeRandomBytes])[:codeTagBytes]
	return hmac.Equal(want, c[codeRandomBytes:])
}

// codeHash is what the store keeps of a code: 32 bytes of HMAC over the
// poll and the code.
func (k keys) codeHash(pollID id.ID, c code) []byte {
	return sum(k.hashKey, pollID[:], c[:])
}

// inviteVoter is the voter id of a code, derived from its stored hash so
// that the owner's counts can find the ballots of the codes they minted.
func (k keys) inviteVoter(pollID id.ID, hash []byte) id.ID {
	return voterID(sum(k.inviteKey, pollID[:], hash))
}
