package anonaccess

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/audit"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
)

var (
	testSecret = []byte("anonaccess-test-secret-0123456789abcdef")
	testNow    = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
)

func TestCodes(t *testing.T) {
	k := deriveKeys(testSecret)
	pollA, pollB := id.New(), id.New()
	good, err := k.newCode(pollA)
	if err != nil {
		t.Fatal(err)
	}
	if len(good) != CodeLen || CodeLen != 24 {
		t.Fatalf("code %q is %d characters, want %d", good, len(good), CodeLen)
	}
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	for _, tc := range []struct {
		name          string
		code          string
		poll          id.ID
		parses, valid bool
	}{
		{"minted for this poll", good, pollA, true, true},
		{"surrounding spaces and tabs", " \t" + good + " ", pollA, true, true},
		{"minted for another poll", good, pollB, true, false},
		{"random part changed", flip(good, 3), pollA, true, false},
		{"tag changed", flip(good, CodeLen-2), pollA, true, false},
		{"one character short", good[:CodeLen-1], pollA, false, false},
		{"one character long", good + "A", pollA, false, false},
		{"padding", good[:CodeLen-2] + "==", pollA, false, false},
		{"standard base64 alphabet", strings.Repeat("+", CodeLen), pollA, false, false},
		{"a line break the decoder would skip", good[:10] + "\n" + good[11:], pollA, false, false},
		{"empty", "", pollA, false, false},
		{"non-ASCII", strings.Repeat("é", CodeLen/2), pollA, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, ok := parseCode(tc.code)
			if ok != tc.parses {
				t.Fatalf("parses = %v, want %v", ok, tc.parses)
			}
			if ok && k.minted(tc.poll, c) != tc.valid {
				t.Fatalf("minted = %v, want %v", !tc.valid, tc.valid)
			}
		})
	}

	t.Run("hash and voter are keyed, per poll, stable", func(t *testing.T) {
		c, _ := parseCode(good)
		h := k.codeHash(pollA, c)
		if len(h) != 32 || string(h) != string(k.codeHash(pollA, c)) {
			t.Fatal("hash is not 32 stable bytes")
		}
		if string(h) == string(k.codeHash(pollB, c)) {
			t.Fatal("the same code hashes alike for two polls")
		}
		other := deriveKeys([]byte("another-secret-0123456789abcdef0123"))
		if string(h) == string(other.codeHash(pollA, c)) || k.inviteVoter(pollA, h) == other.inviteVoter(pollA, h) {
			t.Fatal("another secret gives the same hash or voter")
		}
		v := k.inviteVoter(pollA, h)
		if v.Version() != 8 || v.Variant() != id.VariantIETF {
			t.Fatalf("voter %s is not a version 8 RFC 4122 UUID", v)
		}
		if v != k.inviteVoter(pollA, h) || v == k.inviteVoter(pollB, h) {
			t.Fatal("voter id not stable per (poll, code)")
		}
	})
	t.Run("codes differ", func(t *testing.T) {
		seen := map[string]bool{}
		for range 1000 {
			c, _ := k.newCode(pollA)
			if seen[c] {
				t.Fatalf("code %s minted twice", c)
			}
			seen[c] = true
		}
	})
}

// solveAt returns a solution of chal at difficulty and one that fails it.
func solveAt(t *testing.T, chal string, difficulty int) (good, bad string) {
	t.Helper()
	good = Solve(chal, difficulty)
	for i := 0; ; i++ {
		s := "x" + string(rune('a'+i%26)) + strings.Repeat("y", i/26)
		if !Solved(chal, s, difficulty) {
			return good, s
		}
	}
}

