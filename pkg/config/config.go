// Package config gathers every package's Config from the environment. Each
// package owns its own struct and defaults; this one only assembles them
// under the TALLY_ prefix.
package config

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/tally-vote/tally/pkg/abuse"
	"github.com/tally-vote/tally/pkg/admit"
	"github.com/tally-vote/tally/pkg/anonaccess"
	"github.com/tally-vote/tally/pkg/auth"
	"github.com/tally-vote/tally/pkg/cassandra"
	"github.com/tally-vote/tally/pkg/events"
	"github.com/tally-vote/tally/pkg/httpapi"
	"github.com/tally-vote/tally/pkg/inclusion"
	"github.com/tally-vote/tally/pkg/kafkax"
	"github.com/tally-vote/tally/pkg/kafkax/votes"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/ratelimit"
	"github.com/tally-vote/tally/pkg/receipt"
	"github.com/tally-vote/tally/pkg/redisx"
	"github.com/tally-vote/tally/pkg/tally"
	"github.com/tally-vote/tally/pkg/vote"
	"github.com/tally-vote/tally/pkg/webhook"
)

// Config is the whole process's configuration.
type Config struct {
	// Env is exactly "dev" (laptop defaults, generated secrets) or
	// "production" (strong secrets required, insecure switches refused).
	Env      string `env:"ENV" envDefault:"dev"`
	HTTPAddr string `env:"HTTP_ADDR" envDefault:"127.0.0.1:8080"`
	// WorkerAddr is where `tally worker` serves operators /healthz, /readyz
	// and /metrics (no API); serve answers those on HTTPAddr.
	WorkerAddr string `env:"WORKER_ADDR" envDefault:"127.0.0.1:9091"`
	// PublicURL prefixes links such as a poll's manage_url.
	PublicURL string `env:"PUBLIC_URL" envDefault:"http://127.0.0.1:8080"`
	LogLevel  string `env:"LOG_LEVEL" envDefault:"info"`
	// Pprof exposes /debug/pprof on the HTTP listener.
	Pprof bool `env:"PPROF" envDefault:"false"`
	// MigrateOnStart applies cql/ migrations when serve starts.
	MigrateOnStart bool `env:"MIGRATE_ON_START" envDefault:"false"`

	JWTSecret string `env:"JWT_SECRET"`
	// AnonAccessKey keys invite codes, proof-of-work challenges and the
	// voter ids derived from them; empty uses JWTSecret. Set it to rotate
	// the JWT secret without letting every invite code vote again.
	AnonAccessKey string `env:"ANON_ACCESS_KEY"`
	// ExportOwnerKey is the server secret of the voter pseudonyms in poll
	// owners' exports (GET /v1/polls/{id}/export), keyed per poll
	// (export.PollKey); empty uses JWTSecret. Set it to rotate the JWT
	// secret without changing every poll's pseudonyms. Unrelated to the
	// operator CLI's TALLY_EXPORT_PSEUDONYM_KEY.
	ExportOwnerKey string `env:"EXPORT_OWNER_KEY"`
	// TrustedProxies are proxy addresses whose X-Forwarded-For is believed.
	TrustedProxies []string `env:"TRUSTED_PROXIES" envSeparator:","`
	// LiveBackstop is how often each process re-reads a watched poll's
	// results without a notice: the bound on how late a lost "counts
	// changed" notice leaves live sockets and streams.
	LiveBackstop time.Duration `env:"LIVE_BACKSTOP" envDefault:"5s"`
	// LiveNoticeEvery is the least time between two "counts changed"
	// notices of one poll from one process (the last change of a burst is
	// announced at the end of its window).
	LiveNoticeEvery time.Duration `env:"LIVE_NOTICE_EVERY" envDefault:"250ms"`

	// Region names this region when several share one Cassandra cluster
	// (docs/multi-region.md): its workers record how far they have applied
	// the region's votes topic, and no region freezes a final tally before
	// every region's queue is past the poll's close. Empty: one region.
	Region string `env:"REGION"`

	HTTP      httpapi.Config        `envPrefix:"HTTP_"`
	Cassandra cassandra.Config      `envPrefix:"CASSANDRA_"`
	Redis     redisx.Config         `envPrefix:"REDIS_"`
	Kafka     kafkax.Config         `envPrefix:"KAFKA_"`
	Auth      auth.Config           `envPrefix:"AUTH_"`
	Poll      poll.Config           `envPrefix:"POLL_"`
	Tally     tally.Config          `envPrefix:"RESULTS_"`
	RateLimit ratelimit.Config      `envPrefix:"RATE_"`
	Vote      vote.Config           `envPrefix:"VOTE_"`
	Queue     votes.Config          `envPrefix:"VOTE_"`
	Worker    votes.WorkerConfig    `envPrefix:"WORKER_"`
	Reconcile tally.ReconcileConfig `envPrefix:"RECONCILE_"`
	// Events tunes the public event stream's results.changed
	// (TALLY_EVENTS_EVERY, _MIN_BALLOTS, _STEP).
	Events events.Config `envPrefix:"EVENTS_"`
	// Webhook tunes owner webhooks and their delivery (TALLY_WEBHOOK_*).
	Webhook webhook.Config `envPrefix:"WEBHOOK_"`
	Admit   admit.Config   `envPrefix:"ADMIT_"`
	Bots    abuse.Config   `envPrefix:"BOT_"`
	Receipt receipt.Config `envPrefix:"RECEIPT_"`
	// Ledger bounds the frozen ledgers held for receipt proofs
	// (TALLY_LEDGER_CACHE_LEAVES).
	Ledger inclusion.Config `envPrefix:"LEDGER_"`

	// AnonAccess is TALLY_POW_* and TALLY_INVITE_* (no prefix of its own).
	AnonAccess anonaccess.Config
}

