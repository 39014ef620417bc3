package vote

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	stdhash "hash"
	"sync"

	"github.com/tally-vote/tally/pkg/id"
)

// requestNamespace seeds deterministic request ids.
var requestNamespace = id.ID{0x6b, 0x1e, 0x0f, 0x4a, 0x2c, 0x55, 0x4d, 0x1b, 0x9a, 0x61, 0x0e, 0x3c, 0x7d, 0x20, 0x44, 0x91}

// RequestIDs issues the ids of vote requests and recognises the ones it
// issued, without any stored state: an id is 8 bytes of nonce and 8 of an
// HMAC of poll, voter and nonce (a version-8 UUID). With an Idempotency-Key
// the nonce is derived from poll, voter and key, so every retry carries the
// same id and the worker recognises a retry by the id stored in the ballot
// row; without one it is random. A request id the server never issued (one
// guessed, or derived by a client from a key it never sent) fails Issued,
// so its status is 404 even while Redis, which remembers accepted
// requests, cannot answer.
type RequestIDs struct {
	key []byte
	// macs holds HMACs keyed with key, reset after use: keying one costs
	// five allocations, on every vote.
	macs *sync.Pool
}

// NewRequestIDs derives the ids' key from secret. An empty secret gives
// unsealed ids (name-based v5 with a key, random without), which Issued
// cannot tell from forged ones.
func NewRequestIDs(secret []byte) RequestIDs {
	if len(secret) == 0 {
		return RequestIDs{}
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("tally vote request ids"))
	key := m.Sum(nil)
	return RequestIDs{key: key, macs: &sync.Pool{New: func() any { return hmac.New(sha256.New, key) }}}
}

// New returns the id of a request by voterID on pollID with key.
func (r RequestIDs) New(pollID, voterID id.ID, key string) id.ID {
	var id id.ID
	if key == "" {
		_, _ = rand.Read(id[:])
	} else {
		h := sha1.New()
		h.Write(requestNamespace[:])
		h.Write(pollID[:])
		h.Write(voterID[:])
		h.Write([]byte(key))
		copy(id[:], h.Sum(nil))
	}
	if r.key == nil {
		id[6] = (id[6] & 0x0f) | 0x50
		if key == "" {
			id[6] = (id[6] & 0x0f) | 0x40
		}
		id[8] = (id[8] & 0x3f) | 0x80
		return id
	}
	id[6] = (id[6] & 0x0f) | 0x80 // version 8: the layout is Tally's own
	copy(id[8:], r.mac(pollID, voterID, id))
	id[8] = (id[8] & 0x3f) | 0x80
	return id
}

// Issued reports whether id is one New could have returned for this poll
// and voter. Without a key every id passes.
func (r RequestIDs) Issued(pollID, voterID, id id.ID) bool {
	if r.key == nil {
		return true
	}
	if id.Version() != 8 {
		return false
	}
	want := r.mac(pollID, voterID, id)
	want[0] = (want[0] & 0x3f) | 0x80
	return hmac.Equal(want, id[8:])
}

func (r RequestIDs) mac(pollID, voterID, id id.ID) []byte {
	m := r.macs.Get().(stdhash.Hash)
	m.Write(pollID[:])
	m.Write(voterID[:])
	m.Write(id[:8])
	sum := m.Sum(nil)[:8]
	m.Reset()
	r.macs.Put(m)
	return sum
}

// RequestID is the unsealed id New gives without a key: what a Service
// built without Deps.RequestKey issues (tests and tools).
func RequestID(pollID, voterID id.ID, key string) id.ID {
	return RequestIDs{}.New(pollID, voterID, key)
}