func TestChallenges(t *testing.T) {
	k := deriveKeys(testSecret)
	p := &poll.Poll{ID: id.New()}
	other := &poll.Poll{ID: id.New()}
	ch, err := k.newChallenge(p.ID, testNow.Add(time.Minute), 8)
	if err != nil {
		t.Fatal(err)
	}
	if len(ch.Value) != ChallengeLen || ChallengeLen != 80 || strings.Contains(ch.Value, ":") {
		t.Fatalf("challenge %q: %d characters", ch.Value, len(ch.Value))
	}
	if ch.Difficulty != 8 || !ch.ExpiresAt.Equal(testNow.Add(time.Minute)) {
		t.Fatalf("challenge says difficulty %d, expiry %s", ch.Difficulty, ch.ExpiresAt)
	}
	solution, unsolved := solveAt(t, ch.Value, 8)
	tamper := func(i int) string {
		b := []byte(ch.Value)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	foreign, _ := deriveKeys([]byte("another-secret-0123456789abcdef0123")).newChallenge(p.ID, testNow.Add(time.Minute), 8)
	easy, _ := k.newChallenge(p.ID, testNow.Add(time.Minute), 0)
	for _, tc := range []struct {
		name  string
		proof string
		poll  *poll.Poll
		now   time.Time
		want  error
	}{
		{"solved", ch.Value + ":" + solution, p, testNow, nil},
		{"solved, spaces around", "  " + ch.Value + ":" + solution + "\t", p, testNow, nil},
		{"just before expiry", ch.Value + ":" + solution, p, testNow.Add(time.Minute - time.Second), nil},
		{"at expiry", ch.Value + ":" + solution, p, testNow.Add(time.Minute), ErrPoWExpired},
		{"other poll", ch.Value + ":" + solution, other, testNow, ErrPoWForged},
		{"not enough work", ch.Value + ":" + unsolved, p, testNow, ErrPoWUnsolved},
		{"difficulty 0 signed by us", easy.Value + ":anything", p, testNow, nil},
		{"version byte changed", tamper(0) + ":" + solution, p, testNow, ErrPoWForged},
		{"expiry changed", tamper(30) + ":" + solution, p, testNow, ErrPoWForged},
		{"difficulty changed", tamper(34) + ":" + solution, p, testNow, ErrPoWForged},
		{"tag changed", tamper(ChallengeLen-3) + ":" + solution, p, testNow, ErrPoWForged},
		{"signed with another key", foreign.Value + ":" + Solve(foreign.Value, 8), p, testNow, ErrPoWForged},
		{"empty", "", p, testNow, ErrPoWRequired},
		{"no solution", ch.Value, p, testNow, ErrPoWMalformed},
		{"empty solution", ch.Value + ":", p, testNow, ErrPoWMalformed},
		{"solution too long", ch.Value + ":" + strings.Repeat("1", MaxSolutionLen+1), p, testNow, ErrPoWMalformed},
		{"colon in solution", ch.Value + ":1:2", p, testNow, ErrPoWMalformed},
		{"space in solution", ch.Value + ":1 2", p, testNow, ErrPoWMalformed},
		{"challenge short", ch.Value[1:] + ":" + solution, p, testNow, ErrPoWMalformed},
		{"challenge in standard base64", strings.Repeat("/", ChallengeLen) + ":1", p, testNow, ErrPoWMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := k.verify(tc.poll, tc.proof, tc.now, true)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if (err == nil || errors.Is(err, ErrPoWExpired)) && k.powVoter(c).Version() != 8 {
				t.Fatal("no voter for an admitted challenge")
			}
		})
	}

	t.Run("one challenge is one voter whatever the solution", func(t *testing.T) {
		c1, err1 := k.verify(p, easy.Value+":one", testNow, true)
		c2, err2 := k.verify(p, easy.Value+":two", testNow, true)
		c3, err3 := k.verify(p, ch.Value+":"+solution, testNow, true)
		if err1 != nil || err2 != nil || err3 != nil {
			t.Fatal(err1, err2, err3)
		}
		if k.powVoter(c1) != k.powVoter(c2) || k.powVoter(c1) == k.powVoter(c3) {
			t.Fatal("voter ids do not follow challenges")
		}
	})
}

