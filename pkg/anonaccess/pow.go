package anonaccess

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
)

// A proof-of-work challenge is stateless: 60 bytes written as 80
// characters of URL-safe base64 (no padding), holding
//
//	version (1) | poll id (16) | expiry, Unix seconds (8) | difficulty (1) | nonce (18) | tag (16)
//
// where the tag is an HMAC of everything before it. The server stores
// nothing when it issues one; it recognises its own by the tag. A voter
// solves it by finding a solution whose SHA-256 of "<challenge>:<solution>"
// starts with difficulty zero bits, and one solved challenge is one voter.
const (
	challengeVersion    = 1
	challengeNonceBytes = 18
	challengeTagBytes   = 16
	challengePayload    = 1 + 16 + 8 + 1 + challengeNonceBytes
	challengeBytes      = challengePayload + challengeTagBytes
	// ChallengeLen is the length of a challenge in characters.
	ChallengeLen = challengeBytes * 4 / 3
	// MaxSolutionLen bounds a solution's length.
	MaxSolutionLen = 64
	// MaxDifficulty is the most leading zero bits a challenge may ask for.
	MaxDifficulty = 64
)

// Challenge is an issued challenge and what a client needs to solve it.
type Challenge struct {
	Value      string
	Difficulty int
	ExpiresAt  time.Time
}

// challenge is a parsed, signature-checked challenge.
type challenge struct {
	raw        string // as sent: the bytes the work is computed over
	pollID     id.ID
	expiresAt  time.Time
	difficulty int
	payload    []byte
}

// newChallenge issues a challenge for pollID, valid until expires.
func (k keys) newChallenge(pollID id.ID, expires time.Time, difficulty int) (Challenge, error) {
	var b [challengeBytes]byte
	b[0] = challengeVersion
	copy(b[1:17], pollID[:])
	binary.BigEndian.PutUint64(b[17:25], uint64(expires.Unix()))
	b[25] = byte(difficulty)
	if _, err := rand.Read(b[26:challengePayload]); err != nil {
		return Challenge{}, fmt.Errorf("read random: %w", err)
	}
	copy(b[challengePayload:], sum(k.challengeKey, b[:challengePayload]))
	return Challenge{Value: base64.RawURLEncoding.EncodeToString(b[:]), Difficulty: difficulty,
		ExpiresAt: time.Unix(expires.Unix(), 0).UTC()}, nil
}

// isSolutionChar reports whether b may appear in a solution: RFC 3986's
// unreserved characters, which need no escaping anywhere.
func isSolutionChar(b byte) bool {
	return isCodeChar(b) || b == '.' || b == '~'
}

// parseProof reads the X-Proof-Of-Work header's value,
// "<challenge>:<solution>", surrounding spaces and tabs ignored. It checks
// the shape only; verify checks the rest.
func parseProof(s string) (chal, solution string, ok bool) {
	s = strings.Trim(s, " \t")
	chal, solution, found := strings.Cut(s, ":")
	if !found || len(chal) != ChallengeLen || len(solution) == 0 || len(solution) > MaxSolutionLen {
		return "", "", false
	}
	for i := 0; i < len(chal); i++ {
		if !isCodeChar(chal[i]) {
			return "", "", false
		}
	}
	for i := 0; i < len(solution); i++ {
		if !isSolutionChar(solution[i]) {
			return "", "", false
		}
	}
	return chal, solution, true
}

// openChallenge decodes s and checks its tag and version.
func (k keys) openChallenge(s string) (challenge, bool) {
	var b [challengeBytes]byte
	if n, err := base64.RawURLEncoding.Strict().Decode(b[:], []byte(s)); err != nil || n != challengeBytes {
		return challenge{}, false
	}
	want := sum(k.challengeKey, b[:challengePayload])[:challengeTagBytes]
	if !hmac.Equal(want, b[challengePayload:]) || b[0] != challengeVersion {
		return challenge{}, false
	}
	c := challenge{raw: s, difficulty: int(b[25]), payload: append([]byte(nil), b[:challengePayload]...)}
	copy(c.pollID[:], b[1:17])
	exp := binary.BigEndian.Uint64(b[17:25])
	if exp > 1<<40 || c.difficulty > MaxDifficulty {
		return challenge{}, false // signed by us, so never: a key leaked or reused
	}
	c.expiresAt = time.Unix(int64(exp), 0)
	return c, true
}

