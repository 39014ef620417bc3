// Package abuse watches votes for signs of automation: counters in Redis
// per poll and window (votes from one IP, one device fingerprint, one user
// agent, brand-new accounts, anonymous voters from one IP) whose crossing
// flags the vote with the rule's name. The poll's bot policy decides what a
// flag does: nothing is checked (off), the vote is recorded and counted with
// its reasons so the owner can re-tally without it (flag), or it is refused
// with 403 SUSPICIOUS_ACTIVITY (reject). Nothing is silently dropped.
//
// This package holds the rules as data (Check's keys and arguments); the
// counters are counted inside the vote's one Redis round trip, by the
// admission script (pkg/redisx/admission), which hands back what they
// tripped (Settle). With Redis down the checks are skipped and counted: a
// vote is never refused because the signals are unavailable.
package abuse

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash/fnv"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/clientip"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/redisx"
)

// ErrSuspicious refuses a vote that tripped a bot signal on a poll whose
// policy is reject.
var ErrSuspicious = apperr.New(apperr.CodeSuspiciousActivity, "this vote looks automated and the poll refuses such votes")

// The rules, by the name stored in a ballot's flags and used as a metric
// label.
const (
	// RuleIPBurst: many votes on one poll from one IP (many accounts
	// behind one address) within a short window.
	RuleIPBurst = "ip_burst"
	// RuleDeviceReuse: one device fingerprint voting on one poll as
	// several voters.
	RuleDeviceReuse = "device_reuse"
	// RuleUserAgentBurst: a burst of votes on one poll carrying one user
	// agent string.
	RuleUserAgentBurst = "user_agent_burst"
	// RuleNewAccountBurst: a burst of votes on one poll from accounts
	// registered moments ago.
	RuleNewAccountBurst = "new_account_burst"
	// RuleAnonymousIP: many anonymous voters on one poll from one IP
	// (anonymous token farming).
	RuleAnonymousIP = "anonymous_ip"
)

// Rules lists every rule, in a stable order.
var Rules = []string{RuleIPBurst, RuleDeviceReuse, RuleUserAgentBurst, RuleNewAccountBurst, RuleAnonymousIP}

// Config holds each rule's threshold (votes allowed in its window before
// the next one is flagged; 0 turns the rule off) and window.
type Config struct {
	IPBurst          int           `env:"IP_BURST" envDefault:"20"`
	IPBurstWindow    time.Duration `env:"IP_BURST_WINDOW" envDefault:"1m"`
	DeviceReuse      int           `env:"DEVICE_REUSE" envDefault:"2"`
	DeviceWindow     time.Duration `env:"DEVICE_WINDOW" envDefault:"24h"`
	UserAgentBurst   int           `env:"USER_AGENT_BURST" envDefault:"300"`
	UserAgentWindow  time.Duration `env:"USER_AGENT_WINDOW" envDefault:"1m"`
	NewAccountBurst  int           `env:"NEW_ACCOUNT_BURST" envDefault:"20"`
	NewAccountWindow time.Duration `env:"NEW_ACCOUNT_WINDOW" envDefault:"1m"`
	// NewAccountAge is how young an account counts as brand-new.
	NewAccountAge   time.Duration `env:"NEW_ACCOUNT_AGE" envDefault:"1h"`
	AnonymousPerIP  int           `env:"ANONYMOUS_PER_IP" envDefault:"5"`
	AnonymousWindow time.Duration `env:"ANONYMOUS_WINDOW" envDefault:"1h"`
}

// Signals are what a vote request shows about its sender.
type Signals struct {
	IP        string
	UserAgent string
	// Device is the keyed hash of the client's device fingerprint
	// (DeviceHash of header X-Device-Fingerprint), or empty.
	Device    string
	Anonymous bool
	// AccountCreated is the voter's registration time, zero if unknown.
	AccountCreated time.Time
}

// MaxDevice bounds the fingerprint read from a request; longer ones are
// cut before hashing.
const MaxDevice = 256

// Detector builds each vote's Check and counts what checks found.
type Detector struct {
	cfg     Config
	key     []byte
	now     func() time.Time
	signals *prometheus.CounterVec
	checks  *prometheus.CounterVec
}

// NewDetector builds a detector; secret keys the device fingerprint hash
// (the same secret on every process). It registers its metrics.
func NewDetector(cfg Config, secret []byte, now func() time.Time, reg prometheus.Registerer) *Detector {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("tally device fingerprints"))
	d := &Detector{cfg: cfg, key: m.Sum(nil), now: now,
		signals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_bot_signals_total",
			Help: "Votes that tripped a bot rule, by rule and what the poll's policy did: flagged (recorded with the reason) or rejected (403 SUSPICIOUS_ACTIVITY).",
		}, []string{"rule", "action"}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_bot_checks_total",
			Help: "Bot checks of votes by result: clean, flagged, rejected, skipped (Redis unavailable: the vote went on unchecked).",
		}, []string{"result"}),
	}
	reg.MustRegister(d.signals, d.checks)
	for _, r := range Rules {
		for _, a := range []string{"flagged", "rejected"} {
			d.signals.WithLabelValues(r, a) // exported at zero, so increase() sees the first one
		}
	}
	for _, r := range []string{"clean", "flagged", "rejected", "skipped"} {
		d.checks.WithLabelValues(r)
	}
	return d
}

