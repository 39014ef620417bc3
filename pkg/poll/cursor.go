package poll

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/id"
)

// ErrBadCursor: a list cursor this API did not issue to this caller.
var ErrBadCursor = apperr.Invalid("cursor", "is not a cursor this API returned")

// Cursors seal Cassandra's paging state for clients: the state is opaque
// driver data, and a forged one reaches the server as a protocol error. A
// sealed cursor carries an HMAC of the caller and the state, so a cursor
// the API never issued (or issued to someone else) is a 400 before any
// query runs.
type Cursors struct{ key []byte }

// NewCursors seals with a key derived from secret.
func NewCursors(secret []byte) Cursors {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("tally poll list cursors"))
	return Cursors{key: m.Sum(nil)}
}

// maxPagingState bounds what a cursor may carry.
const maxPagingState = 4096

var b64 = base64.RawURLEncoding

func (c Cursors) mac(owner id.ID, state []byte) []byte {
	m := hmac.New(sha256.New, c.key)
	m.Write(owner[:])
	m.Write(state)
	return m.Sum(nil)[:16]
}

// Seal turns a paging state into a cursor for owner; empty stays empty.
func (c Cursors) Seal(owner id.ID, state []byte) string {
	if len(state) == 0 {
		return ""
	}
	return b64.EncodeToString(state) + "." + b64.EncodeToString(c.mac(owner, state))
}

// Open checks a cursor and returns its paging state; "" is the first page.
func (c Cursors) Open(owner id.ID, cursor string) ([]byte, error) {
	if cursor == "" {
		return nil, nil
	}
	enc, sig, ok := strings.Cut(cursor, ".")
	if !ok || len(enc) > b64.EncodedLen(maxPagingState) {
		return nil, ErrBadCursor
	}
	state, err1 := b64.DecodeString(enc)
	mac, err2 := b64.DecodeString(sig)
	if err1 != nil || err2 != nil || len(state) == 0 || !hmac.Equal(mac, c.mac(owner, state)) {
		return nil, ErrBadCursor
	}
	// The decoder skips line breaks and the unused bits of a last
	// character, so other strings decode to an issued cursor's bytes; only
	// the issued string itself is a cursor.
	if c.Seal(owner, state) != cursor {
		return nil, ErrBadCursor
	}
	return state, nil
}
