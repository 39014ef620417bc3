// Package config gathers every package's Config from the environment. Each
// package owns its own struct and defaults; this one only assembles them
// under the TALLY_ prefix.
package config

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	"time"

	"github.com/caarlos0/env/v11"

	"github.com/tally-vote/tally/pkg/admit"
	"github.com/tally-vote/tally/pkg/auth"
	"github.com/tally-vote/tally/pkg/cassandra"
	"github.com/tally-vote/tally/pkg/kafkax"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/queue"
	"github.com/tally-vote/tally/pkg/ratelimit"
	"github.com/tally-vote/tally/pkg/redisx"
	"github.com/tally-vote/tally/pkg/tally"
	"github.com/tally-vote/tally/pkg/vote"
)

// Config is the whole process's configuration.
type Config struct {
	// Env is "dev" (laptop defaults, generated secrets) or "production"
	// (secrets required).
	Env      string `env:"ENV" envDefault:"dev"`
	HTTPAddr string `env:"HTTP_ADDR" envDefault:"127.0.0.1:8080"`
	// PublicURL prefixes links such as a poll's manage_url.
	PublicURL string `env:"PUBLIC_URL" envDefault:"http://127.0.0.1:8080"`
	LogLevel  string `env:"LOG_LEVEL" envDefault:"info"`
	// Pprof exposes /debug/pprof on the HTTP listener.
	Pprof bool `env:"PPROF" envDefault:"false"`
	// MigrateOnStart applies cql/ migrations when serve starts.
	MigrateOnStart bool `env:"MIGRATE_ON_START" envDefault:"false"`

	JWTSecret string `env:"JWT_SECRET"`
	// TrustedProxies are proxy addresses whose X-Forwarded-For is believed.
	TrustedProxies []string `env:"TRUSTED_PROXIES" envSeparator:","`
	// LiveInterval is how often live-results sockets are refreshed.
	LiveInterval time.Duration `env:"LIVE_INTERVAL" envDefault:"1s"`

	Cassandra cassandra.Config      `envPrefix:"CASSANDRA_"`
	Redis     redisx.Config         `envPrefix:"REDIS_"`
	Kafka     kafkax.Config         `envPrefix:"KAFKA_"`
	Auth      auth.Config           `envPrefix:"AUTH_"`
	Poll      poll.Config           `envPrefix:"POLL_"`
	Tally     tally.Config          `envPrefix:"RESULTS_"`
	RateLimit ratelimit.Config      `envPrefix:"RATE_"`
	Vote      vote.Config           `envPrefix:"VOTE_"`
	Queue     queue.Config          `envPrefix:"VOTE_"`
	Worker    queue.WorkerConfig    `envPrefix:"WORKER_"`
	Reconcile tally.ReconcileConfig `envPrefix:"RECONCILE_"`
	Admit     admit.Config          `envPrefix:"ADMIT_"`
}

// Load reads TALLY_* variables.
func Load() (Config, error) {
	cfg, err := env.ParseAsWithOptions[Config](env.Options{Prefix: "TALLY_"})
	if err != nil {
		return Config{}, fmt.Errorf("read environment: %w", err)
	}
	if cfg.JWTSecret == "" {
		if cfg.Env == "production" {
			return Config{}, errors.New("TALLY_JWT_SECRET is required when TALLY_ENV=production")
		}
		// A dev secret is random per process: tokens do not survive a restart,
		// which is the safe failure for a laptop.
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return Config{}, fmt.Errorf("generate dev jwt secret: %w", err)
		}
		cfg.JWTSecret = hex.EncodeToString(b)
	} else if len(cfg.JWTSecret) < 32 {
		// Whatever TALLY_ENV says: a short secret lets anyone forge tokens.
		return Config{}, errors.New("TALLY_JWT_SECRET must be at least 32 characters")
	}
	return cfg, nil
}
