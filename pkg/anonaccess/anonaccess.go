// Package anonaccess names the voter behind an anonymous ballot on polls
// whose owner asked for one vote per person: an owner-issued invite code
// or a solved proof-of-work challenge stands for the voter, instead of the
// anonymous token (of which anyone can mint as many as the rate limits
// allow). The voter id becomes a keyed hash of the code or challenge, so the
// votes table's one-partition-per-voter conditional write keeps it to one
// ballot, whatever token carries it; nothing is written on the vote path.
package anonaccess

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/audit"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
)

// Request headers that carry an anonymous voter's credential.
const (
	InviteHeader = "X-Invite-Code"
	PoWHeader    = "X-Proof-Of-Work"
)

// Sentinels. Each is 403 with its code; the messages say what to do.
var (
	ErrInviteRequired = apperr.New(apperr.CodeInviteRequired, "this poll takes anonymous votes by invite only: send your code in X-Invite-Code")
	ErrInviteInvalid  = apperr.New(apperr.CodeInviteInvalid, "this invite code is not one of this poll's")
	ErrPoWRequired    = apperr.New(apperr.CodePoWRequired,
		"this poll takes anonymous votes with a proof of work: GET its challenge, solve it and send X-Proof-Of-Work")
	ErrPoWMalformed = apperr.New(apperr.CodePoWInvalid, "X-Proof-Of-Work must be <challenge>:<solution>")
	ErrPoWForged    = apperr.New(apperr.CodePoWInvalid, "this challenge was not issued for this poll")
	ErrPoWUnsolved  = apperr.New(apperr.CodePoWInvalid, "the solution does not meet the challenge's difficulty")
	ErrPoWExpired   = apperr.New(apperr.CodePoWInvalid, "the challenge expired: get a new one")
)

// Config tunes anonymous access. Variables are TALLY_POW_* and
// TALLY_INVITE_*.
type Config struct {
	// PoWDifficulty is the leading zero bits a new challenge asks for; each
	// bit doubles a voter's work (20: about a million SHA-256 hashes).
	PoWDifficulty int `env:"POW_DIFFICULTY" envDefault:"20"`
	// PoWTTL is how long a challenge may be used after it was issued.
	PoWTTL time.Duration `env:"POW_TTL" envDefault:"10m"`
	// InviteMaxPerPoll bounds the codes one poll may hold.
	InviteMaxPerPoll int `env:"INVITE_MAX_PER_POLL" envDefault:"10000"`
	// InviteCacheTTL is how long a process remembers a code it found.
	InviteCacheTTL time.Duration `env:"INVITE_CACHE_TTL" envDefault:"10m"`
	// InviteCheckTimeout bounds the read of a code not remembered; past it
	// (or when Cassandra fails) a code carrying this poll's tag is admitted.
	InviteCheckTimeout time.Duration `env:"INVITE_CHECK_TIMEOUT" envDefault:"500ms"`
}

// WithDefaults fills the settings left zero (a Config built in code
// rather than read from the environment) with the defaults above.
func (c Config) WithDefaults() Config {
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if c.PoWDifficulty == 0 {
		c.PoWDifficulty = 20
	}
	if c.InviteMaxPerPoll == 0 {
		c.InviteMaxPerPoll = 10000
	}
	def(&c.PoWTTL, 10*time.Minute)
	def(&c.InviteCacheTTL, 10*time.Minute)
	def(&c.InviteCheckTimeout, 500*time.Millisecond)
	return c
}

// Check refuses settings the package cannot work with; zero settings are
// their defaults.
func (c Config) Check() error {
	c = c.WithDefaults()
	switch {
	case c.PoWDifficulty < 1 || c.PoWDifficulty > 32:
		return fmt.Errorf("TALLY_POW_DIFFICULTY must be 1 to 32, not %d", c.PoWDifficulty)
	case c.PoWTTL < time.Minute:
		return fmt.Errorf("TALLY_POW_TTL must be at least 1m, not %s", c.PoWTTL)
	case c.InviteMaxPerPoll < 1 || c.InviteCheckTimeout < 0:
		return fmt.Errorf("TALLY_INVITE_MAX_PER_POLL must be positive, not %d", c.InviteMaxPerPoll)
	}
	return nil
}