func TestLeadingZeroBits(t *testing.T) {
	for _, tc := range []struct {
		in   []byte
		want int
	}{
		{[]byte{0x80}, 0},
		{[]byte{0x01}, 7},
		{[]byte{0x00, 0xff}, 8},
		{[]byte{0x00, 0x00, 0x10}, 19},
		{[]byte{0x00, 0x00}, 16},
	} {
		if got := leadingZeroBits(tc.in); got != tc.want {
			t.Errorf("%x: %d, want %d", tc.in, got, tc.want)
		}
	}
	for d := 0; d <= 12; d++ {
		h := Work("c", Solve("c", d))
		if leadingZeroBits(h[:]) < d {
			t.Fatalf("Solve at %d returned a solution with %d zero bits", d, leadingZeroBits(h[:]))
		}
	}
}

// memStore is an in-memory Store for the service's unit tests; the
// integration tests use Cassandra.
type memStore struct {
	mu      sync.Mutex
	codes   map[string]bool
	ballots map[id.ID]bool
	reads   int
	fail    error
}

func newMemStore() *memStore {
	return &memStore{codes: map[string]bool{}, ballots: map[id.ID]bool{}}
}

func (m *memStore) AddInvites(_ context.Context, pollID id.ID, hashes [][]byte, _ time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	for _, h := range hashes {
		m.codes[pollID.String()+string(h)] = true
	}
	return nil
}

func (m *memStore) InviteExists(_ context.Context, pollID id.ID, hash []byte) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reads++
	if m.fail != nil {
		return false, m.fail
	}
	return m.codes[pollID.String()+string(hash)], nil
}

func (m *memStore) CountInvites(_ context.Context, pollID id.ID) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for k := range m.codes {
		if strings.HasPrefix(k, pollID.String()) {
			n++
		}
	}
	return n, m.fail
}

func (m *memStore) EachInvitePage(_ context.Context, pollID id.ID, fn func([][]byte) error) error {
	m.mu.Lock()
	var page [][]byte
	for k := range m.codes {
		if h, ok := strings.CutPrefix(k, pollID.String()); ok {
			page = append(page, []byte(h))
		}
	}
	m.mu.Unlock()
	return fn(page)
}

func (m *memStore) CountBallots(_ context.Context, _ id.ID, voters []id.ID) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, v := range voters {
		if m.ballots[v] {
			n++
		}
	}
	return n, nil
}

func (m *memStore) HasVoted(_ context.Context, _, voter id.ID) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ballots[voter], m.fail
}

type auditRecorder struct{ kinds []string }

