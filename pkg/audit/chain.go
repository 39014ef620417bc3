package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tally-vote/tally/pkg/id"
)

// The owner-action chain. Each poll's owner actions form a hash chain:
// entry n stores seq n, the hash of entry n-1 (32 zero bytes for n = 1) and
// its own hash, SHA-256 over a canonical encoding of the entry (Canonical).
// Editing any stored field of an entry changes its hash, which no longer
// matches the hash stored in it nor the prev_hash of the next entry;
// deleting an entry leaves a gap in seq or a broken link; deleting the last
// entries is only visible against a head (seq and hash) kept elsewhere: the
// anchor (docs/architecture.md, "The audit chain").

// HashSize is the size of an entry hash (SHA-256).
const HashSize = sha256.Size

// chainDomain is hashed first, so an entry hash is never the hash of
// anything else Tally signs or hashes (receipts, ledger leaves).
const chainDomain = "tally.audit.chain.v1"

// Entry is one link of a poll's owner-action chain.
type Entry struct {
	PollID id.ID
	Seq    int64
	// At is the time of the entry, at millisecond precision (the precision
	// the store keeps and the hash covers).
	At      time.Time
	Kind    string
	ActorID id.ID
	// Detail is the JSON object exactly as stored; the hash covers these
	// bytes, so no re-encoding is ever needed to verify.
	Detail   []byte
	PrevHash []byte
	Hash     []byte
}

// Head is the last link of a chain: what an anchor records.
type Head struct {
	Seq  int64
	Hash []byte
}

// String is seq:hex(hash), the form the CLI takes and prints.
func (h Head) String() string { return fmt.Sprintf("%d:%s", h.Seq, hex.EncodeToString(h.Hash)) }

// ParseHead reads seq:hex(hash).
func ParseHead(s string) (Head, error) {
	seq, hx, ok := strings.Cut(s, ":")
	if !ok {
		return Head{}, fmt.Errorf("parse head %q: want seq:hash", s)
	}
	n, err := strconv.ParseInt(seq, 10, 64)
	if err != nil || n < 1 {
		return Head{}, fmt.Errorf("parse head %q: seq must be a positive integer", s)
	}
	h, err := hex.DecodeString(hx)
	if err != nil || len(h) != HashSize {
		return Head{}, fmt.Errorf("parse head %q: hash must be %d bytes in hex", s, HashSize)
	}
	return Head{Seq: n, Hash: h}, nil
}

// Genesis is the prev hash of a chain's first entry.
func Genesis() []byte { return make([]byte, HashSize) }

// Canonical is the byte string an entry's hash covers: a domain tag, then
// poll id (16 bytes), seq (8 bytes, big endian), at (Unix milliseconds, 8
// bytes, big endian), kind, actor id (16 bytes), detail and prev hash, the
// variable-length fields each preceded by their length (4 bytes, big
// endian). Fixed widths and length prefixes make the encoding injective: no
// two different entries encode alike.
func Canonical(pollID id.ID, seq int64, at time.Time, kind string, actor id.ID, detail, prevHash []byte) []byte {
	var b bytes.Buffer
	lp := func(p []byte) {
		_ = binary.Write(&b, binary.BigEndian, uint32(len(p)))
		b.Write(p)
	}
	lp([]byte(chainDomain))
	b.Write(pollID[:])
	_ = binary.Write(&b, binary.BigEndian, seq)
	_ = binary.Write(&b, binary.BigEndian, at.UnixMilli())
	lp([]byte(kind))
	b.Write(actor[:])
	lp(detail)
	lp(prevHash)
	return b.Bytes()
}

// ComputeHash is the hash an entry must carry.
func ComputeHash(e Entry) []byte {
	sum := sha256.Sum256(Canonical(e.PollID, e.Seq, e.At, e.Kind, e.ActorID, e.Detail, e.PrevHash))
	return sum[:]
}

// Link makes the entry that follows head (the zero Head: the first entry)
// and seals it with its hash.
func Link(head Head, pollID id.ID, at time.Time, kind string, actor id.ID, detail []byte) Entry {
	prev := head.Hash
	if head.Seq == 0 {
		prev = Genesis()
	}
	e := Entry{PollID: pollID, Seq: head.Seq + 1, At: at.UTC().Truncate(time.Millisecond), Kind: kind,
		ActorID: actor, Detail: detail, PrevHash: append([]byte(nil), prev...)}
	e.Hash = ComputeHash(e)
	return e
}

// HeadOf is the head a chain ends in (the zero Head for none).
func HeadOf(entries []Entry) Head {
	if len(entries) == 0 {
		return Head{}
	}
	last := entries[len(entries)-1]
	return Head{Seq: last.Seq, Hash: last.Hash}
}

// ErrChainBroken is what every verification failure wraps.
var ErrChainBroken = errors.New("audit chain broken")

// ChainError says where and how a chain failed verification.
type ChainError struct {
	Seq    int64 // the entry (or the anchored seq) at fault
	Reason string
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("audit chain broken at seq %d: %s", e.Seq, e.Reason)
}

// Unwrap makes every ChainError an ErrChainBroken.
func (e *ChainError) Unwrap() error { return ErrChainBroken }

// Verify checks a poll's whole chain, entries in seq order from seq 1: seqs
// without gaps, each entry's prev hash the previous entry's hash, each hash
// recomputed from the entry's fields. With anchor (the head recorded
// elsewhere, e.g. in the certified tally), the chain must reach the
// anchored seq and carry the anchored hash there: that is what detects the
// deletion of the last entries, which leaves a shorter but valid chain.
// Entries past the anchor (actions after the anchor was taken) are checked
// like the rest. It returns the chain's head.
func Verify(pollID id.ID, entries []Entry, anchor *Head) (Head, error) {
	prev := Genesis()
	for i, e := range entries {
		want := int64(i) + 1
		switch {
		case e.PollID != pollID:
			return Head{}, &ChainError{Seq: e.Seq, Reason: fmt.Sprintf("entry belongs to poll %s", e.PollID)}
		case e.Seq > want:
			return Head{}, &ChainError{Seq: want, Reason: fmt.Sprintf("entry missing (next stored is seq %d)", e.Seq)}
		case e.Seq < want:
			return Head{}, &ChainError{Seq: e.Seq, Reason: "entry out of order or repeated"}
		case !bytes.Equal(e.PrevHash, prev):
			return Head{}, &ChainError{Seq: e.Seq, Reason: "prev_hash does not match the previous entry's hash"}
		case !bytes.Equal(e.Hash, ComputeHash(e)):
			return Head{}, &ChainError{Seq: e.Seq, Reason: "hash does not match the entry's contents (entry edited)"}
		}
		prev = e.Hash
	}
	head := HeadOf(entries)
	if anchor != nil && anchor.Seq > 0 {
		if anchor.Seq > head.Seq {
			return Head{}, &ChainError{Seq: anchor.Seq,
				Reason: fmt.Sprintf("chain ends at seq %d before the anchored head (entries deleted)", head.Seq)}
		}
		if !bytes.Equal(entries[anchor.Seq-1].Hash, anchor.Hash) {
			return Head{}, &ChainError{Seq: anchor.Seq, Reason: "hash differs from the anchored head"}
		}
	}
	return head, nil
}