// MaxMint is the most codes one request mints.
const MaxMint = 1000

// Admission is the hook an access mode plugs into: from a poll and the
// headers of an anonymous voter's request it names the voter the ballot
// belongs to, or refuses with a coded error. Invite codes and proof of work
// are the two built in; a CAPTCHA provider would be a third (verify the
// response token it issued, then derive the voter from its one-time id),
// registered for its own mode.
type Admission interface {
	Admit(ctx context.Context, p *poll.Poll, h http.Header) (Admitted, error)
}

// Admitted is an admission's answer.
type Admitted struct {
	Voter id.ID
	// Outcome labels it in tally_anonymous_access_total; empty is
	// "admitted".
	Outcome string
}

// identifier names the voter a request's credential stands for without
// admitting a ballot: for reading one's own vote and request status.
type identifier interface {
	identify(p *poll.Poll, h http.Header) (voter id.ID, present bool, err error)
}

// Store is the invite codes' storage (pkg/cassandra).
type Store interface {
	// AddInvites stores code hashes of a poll.
	AddInvites(ctx context.Context, pollID id.ID, hashes [][]byte, at time.Time) error
	// InviteExists reports whether a code hash is the poll's.
	InviteExists(ctx context.Context, pollID id.ID, hash []byte) (bool, error)
	// CountInvites counts a poll's codes.
	CountInvites(ctx context.Context, pollID id.ID) (int, error)
	// EachInvitePage calls fn with the poll's code hashes, a page at a time.
	EachInvitePage(ctx context.Context, pollID id.ID, fn func(hashes [][]byte) error) error
	// CountBallots counts the voters among voters who have a ballot.
	CountBallots(ctx context.Context, pollID id.ID, voters []id.ID) (int, error)
}

// Ballots tells whether a voter has a ballot (pkg/vote).
type Ballots interface {
	HasVoted(ctx context.Context, pollID, voterID id.ID) (bool, error)
}

// Auditor chains owner actions durably (pkg/audit): an action is answered
// only after Append returned nil.
type Auditor interface {
	Append(ctx context.Context, pollID, actor id.ID, kind string, detail map[string]any) (audit.Entry, error)
}

// Deps are what the service needs.
type Deps struct {
	Store   Store
	Ballots Ballots
	Audit   Auditor
	Log     *zap.Logger
	Now     func() time.Time
	Metrics prometheus.Registerer
}

// Service admits anonymous voters and mints what admits them.
type Service struct {
	cfg   Config
	keys  keys
	store Store
	audit Auditor
	log   *zap.Logger
	now   func() time.Time
	gates map[poll.AnonymousAccess]Admission
	m     metrics
}

type metrics struct {
	access *prometheus.CounterVec
	minted prometheus.Counter
	issued prometheus.Counter
}

// New builds the service from the configured secret and registers its
// metrics. The secret keys every voter id it derives: changing it lets
// every invite code vote again, so it must stay fixed while invite polls
// are open.
func New(cfg Config, secret []byte, d Deps) *Service {
	cfg = cfg.WithDefaults()
	s := &Service{cfg: cfg, keys: deriveKeys(secret), store: d.Store, audit: d.Audit, log: d.Log, now: d.Now}
	s.m = metrics{
		access: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_anonymous_access_total",
			Help: "Anonymous votes on invite and proof-of-work polls by mode and outcome (admitted, admitted_unverified, admitted_retry, missing, invalid, expired, error).",
		}, []string{"mode", "outcome"}),
		minted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tally_invite_codes_minted_total", Help: "Invite codes minted by poll owners.",
		}),
		issued: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tally_pow_challenges_issued_total", Help: "Proof-of-work challenges issued.",
		}),
	}
	if d.Metrics != nil {
		d.Metrics.MustRegister(s.m.access, s.m.minted, s.m.issued)
	}
	// Exported at zero, so the dashboard's outcome panel and increase()
	// see a mode's first refusal rather than an absent series.
	for _, mode := range []poll.AnonymousAccess{poll.AnonymousInvite, poll.AnonymousPoW} {
		for _, o := range []string{"admitted", "missing", "invalid", "expired", "error"} {
			s.m.access.WithLabelValues(string(mode), o)
		}
	}
	s.m.access.WithLabelValues(string(poll.AnonymousInvite), "admitted_unverified")
	s.m.access.WithLabelValues(string(poll.AnonymousPoW), "admitted_retry")
	s.gates = map[poll.AnonymousAccess]Admission{
		poll.AnonymousInvite: &inviteGate{keys: s.keys, store: d.Store, cache: newCodeCache(cfg.InviteCacheTTL, d.Now),
			timeout: cfg.InviteCheckTimeout, log: d.Log},
		poll.AnonymousPoW: &powGate{keys: s.keys, ballots: d.Ballots, now: d.Now},
	}
	return s
}