func (a *auditRecorder) Append(_ context.Context, _, _ id.ID, kind string, _ map[string]any) (audit.Entry, error) {
	a.kinds = append(a.kinds, kind)
	return audit.Entry{}, nil
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newTestService(t testing.TB, cfg Config) (*Service, *memStore, *clock, *prometheus.Registry, *auditRecorder) {
	t.Helper()
	st, clk, reg, au := newMemStore(), &clock{t: testNow}, prometheus.NewRegistry(), &auditRecorder{}
	s := New(cfg, testSecret, Deps{Store: st, Ballots: st, Audit: au, Log: zap.NewNop(), Now: clk.now, Metrics: reg})
	return s, st, clk, reg, au
}

var testConfig = Config{PoWDifficulty: 8, PoWTTL: 10 * time.Minute, InviteMaxPerPoll: 30, InviteCacheTTL: time.Minute,
	InviteCheckTimeout: time.Second}

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func TestVoter(t *testing.T) {
	s, st, clk, reg, au := newTestService(t, testConfig)
	owner, token := id.New(), id.New()
	mk := func(mode poll.AnonymousAccess, anon bool) *poll.Poll {
		return &poll.Poll{ID: id.New(), CreatorID: owner,
			Settings: poll.Settings{AllowAnonymous: anon, AnonymousAccess: mode}}
	}
	invite, pow, open := mk(poll.AnonymousInvite, true), mk(poll.AnonymousPoW, true), mk(poll.AnonymousOpen, true)
	codes, err := s.Mint(context.Background(), invite, owner, 3)
	if err != nil || len(codes) != 3 {
		t.Fatalf("mint: %v %v", codes, err)
	}
	if len(au.kinds) != 1 || au.kinds[0] != "poll.invites_minted" {
		t.Fatalf("audit: %v", au.kinds)
	}
	otherPollCode, _ := s.Mint(context.Background(), pow, owner, 1)
	forged, _ := deriveKeys([]byte("another-secret-0123456789abcdef0123")).newCode(invite.ID)
	ch, _ := s.Challenge(pow)
	oc, _ := s.Challenge(invite)
	otherChallenge := oc.Value + ":" + Solve(oc.Value, oc.Difficulty)
	solution, unsolved := solveAt(t, ch.Value, ch.Difficulty)
	solved := ch.Value + ":" + solution

	codeVoter := func(code string) id.ID {
		c, _ := parseCode(code)
		return s.keys.inviteVoter(invite.ID, s.keys.codeHash(invite.ID, c))
	}
	powVoter := func() id.ID {
		c, _ := s.keys.verify(pow, solved, testNow, true)
		return s.keys.powVoter(c)
	}
	for _, tc := range []struct {
		name      string
		p         *poll.Poll
		anonymous bool
		h         http.Header
		want      func() id.ID
		err       error
	}{
		{"account on an invite poll votes as itself", invite, false, hdr(), func() id.ID { return token }, nil},
		{"anonymous on an open poll votes as its token", open, true, hdr(InviteHeader, codes[0]), func() id.ID { return token }, nil},
		{"anonymous where not allowed: left to the vote rules", mk(poll.AnonymousInvite, false), true, hdr(),
			func() id.ID { return token }, nil},
		{"invite, no code", invite, true, hdr(), nil, ErrInviteRequired},
		{"invite, malformed code", invite, true, hdr(InviteHeader, "nope"), nil, ErrInviteInvalid},
		{"invite, another poll's code", invite, true, hdr(InviteHeader, otherPollCode[0]), nil, ErrInviteInvalid},
		{"invite, code with a foreign tag", invite, true, hdr(InviteHeader, forged), nil, ErrInviteInvalid},
		{"invite, code", invite, true, hdr(InviteHeader, codes[0]), func() id.ID { return codeVoter(codes[0]) }, nil},
		{"invite, another code", invite, true, hdr(InviteHeader, codes[1]), func() id.ID { return codeVoter(codes[1]) }, nil},
		{"pow, none", pow, true, hdr(), nil, ErrPoWRequired},
		{"pow, solved", pow, true, hdr(PoWHeader, solved), powVoter, nil},
		{"pow, unsolved", pow, true, hdr(PoWHeader, ch.Value+":"+unsolved), nil, ErrPoWUnsolved},
		{"pow, another poll's challenge", pow, true, hdr(PoWHeader, otherChallenge), nil, ErrPoWForged},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Voter(context.Background(), tc.p, token, tc.anonymous, tc.h)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if err == nil && got != tc.want() {
				t.Fatalf("voter %s, want %s", got, tc.want())
			}
			var coded *apperr.Error
			if err != nil && (!errors.As(err, &coded) || !strings.Contains("INVITE_REQUIRED INVITE_INVALID POW_REQUIRED POW_INVALID", coded.Code.String())) {
				t.Fatalf("error %v is not one of the four codes", err)
			}
		})
	}

	t.Run("a code is one voter whatever the token, read once", func(t *testing.T) {
		reads := st.reads
		for range 20 {
			v, err := s.Voter(context.Background(), invite, id.New(), true, hdr(InviteHeader, codes[2]))
			if err != nil || v != codeVoter(codes[2]) {
				t.Fatalf("%s %v", v, err)
			}
		}
		if st.reads-reads != 1 {
			t.Fatalf("%d store reads for one code, want 1 (then remembered)", st.reads-reads)
		}
	})
	t.Run("an unknown code carrying the tag is refused after the read", func(t *testing.T) {
		code, _ := s.keys.newCode(invite.ID) // minted by the key, never stored
		if _, err := s.Voter(context.Background(), invite, token, true, hdr(InviteHeader, code)); !errors.Is(err, ErrInviteInvalid) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("store down: a tagged code is admitted, an untagged one is not", func(t *testing.T) {
		st.mu.Lock()
		st.fail = apperr.Unavailable("read invite", errors.New("timeout"))
		st.mu.Unlock()
		defer func() { st.mu.Lock(); st.fail = nil; st.mu.Unlock() }()
		code, _ := s.keys.newCode(invite.ID)
		if _, err := s.Voter(context.Background(), invite, token, true, hdr(InviteHeader, code)); err != nil {
			t.Fatalf("tagged code refused while the store is down: %v", err)
		}
		if _, err := s.Voter(context.Background(), invite, token, true, hdr(InviteHeader, forged)); !errors.Is(err, ErrInviteInvalid) {
			t.Fatalf("forged code: %v", err)
		}
	})
	t.Run("expired challenge: refused unless its voter already voted", func(t *testing.T) {
		clk.t = ch.ExpiresAt
		defer func() { clk.t = testNow }()
		if _, err := s.Voter(context.Background(), pow, token, true, hdr(PoWHeader, solved)); !errors.Is(err, ErrPoWExpired) {
			t.Fatalf("err = %v", err)
		}
		st.mu.Lock()
		st.ballots[powVoter()] = true
		st.mu.Unlock()
		v, err := s.Voter(context.Background(), pow, token, true, hdr(PoWHeader, solved))
		if err != nil || v != powVoter() {
			t.Fatalf("retry of a spent challenge: %s %v", v, err)
		}
	})
	t.Run("identify reads without admitting", func(t *testing.T) {
		clk.t = ch.ExpiresAt.Add(time.Hour)
		defer func() { clk.t = testNow }()
		reads := st.reads
		code, _ := s.keys.newCode(invite.ID) // never stored: identify does not ask
		for _, tc := range []struct {
			p    *poll.Poll
			h    http.Header
			want id.ID
			err  error
		}{
			{invite, hdr(), token, nil},
			{invite, hdr(InviteHeader, code), codeVoter(code), nil},
			{invite, hdr(InviteHeader, forged), token, ErrInviteInvalid},
			{pow, hdr(PoWHeader, solved), powVoter(), nil},
			{pow, hdr(PoWHeader, ch.Value+":x"), powVoter(), nil},
			{pow, hdr(PoWHeader, "x:y"), token, ErrPoWMalformed},
			{open, hdr(InviteHeader, code), token, nil},
		} {
			got, err := s.Identify(tc.p, token, true, tc.h)
			if got != tc.want || !errors.Is(err, tc.err) {
				t.Errorf("%s %v: %s %v", tc.p.Settings.AnonymousAccess, tc.h, got, err)
			}
		}
		if st.reads != reads {
			t.Fatal("identify read the store")
		}
	})
	if n := testutil.ToFloat64(s.m.access.WithLabelValues("invite", "missing")); n != 1 {
		t.Errorf("missing invites counted %v", n)
	}
	if n := testutil.ToFloat64(s.m.access.WithLabelValues("invite", "admitted_unverified")); n != 1 {
		t.Errorf("unverified admissions counted %v", n)
	}
	if n := testutil.ToFloat64(s.m.access.WithLabelValues("pow", "admitted_retry")); n != 1 {
		t.Errorf("retries counted %v", n)
	}
	if _, err := reg.Gather(); err != nil {
		t.Fatal(err)
	}
}

func TestMintAndCounts(t *testing.T) {
	s, st, _, _, _ := newTestService(t, testConfig)
	owner := id.New()
	p := &poll.Poll{ID: id.New(), CreatorID: owner}
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		caller id.ID
		n      int
		err    string
	}{
		{"zero", owner, 0, "count: must be 1 to 1000"},
		{"negative", owner, -1, "count: must be 1 to 1000"},
		{"over one request's limit", owner, MaxMint + 1, "count: must be 1 to 1000"},
		{"not the owner", id.New(), 1, "only the poll's owner"},
		{"some", owner, 20, ""},
		{"past the poll's limit", owner, 11, "holds 20 invite codes and may hold at most 30"},
		{"up to the poll's limit", owner, 10, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			codes, err := s.Mint(ctx, p, tc.caller, tc.n)
			if tc.err == "" && (err != nil || len(codes) != tc.n) {
				t.Fatalf("%d codes, %v", len(codes), err)
			}
			if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("err = %v, want %q", err, tc.err)
			}
		})
	}
	codes, _ := st.CountInvites(ctx, p.ID)
	if codes != 30 {
		t.Fatalf("%d codes stored", codes)
	}
	// Two of them voted.
	used := 0
	for k := range st.codes {
		if used == 2 {
			break
		}
		st.ballots[s.keys.inviteVoter(p.ID, []byte(strings.TrimPrefix(k, p.ID.String())))] = true
		used++
	}
	c, err := s.Counts(ctx, p, owner)
	if err != nil || c != (Counts{Minted: 30, Used: 2, Max: 30}) {
		t.Fatalf("counts %+v %v", c, err)
	}
	if _, err := s.Counts(ctx, p, id.New()); !errors.Is(err, poll.ErrNotOwner) {
		t.Fatalf("non-owner counts: %v", err)
	}
	st.fail = apperr.Unavailable("insert invites", errors.New("down"))
	if _, err := s.Mint(ctx, p, owner, 1); !errors.Is(err, apperr.ErrUnavailable) {
		t.Fatalf("mint with the store down: %v", err)
	}
}

