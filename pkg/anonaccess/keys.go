package anonaccess

import (
	"crypto/hmac"
	"crypto/sha256"

	"github.com/tally-vote/tally/pkg/id"
)

// keys are the HMAC keys of anonymous access, each derived from the one
// configured secret under its own label, so a value made for one purpose
// (a code's tag, its stored hash, a voter id) says nothing about another.
type keys struct {
	tagKey       []byte // the tag that makes a code checkable without a read
	hashKey      []byte // the stored form of a code
	inviteKey    []byte // the voter id of a code
	challengeKey []byte // the signature of a proof-of-work challenge
	powKey       []byte // the voter id of a solved challenge
}

func deriveKeys(secret []byte) keys {
	d := func(label string) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write([]byte("tally anonymous access: " + label))
		return m.Sum(nil)
	}
	return keys{tagKey: d("invite code tag"), hashKey: d("invite code hash"), inviteKey: d("invite voter"),
		challengeKey: d("pow challenge"), powKey: d("pow voter")}
}

// sum is HMAC-SHA256 under key of parts written one after another. Every
// caller passes parts of fixed length, so the concatenation is unambiguous.
func sum(key []byte, parts ...[]byte) []byte {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

// voterID turns a keyed hash into a UUID: version 8 (a layout of Tally's
// own), RFC 4122 variant, 122 bits of the hash. Voter ids derived so never
// collide with the random (version 4) ids of accounts and anonymous tokens.
func voterID(h []byte) id.ID {
	var id id.ID
	copy(id[:], h)
	id[6] = (id[6] & 0x0f) | 0x80
	id[8] = (id[8] & 0x3f) | 0x80
	return id
}
