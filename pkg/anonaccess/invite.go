package anonaccess

import (
	"context"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/audit"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
)

// inviteGate admits a voter by a code the poll's owner minted: its tag must
// be this poll's (no read), and its hash must be in the store (one read,
// remembered for a while once found). The ballot's voter id is the code's.
type inviteGate struct {
	keys    keys
	store   Store
	cache   *codeCache
	timeout time.Duration
	log     *zap.Logger
}

func (g *inviteGate) Admit(ctx context.Context, p *poll.Poll, h http.Header) (Admitted, error) {
	v := h.Get(InviteHeader)
	if v == "" {
		return Admitted{}, ErrInviteRequired
	}
	c, ok := parseCode(v)
	if !ok || !g.keys.minted(p.ID, c) {
		return Admitted{}, ErrInviteInvalid
	}
	hash := g.keys.codeHash(p.ID, c)
	voter := g.keys.inviteVoter(p.ID, hash)
	if g.cache.has(p.ID, hash) {
		return Admitted{Voter: voter}, nil
	}
	rctx, cancel := context.WithTimeout(ctx, g.timeout)
	found, err := g.store.InviteExists(rctx, p.ID, hash)
	cancel()
	switch {
	case err != nil && ctx.Err() != nil:
		return Admitted{}, err // the client went away
	case err != nil:
		// The tag proves this server minted the code for this poll; the
		// read only adds that its mint was stored (an owner whose mint
		// failed never saw the codes). Cassandra not answering must not
		// stop votes, so the tag is enough meanwhile.
		g.log.Warn("invite code admitted on its tag: store did not answer", zap.Stringer("poll_id", p.ID), zap.Error(err))
		return Admitted{Voter: voter, Outcome: "admitted_unverified"}, nil
	case !found:
		return Admitted{}, ErrInviteInvalid
	}
	g.cache.add(p.ID, hash)
	return Admitted{Voter: voter}, nil
}

func (g *inviteGate) identify(p *poll.Poll, h http.Header) (id.ID, bool, error) {
	v := h.Get(InviteHeader)
	if v == "" {
		return id.ID{}, false, nil
	}
	c, ok := parseCode(v)
	if !ok || !g.keys.minted(p.ID, c) {
		return id.ID{}, true, ErrInviteInvalid
	}
	return g.keys.inviteVoter(p.ID, g.keys.codeHash(p.ID, c)), true, nil
}

// Counts are a poll's invite codes: how many were minted and how many of
// them have a ballot recorded (a vote accepted but not yet applied by the
// worker counts once it is).
type Counts struct {
	Minted, Used, Max int
}

// Mint makes n new codes for the owner's poll and stores their hashes. The
// codes are returned once and never stored; an owner who loses them mints
// others.
func (s *Service) Mint(ctx context.Context, p *poll.Poll, caller id.ID, n int) ([]string, error) {
	if s == nil {
		return nil, errUnwired
	}
	if n < 1 || n > MaxMint {
		return nil, apperr.Invalid("count", "must be 1 to %d", MaxMint)
	}
	if p.CreatorID != caller {
		return nil, poll.ErrNotOwner
	}
	held, err := s.store.CountInvites(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	if held+n > s.cfg.InviteMaxPerPoll {
		// Concurrent mints can pass this check together and overshoot by
		// less than one request's worth; the bound is on partition size.
		return nil, apperr.Invalid("count", "the poll holds %d invite codes and may hold at most %d", held, s.cfg.InviteMaxPerPoll)
	}
	codes := make([]string, n)
	hashes := make([][]byte, n)
	for i := range codes {
		if codes[i], err = s.keys.newCode(p.ID); err != nil {
			return nil, err
		}
		c, _ := parseCode(codes[i])
		hashes[i] = s.keys.codeHash(p.ID, c)
	}
	if err := s.store.AddInvites(ctx, p.ID, hashes, s.now().UTC().Truncate(time.Millisecond)); err != nil {
		return nil, err
	}
	s.m.minted.Add(float64(n))
	// The codes are stored: the mint is chained before the codes are
	// handed out. Codes whose entry failed are never shown to anyone, so
	// they cannot be used (their hashes stay, counted as held).
	if _, err := s.audit.Append(ctx, p.ID, caller, audit.InvitesMinted, map[string]any{"count": n, "held": held + n}); err != nil {
		return nil, err
	}
	s.log.Info("invite codes minted", zap.Stringer("poll_id", p.ID), zap.Int("count", n))
	return codes, nil
}

// Counts reads the owner's poll's invite counts. "Used" reads the votes
// partition of every code's voter, 50 to a query.
func (s *Service) Counts(ctx context.Context, p *poll.Poll, caller id.ID) (Counts, error) {
	if s == nil {
		return Counts{}, errUnwired
	}
	if p.CreatorID != caller {
		return Counts{}, poll.ErrNotOwner
	}
	out := Counts{Max: s.cfg.InviteMaxPerPoll}
	err := s.store.EachInvitePage(ctx, p.ID, func(hashes [][]byte) error {
		voters := make([]id.ID, len(hashes))
		for i, h := range hashes {
			voters[i] = s.keys.inviteVoter(p.ID, h)
		}
		used, err := s.store.CountBallots(ctx, p.ID, voters)
		out.Minted += len(hashes)
		out.Used += used
		return err
	})
	if err != nil {
		return Counts{}, err
	}
	return out, nil
}

// codeCache remembers codes found in the store. Codes are never revoked,
// so a remembered code stays right; only absence is always re-read (a code
// just minted must work at once).
type codeCache struct {
	ttl time.Duration
	now func() time.Time
	mu  sync.Mutex
	m   map[codeKey]time.Time
}

type codeKey struct {
	poll id.ID
	hash [32]byte
}

// maxCachedCodes bounds the cache (about 100 bytes an entry).
const maxCachedCodes = 100_000

func newCodeCache(ttl time.Duration, now func() time.Time) *codeCache {
	return &codeCache{ttl: ttl, now: now, m: map[codeKey]time.Time{}}
}

func key(pollID id.ID, hash []byte) codeKey {
	k := codeKey{poll: pollID}
	copy(k.hash[:], hash)
	return k
}

func (c *codeCache) has(pollID id.ID, hash []byte) bool {
	if c.ttl <= 0 {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	until, ok := c.m[key(pollID, hash)]
	return ok && c.now().Before(until)
}

func (c *codeCache) add(pollID id.ID, hash []byte) {
	if c.ttl <= 0 {
		return
	}
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxCachedCodes {
		for k, until := range c.m {
			if !now.Before(until) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= maxCachedCodes {
			// Still full: forget an arbitrary half (map order); they are
			// read again on their next use.
			for k := range c.m {
				if len(c.m) < maxCachedCodes/2 {
					break
				}
				delete(c.m, k)
			}
		}
	}
	c.m[key(pollID, hash)] = now.Add(c.ttl)
}
