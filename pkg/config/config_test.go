package config

import (
	"strings"
	"testing"

	"github.com/tally-vote/tally/pkg/httpapi"
	"github.com/tally-vote/tally/pkg/ratelimit"
	"github.com/tally-vote/tally/pkg/receipt"
)

// strong is 32 random bytes, base64: what the README tells operators to use.
const strong = "q3Vt0mB9x+Zr1aKcE7uYw2LsPn4dHf6Gj8Ti5Ro0Mk="

func TestCheck(t *testing.T) {
	prod := func(mod func(*Config)) Config {
		c := Config{Env: Production, JWTSecret: strong}
		if mod != nil {
			mod(&c)
		}
		return c
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // "" means accepted; else a fragment of the error
	}{
		{"production with a strong secret", prod(nil), ""},
		{"dev with a strong secret", Config{Env: Dev, JWTSecret: strong}, ""},
		{"dev keeps a 32-char test secret", Config{Env: Dev, JWTSecret: "test-secret-0123456789abcdef0123456789"}, ""},
		{"env empty", Config{Env: "", JWTSecret: strong}, "TALLY_ENV must be"},
		{"env capitalised", Config{Env: "Production", JWTSecret: strong}, "TALLY_ENV must be"},
		{"env prod abbreviation", Config{Env: "prod", JWTSecret: strong}, "TALLY_ENV must be"},
		{"env with a space", Config{Env: "production ", JWTSecret: strong}, "TALLY_ENV must be"},
		{"production without a secret", prod(func(c *Config) { c.JWTSecret = "" }), "required"},
		{"short secret in dev", Config{Env: Dev, JWTSecret: "short-secret"}, "at least 32"},
		{"short secret in production", prod(func(c *Config) { c.JWTSecret = "0123456789abcdef" }), "at least 32"},
		{"one letter repeated", prod(func(c *Config) { c.JWTSecret = strings.Repeat("a", 40) }), "distinct"},
		{"a word repeated", prod(func(c *Config) { c.JWTSecret = strings.Repeat("password", 5) }), "distinct"},
		{"a run repeated", prod(func(c *Config) { c.JWTSecret = strings.Repeat("0123456789abcdef", 2) }), "repeated"},
		{"low entropy", prod(func(c *Config) { c.JWTSecret = "aaaaaaaaaaaaaaaaaaaaaaabcdefghij" + "aaaaaaaaaa" }), "entropy"},
		{"pprof in production", prod(func(c *Config) { c.Pprof = true }), "TALLY_PPROF"},
		{"pprof in dev", Config{Env: Dev, JWTSecret: strong, Pprof: true}, ""},
		{"per-IP limits off in production", prod(func(c *Config) { c.RateLimit = ratelimit.Config{DisablePerIP: true} }), "TALLY_RATE_DISABLE_PER_IP"},
		{"wildcard origin in production", prod(func(c *Config) { c.HTTP = httpapi.Config{AllowedOrigins: []string{"*"}} }), "ALLOWED_ORIGINS"},
		{"listed origin in production", prod(func(c *Config) { c.HTTP = httpapi.Config{AllowedOrigins: []string{"https://app.example"}} }), ""},
		{"receipts on in production without a key", prod(func(c *Config) { c.Receipt = receipt.Config{Enabled: true} }), "TALLY_RECEIPT_KEYS"},
		{"receipts on in production with a key", prod(func(c *Config) {
			c.Receipt = receipt.Config{Enabled: true, Keys: "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A="}
		}), ""},
		{"receipts off in production without a key", prod(nil), ""},
		{"a malformed receipt key in dev", Config{Env: Dev, JWTSecret: strong, Receipt: receipt.Config{Keys: "abc"}}, "TALLY_RECEIPT_KEYS"},
		{"short export owner key in dev", Config{Env: Dev, JWTSecret: strong, ExportOwnerKey: "short"}, "TALLY_EXPORT_OWNER_KEY"},
		{"weak export owner key in production", prod(func(c *Config) { c.ExportOwnerKey = strings.Repeat("a", 40) }), "TALLY_EXPORT_OWNER_KEY"},
		{"strong export owner key in production", prod(func(c *Config) { c.ExportOwnerKey = strong }), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Check()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestExportKey(t *testing.T) {
	c := Config{JWTSecret: strong}
	if string(c.ExportKey()) != strong {
		t.Fatal("without TALLY_EXPORT_OWNER_KEY the export key is not the JWT secret")
	}
	c.ExportOwnerKey = "another-secret-0123456789abcdefghij"
	if string(c.ExportKey()) != c.ExportOwnerKey {
		t.Fatal("TALLY_EXPORT_OWNER_KEY is not the export key")
	}
}

func TestLoad(t *testing.T) {
	t.Run("dev generates a secret", func(t *testing.T) {
		t.Setenv("TALLY_ENV", "dev")
		t.Setenv("TALLY_JWT_SECRET", "")
		cfg, err := Load()
		if err != nil || len(cfg.JWTSecret) < MinSecretLen || weakSecret(cfg.JWTSecret) != "" {
			t.Fatalf("%v %q", err, cfg.JWTSecret)
		}
		if cfg.HTTP.ReadTimeout <= 0 || cfg.HTTP.WriteTimeout <= 0 || cfg.HTTP.IdleTimeout <= 0 || cfg.HTTP.MaxHeaderBytes <= 0 {
			t.Fatalf("http limits default to none: %+v", cfg.HTTP)
		}
		if len(cfg.HTTP.AllowedOrigins) != 0 {
			t.Fatalf("CORS open by default: %v", cfg.HTTP.AllowedOrigins)
		}
		if kr, err := cfg.Receipt.Keyring(); err != nil || kr.ActiveKeyID() == "" {
			t.Fatalf("dev has no receipt signing key: %v", err)
		}
	})
	t.Run("an unknown mode is a startup error", func(t *testing.T) {
		t.Setenv("TALLY_ENV", "staging")
		t.Setenv("TALLY_JWT_SECRET", strong)
		if _, err := Load(); err == nil {
			t.Fatal("TALLY_ENV=staging accepted")
		}
	})
	t.Run("production generates nothing", func(t *testing.T) {
		t.Setenv("TALLY_ENV", "production")
		t.Setenv("TALLY_JWT_SECRET", "")
		if _, err := Load(); err == nil {
			t.Fatal("production started without a secret")
		}
	})
}