// The two modes TALLY_ENV may name.
const (
	Dev        = "dev"
	Production = "production"
)

// MinSecretLen is the shortest JWT secret accepted in any mode.
const MinSecretLen = 32

// Load reads TALLY_* variables and checks them (see Check).
func Load() (Config, error) {
	cfg, err := env.ParseAsWithOptions[Config](env.Options{Prefix: "TALLY_"})
	if err != nil {
		return Config{}, fmt.Errorf("read environment: %w", err)
	}
	if cfg.Env == Dev && cfg.JWTSecret == "" {
		// A dev secret is random per process: tokens do not survive a restart,
		// which is the safe failure for a laptop.
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return Config{}, fmt.Errorf("generate dev jwt secret: %w", err)
		}
		cfg.JWTSecret = hex.EncodeToString(b)
	}
	if cfg.Env == Dev && !cfg.Receipt.Configured() {
		// Likewise a dev receipt key: receipts signed before a restart stop
		// verifying after it unless `make run`'s persisted key is used.
		keys, err := receipt.NewDevKeys()
		if err != nil {
			return Config{}, err
		}
		cfg.Receipt.Keys = keys
	}
	if err := cfg.Check(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// Check refuses a configuration that is unsafe to run: TALLY_ENV must be
// exactly "dev" or "production"; a JWT secret must be at least
// MinSecretLen characters in any mode; production also refuses a missing or
// low-entropy secret, pprof on the public listener, the load-test switch
// that turns off per-IP rate limits, and a wildcard allowed origin.
func (c Config) Check() error {
	switch c.Env {
	case Dev, Production:
	default:
		return fmt.Errorf("TALLY_ENV must be %q or %q, not %q", Dev, Production, c.Env)
	}
	if c.JWTSecret == "" {
		return fmt.Errorf("TALLY_JWT_SECRET is required when TALLY_ENV=%s", c.Env)
	}
	if len(c.JWTSecret) < MinSecretLen {
		// Whatever TALLY_ENV says: a short secret lets anyone forge tokens.
		return fmt.Errorf("TALLY_JWT_SECRET must be at least %d characters", MinSecretLen)
	}
	if err := c.RateLimit.Check(); err != nil {
		return err
	}
	if err := c.AnonAccess.Check(); err != nil {
		return err
	}
	if err := c.Receipt.Check(c.Env == Production); err != nil {
		return err
	}
	if c.AnonAccessKey != "" && len(c.AnonAccessKey) < MinSecretLen {
		return fmt.Errorf("TALLY_ANON_ACCESS_KEY must be at least %d characters", MinSecretLen)
	}
	if c.ExportOwnerKey != "" && len(c.ExportOwnerKey) < MinSecretLen {
		return fmt.Errorf("TALLY_EXPORT_OWNER_KEY must be at least %d characters", MinSecretLen)
	}
	if c.Env != Production {
		return nil
	}
	if why := weakSecret(c.ExportOwnerKey); c.ExportOwnerKey != "" && why != "" {
		return fmt.Errorf("TALLY_EXPORT_OWNER_KEY is too predictable for production (%s)", why)
	}
	if why := weakSecret(c.AnonAccessKey); c.AnonAccessKey != "" && why != "" {
		return fmt.Errorf("TALLY_ANON_ACCESS_KEY is too predictable for production (%s)", why)
	}
	if why := weakSecret(c.JWTSecret); why != "" {
		return fmt.Errorf("TALLY_JWT_SECRET is too predictable for production (%s); use e.g. `head -c 32 /dev/urandom | base64`", why)
	}
	if c.Pprof {
		return errors.New("TALLY_PPROF exposes process internals on the public listener and is refused when TALLY_ENV=production")
	}
	if c.RateLimit.DisablePerIP {
		return errors.New("TALLY_RATE_DISABLE_PER_IP is the load-test switch and is refused when TALLY_ENV=production")
	}
	for _, o := range c.HTTP.AllowedOrigins {
		if o == "*" {
			return errors.New("TALLY_HTTP_ALLOWED_ORIGINS may not be * when TALLY_ENV=production; list the origins")
		}
	}
	return nil
}

// weakSecret says why a secret looks guessable, or "". It is a heuristic
// against the usual mistakes (a word repeated, a keyboard run, a short
// alphabet), not a proof of randomness: it wants at least 3 bits of
// Shannon entropy per character over at least 10 distinct characters, and
// refuses a secret that is one block repeated.
func weakSecret(s string) string {
	freq := map[rune]int{}
	n := 0
	for _, r := range s {
		freq[r]++
		n++
	}
	if len(freq) < 10 {
		return fmt.Sprintf("only %d distinct characters", len(freq))
	}
	h := 0.0
	for _, k := range freq {
		p := float64(k) / float64(n)
		h -= p * math.Log2(p)
	}
	if h < 3 {
		return fmt.Sprintf("%.1f bits of entropy per character", h)
	}
	for period := 1; period <= len(s)/2; period++ {
		if s[period:] == s[:len(s)-period] {
			return "a repeated block"
		}
	}
	return ""
}

// ExportKey is the secret of owner exports' pseudonyms: ExportOwnerKey, or
// JWTSecret when it is unset (random per process in dev unless `make run`
// keeps one in .local/dev-jwt-secret, so pseudonyms change with it).
func (c Config) ExportKey() []byte {
	if c.ExportOwnerKey != "" {
		return []byte(c.ExportOwnerKey)
	}
	return []byte(c.JWTSecret)
}
