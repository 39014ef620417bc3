package vote

import (
	"crypto/sha1"

	"github.com/gocql/gocql"
)

// requestNamespace seeds deterministic request ids.
var requestNamespace = gocql.UUID{0x6b, 0x1e, 0x0f, 0x4a, 0x2c, 0x55, 0x4d, 0x1b, 0x9a, 0x61, 0x0e, 0x3c, 0x7d, 0x20, 0x44, 0x91}

// RequestID is the id of a vote request. With an Idempotency-Key it is a
// name-based (v5-style) UUID of poll, voter and key, so every retry of the
// request carries the same id without any shared state; the worker then
// recognises a retry by the id stored in the ballot row. Without a key each
// request is new.
func RequestID(pollID, voterID gocql.UUID, key string) gocql.UUID {
	if key == "" {
		return gocql.MustRandomUUID()
	}
	h := sha1.New()
	h.Write(requestNamespace[:])
	h.Write(pollID[:])
	h.Write(voterID[:])
	h.Write([]byte(key))
	var id gocql.UUID
	copy(id[:], h.Sum(nil))
	id[6] = (id[6] & 0x0f) | 0x50
	id[8] = (id[8] & 0x3f) | 0x80
	return id
}
