package anonaccess

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
)

// fuzzPoll is the poll both targets vote on.
var fuzzPoll = &poll.Poll{ID: id.ID{0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x47, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff},
	Settings: poll.Settings{AllowAnonymous: true}}

// FuzzInviteCodeHeader sends any X-Invite-Code to the invite gate: it never
// panics, refuses with one of its two codes, admits only a code the store
// holds (or, while the store fails, one carrying this poll's tag), and
// what it parses is exactly the canonical spelling of 18 bytes.
func FuzzInviteCodeHeader(f *testing.F) {
	s, st, _, _, _ := newTestService(f, testConfig)
	p := *fuzzPoll
	p.Settings.AnonymousAccess = poll.AnonymousInvite
	stored, err := s.Mint(context.Background(), &p, p.CreatorID, 2)
	if err != nil {
		f.Fatal(err)
	}
	unstored, _ := s.keys.newCode(p.ID)
	for _, seed := range []string{stored[0], " " + stored[1] + "\t", unstored, stored[0][:20] + "\r\n" + stored[0][20:22],
		strings.Repeat("A", CodeLen), strings.Repeat("=", CodeLen), "", "\x00", strings.Repeat("é", 12)} {
		f.Add(seed, false)
	}
	f.Add(unstored, true)
	f.Fuzz(func(t *testing.T, v string, storeDown bool) {
		c, ok := parseCode(v)
		if ok {
			canon := base64.RawURLEncoding.EncodeToString(c[:])
			if strings.Trim(v, " \t") != canon {
				t.Fatalf("%q parses as %q", v, canon)
			}
		}
		st.mu.Lock()
		st.fail = nil
		if storeDown {
			st.fail = apperr.Unavailable("read invite", errors.New("down"))
		}
		st.mu.Unlock()
		s.gates[poll.AnonymousInvite].(*inviteGate).cache = newCodeCache(0, nil)
		voter, err := s.Voter(context.Background(), &p, id.ID{}, true, hdr(InviteHeader, v))
		switch {
		case err == nil:
			hash := s.keys.codeHash(p.ID, c)
			st.mu.Lock()
			held := st.codes[p.ID.String()+string(hash)]
			st.mu.Unlock()
			if !ok || !s.keys.minted(p.ID, c) || !held && !storeDown || voter != s.keys.inviteVoter(p.ID, hash) {
				t.Fatalf("%q admitted as %s", v, voter)
			}
		case v == "":
			if !errors.Is(err, ErrInviteRequired) {
				t.Fatalf("no code refused with %v", err)
			}
		case !errors.Is(err, ErrInviteInvalid):
			t.Fatalf("%q refused with %v", v, err)
		}
		if _, err := s.Identify(&p, id.ID{}, true, hdr(InviteHeader, v)); err != nil && !errors.Is(err, ErrInviteInvalid) {
			t.Fatalf("identify %q: %v", v, err)
		}
	})
}

// FuzzProofOfWorkHeader sends any X-Proof-Of-Work to the proof-of-work
// gate: it never panics, refuses with POW_REQUIRED or POW_INVALID, and
// admits only a challenge this key signed for this poll, unexpired, whose
// solution does the work its signed difficulty asks.
func FuzzProofOfWorkHeader(f *testing.F) {
	s, _, clk, _, _ := newTestService(f, testConfig)
	p := *fuzzPoll
	p.Settings.AnonymousAccess = poll.AnonymousPoW
	ch, err := s.Challenge(&p)
	if err != nil {
		f.Fatal(err)
	}
	other, _ := s.keys.newChallenge(id.New(), testNow.Add(time.Hour), 8)
	for _, seed := range []string{
		ch.Value + ":" + Solve(ch.Value, ch.Difficulty), ch.Value + ":0", ch.Value + ":", ch.Value, ":",
		other.Value + ":" + Solve(other.Value, 8), strings.Repeat("A", ChallengeLen) + ":1", "", "\x00:\x00",
		ch.Value + ":" + strings.Repeat("~", MaxSolutionLen), ch.Value[:40] + "\n" + ch.Value[41:] + ":1",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, v string) {
		clk.t = testNow
		chal, solution, ok := parseProof(v)
		if ok && (len(chal) != ChallengeLen || len(solution) < 1 || len(solution) > MaxSolutionLen ||
			strings.ContainsAny(solution, ": \t\r\n")) {
			t.Fatalf("%q parses as %q, %q", v, chal, solution)
		}
		voter, err := s.Voter(context.Background(), &p, id.ID{}, true, hdr(PoWHeader, v))
		if err == nil {
			c, signed := s.keys.openChallenge(chal)
			if !ok || !signed || c.pollID != p.ID || !Solved(chal, solution, c.difficulty) || !testNow.Before(c.expiresAt) ||
				voter != s.keys.powVoter(c) {
				t.Fatalf("%q admitted", v)
			}
			return
		}
		var coded *apperr.Error
		if !errors.As(err, &coded) || coded.Code != apperr.CodePoWRequired && coded.Code != apperr.CodePoWInvalid {
			t.Fatalf("%q refused with %v", v, err)
		}
		if _, err := s.Identify(&p, id.ID{}, true, hdr(PoWHeader, v)); err != nil && !errors.As(err, &coded) {
			t.Fatalf("identify %q: %v", v, err)
		}
	})
}