// gate is the admission of p's mode for a caller, or nil when the caller
// votes as itself: accounts always, anonymous tokens on open polls and on
// polls that take no anonymous votes (which the vote rules refuse).
func (s *Service) gate(p *poll.Poll, anonymous bool) Admission {
	if !anonymous || !p.Settings.AllowAnonymous {
		return nil
	}
	switch p.Settings.AnonymousAccess {
	case poll.AnonymousInvite, poll.AnonymousPoW:
		if s == nil {
			return unwired{}
		}
		return s.gates[p.Settings.AnonymousAccess]
	}
	return nil
}

// unwired refuses the closed modes in a process built without a Service,
// rather than letting their voters in as open.
type unwired struct{}

func (unwired) Admit(context.Context, *poll.Poll, http.Header) (Admitted, error) {
	return Admitted{}, errUnwired
}

// errUnwired answers every call of a nil Service that needs one.
var errUnwired = apperr.Unavailable("anonymous access", errors.New("not configured"))

// Voter is who a ballot on p belongs to: the caller, or for an anonymous
// caller on an invite or proof-of-work poll, the voter its code or solved
// challenge stands for (or the refusal).
func (s *Service) Voter(ctx context.Context, p *poll.Poll, caller id.ID, anonymous bool, h http.Header) (id.ID, error) {
	g := s.gate(p, anonymous)
	if g == nil {
		return caller, nil
	}
	a, err := g.Admit(ctx, p, h)
	outcome := a.Outcome
	switch {
	case errors.Is(err, ErrInviteRequired) || errors.Is(err, ErrPoWRequired):
		outcome = "missing"
	case errors.Is(err, ErrPoWExpired):
		outcome = "expired"
	case errors.Is(err, ErrInviteInvalid) || apperr.CodeOf(err) == apperr.CodePoWInvalid:
		outcome = "invalid"
	case err != nil:
		outcome = "error"
	case outcome == "":
		outcome = "admitted"
	}
	if s != nil {
		s.m.access.WithLabelValues(string(p.Settings.AnonymousAccess), outcome).Inc()
	}
	if err != nil {
		return id.ID{}, err
	}
	return a.Voter, nil
}

// Identify is who the caller reads as on p (its own vote, its request's
// status, the results of a poll that shows them to voters only): like
// Voter, but without admitting a ballot, so it reads no store and accepts
// an expired challenge. Without a credential the caller reads as itself.
func (s *Service) Identify(p *poll.Poll, caller id.ID, anonymous bool, h http.Header) (id.ID, error) {
	g := s.gate(p, anonymous)
	id, ok := g.(identifier)
	if !ok {
		return caller, nil
	}
	voter, present, err := id.identify(p, h)
	if err != nil || !present {
		return caller, err
	}
	return voter, nil
}

// Challenge issues a proof-of-work challenge for p, whatever its mode (a
// client may solve one before the owner switches to pow).
func (s *Service) Challenge(p *poll.Poll) (Challenge, error) {
	if s == nil {
		return Challenge{}, errUnwired
	}
	c, err := s.keys.newChallenge(p.ID, s.now().Add(s.cfg.PoWTTL), s.cfg.PoWDifficulty)
	if err != nil {
		return Challenge{}, err
	}
	s.m.issued.Inc()
	return c, nil
}