// DeviceHash is the keyed hash of a device fingerprint stored with a
// ballot: stable for one device, meaningless without the key.
func (d *Detector) DeviceHash(raw string) string {
	if d == nil || raw == "" {
		return ""
	}
	if len(raw) > MaxDevice {
		raw = raw[:MaxDevice]
	}
	m := hmac.New(sha256.New, d.key)
	m.Write([]byte(raw))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// Check is one vote's rule counters, to be counted once by the admission
// script (Keys, Args, then Settle with what it tripped). A nil Check has
// nothing to count. It is used by one request.
type Check struct {
	d      *Detector
	reject bool
	rules  []counter
	done   bool
}

type counter struct {
	key, name string
	limit     int
	window    time.Duration
}

// For builds the check of a vote on p with signals s: the rules that
// apply, or nil when the poll's policy is off (or d is nil).
func (d *Detector) For(p *poll.Poll, s Signals) *Check {
	policy := p.Settings.BotPolicy
	if d == nil || policy == poll.BotOff {
		return nil
	}
	c := &Check{d: d, reject: policy == poll.BotReject}
	add := func(name, subject string, limit int, window time.Duration) {
		if limit > 0 && window > 0 && subject != "" {
			c.rules = append(c.rules, counter{key: redisx.BotSignal(p.ID, name, subject), name: name, limit: limit, window: window})
		}
	}
	// An IPv6 client counts as its /64 (clientip.Key): one host picks
	// addresses in it at will.
	ip := clientip.Key(s.IP)
	add(RuleIPBurst, ip, d.cfg.IPBurst, d.cfg.IPBurstWindow)
	add(RuleDeviceReuse, s.Device, d.cfg.DeviceReuse, d.cfg.DeviceWindow)
	if s.UserAgent != "" {
		h := fnv.New64a()
		h.Write([]byte(s.UserAgent))
		add(RuleUserAgentBurst, strconv.FormatUint(h.Sum64(), 16), d.cfg.UserAgentBurst, d.cfg.UserAgentWindow)
	}
	if !s.Anonymous && !s.AccountCreated.IsZero() && d.now().Sub(s.AccountCreated) < d.cfg.NewAccountAge {
		add(RuleNewAccountBurst, "all", d.cfg.NewAccountBurst, d.cfg.NewAccountWindow)
	}
	// On an invite or proof-of-work poll an anonymous voter is one code or
	// one solved challenge, so farming tokens gains nothing: a classroom of
	// invited voters behind one address is not flagged for it.
	if s.Anonymous && (p.Settings.AnonymousAccess == "" || p.Settings.AnonymousAccess == poll.AnonymousOpen) {
		add(RuleAnonymousIP, ip, d.cfg.AnonymousPerIP, d.cfg.AnonymousWindow)
	}
	return c
}

// Pending reports whether the check still has counters to count.
func (c *Check) Pending() bool { return c != nil && !c.done && len(c.rules) > 0 }

// Keys are the check's counter keys, one per rule in the order of Args;
// none once counted.
func (c *Check) Keys() []string {
	if !c.Pending() {
		return nil
	}
	keys := make([]string, len(c.rules))
	for i, r := range c.rules {
		keys[i] = r.key
	}
	return keys
}

// Args are the check's arguments: the number of rules, 1 to reject, then
// limit, window (ms) and name of each ({0, 0} once counted). A counter's
// window starts at its first vote (fixed windows: cheap, and a burst shows
// up within one); a vote past a rule's limit trips it.
func (c *Check) Args() []any {
	if !c.Pending() {
		return []any{0, 0}
	}
	reject := 0
	if c.reject {
		reject = 1
	}
	args := make([]any, 0, 2+3*len(c.rules))
	args = append(args, len(c.rules), reject)
	for _, r := range c.rules {
		args = append(args, r.limit, r.window.Milliseconds(), r.name)
	}
	return args
}

// Settle takes what the counters tripped (the rules' names, in any order,
// repeats allowed) and whether the script refused the vote for it, counts
// the outcome and returns the vote's flags (sorted), or ErrSuspicious for
// a refused vote.
func (c *Check) Settle(tripped []string, rejected bool) ([]string, error) {
	if !c.Pending() {
		return nil, nil
	}
	c.done = true
	var flags []string
	if len(tripped) > 0 {
		flags = slices.Clone(tripped)
		slices.Sort(flags)
		flags = slices.Compact(flags)
	}
	return c.d.settle(flags, rejected)
}

// Skip marks the check as not done because Redis did not answer: the
// vote goes on unchecked, and the skip is counted.
func (c *Check) Skip() {
	if c.Pending() {
		c.done = true
		c.d.checks.WithLabelValues("skipped").Inc()
	}
}

// settle counts a checked vote's outcome and returns its flags, or
// ErrSuspicious when rejected.
func (d *Detector) settle(flags []string, rejected bool) ([]string, error) {
	switch {
	case len(flags) == 0:
		d.checks.WithLabelValues("clean").Inc()
		return nil, nil
	case rejected:
		d.checks.WithLabelValues("rejected").Inc()
		for _, f := range flags {
			d.signals.WithLabelValues(f, "rejected").Inc()
		}
		// The refusal does not say which rule: that would teach a bot
		// what to vary.
		return flags, ErrSuspicious
	}
	d.checks.WithLabelValues("flagged").Inc()
	for _, f := range flags {
		d.signals.WithLabelValues(f, "flagged").Inc()
	}
	return flags, nil
}