// leadingZeroBits counts the zero bits at the start of h.
func leadingZeroBits(h []byte) int {
	n := 0
	for _, b := range h {
		if b != 0 {
			return n + bits.LeadingZeros8(b)
		}
		n += 8
	}
	return n
}

// Work is the hash a solution is judged by: SHA-256 of
// "<challenge>:<solution>".
func Work(chal, solution string) [32]byte {
	return sha256.Sum256([]byte(chal + ":" + solution))
}

// Solved reports whether solution does challenge's work at difficulty.
func Solved(chal, solution string, difficulty int) bool {
	h := Work(chal, solution)
	return leadingZeroBits(h[:]) >= difficulty
}

// Solve finds a solution by counting up from 0, as a client would. It is
// for tests and tools; difficulty 20 takes about a million hashes.
func Solve(chal string, difficulty int) string {
	for i := uint64(0); ; i++ {
		s := strconv.FormatUint(i, 10)
		if Solved(chal, s, difficulty) {
			return s
		}
	}
}

// powVoter is the voter id of a solved challenge: one challenge, one
// voter, whatever solution or token carries it.
func (k keys) powVoter(c challenge) id.ID {
	return voterID(sum(k.powKey, c.payload))
}

// powGate admits a voter by a solved challenge this server issued for the
// poll. An expired challenge is refused unless its voter already has a
// ballot: then the request is a retry (answered with its original outcome)
// or a second vote (409 ALREADY_VOTED), and neither makes a new ballot.
type powGate struct {
	keys    keys
	ballots Ballots
	now     func() time.Time
}

// verify checks a proof against p at now, and returns its challenge. An
// expired but otherwise valid proof returns both the challenge and
// ErrPoWExpired.
func (k keys) verify(p *poll.Poll, v string, now time.Time, work bool) (challenge, error) {
	if v == "" {
		return challenge{}, ErrPoWRequired
	}
	raw, solution, ok := parseProof(v)
	if !ok {
		return challenge{}, ErrPoWMalformed
	}
	c, ok := k.openChallenge(raw)
	if !ok || c.pollID != p.ID {
		return challenge{}, ErrPoWForged
	}
	if work && !Solved(c.raw, solution, c.difficulty) {
		return challenge{}, ErrPoWUnsolved
	}
	if !now.Before(c.expiresAt) {
		return c, ErrPoWExpired
	}
	return c, nil
}

func (g *powGate) Admit(ctx context.Context, p *poll.Poll, h http.Header) (Admitted, error) {
	c, err := g.keys.verify(p, h.Get(PoWHeader), g.now(), true)
	switch {
	case errors.Is(err, ErrPoWExpired):
		voter := g.keys.powVoter(c)
		voted, rerr := g.ballots.HasVoted(ctx, p.ID, voter)
		if rerr != nil {
			return Admitted{}, rerr
		}
		if !voted {
			return Admitted{}, err
		}
		return Admitted{Voter: voter, Outcome: "admitted_retry"}, nil
	case err != nil:
		return Admitted{}, err
	}
	return Admitted{Voter: g.keys.powVoter(c)}, nil
}

func (g *powGate) identify(p *poll.Poll, h http.Header) (id.ID, bool, error) {
	v := h.Get(PoWHeader)
	if v == "" {
		return id.ID{}, false, nil
	}
	c, err := g.keys.verify(p, v, g.now(), false)
	if err != nil && !errors.Is(err, ErrPoWExpired) {
		return id.ID{}, true, err
	}
	return g.keys.powVoter(c), true, nil
}