func TestCodeCache(t *testing.T) {
	clk := &clock{t: testNow}
	c := newCodeCache(time.Minute, clk.now)
	p := id.New()
	if c.has(p, []byte("h")) {
		t.Fatal("empty cache has an entry")
	}
	c.add(p, []byte("h"))
	if !c.has(p, []byte("h")) || c.has(id.New(), []byte("h")) {
		t.Fatal("entry not per poll")
	}
	clk.t = clk.t.Add(time.Minute)
	if c.has(p, []byte("h")) {
		t.Fatal("entry outlived its TTL")
	}
	for i := range maxCachedCodes + 10 {
		c.add(p, []byte{byte(i), byte(i >> 8), byte(i >> 16)})
	}
	if len(c.m) > maxCachedCodes {
		t.Fatalf("cache holds %d entries", len(c.m))
	}
	if off := newCodeCache(0, clk.now); func() bool { off.add(p, []byte("h")); return off.has(p, []byte("h")) }() {
		t.Fatal("a zero TTL caches")
	}
}

func TestConfigCheck(t *testing.T) {
	ok := Config{PoWDifficulty: 20, PoWTTL: 10 * time.Minute, InviteMaxPerPoll: 10000}
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		err  string
	}{
		{"defaults", func(*Config) {}, ""},
		{"zero is the default", func(c *Config) { *c = Config{} }, ""},
		{"difficulty negative", func(c *Config) { c.PoWDifficulty = -1 }, "TALLY_POW_DIFFICULTY"},
		{"difficulty 33", func(c *Config) { c.PoWDifficulty = 33 }, "TALLY_POW_DIFFICULTY"},
		{"ttl 30s", func(c *Config) { c.PoWTTL = 30 * time.Second }, "TALLY_POW_TTL"},
		{"no invites", func(c *Config) { c.InviteMaxPerPoll = -1 }, "TALLY_INVITE_MAX_PER_POLL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.mod(&c)
			err := c.Check()
			if (tc.err == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err = %v, want %q", err, tc.err)
			}
		})
	}
}

func TestUnwiredRefusesClosedModes(t *testing.T) {
	var s *Service
	p := &poll.Poll{ID: id.New(), Settings: poll.Settings{AllowAnonymous: true, AnonymousAccess: poll.AnonymousInvite}}
	if _, err := s.Voter(context.Background(), p, id.New(), true, hdr()); !errors.Is(err, apperr.ErrUnavailable) {
		t.Fatalf("err = %v", err)
	}
	p.Settings.AnonymousAccess = poll.AnonymousOpen
	token := id.New()
	if v, err := s.Voter(context.Background(), p, token, true, hdr()); err != nil || v != token {
		t.Fatalf("open poll without a service: %s %v", v, err)
	}
}
