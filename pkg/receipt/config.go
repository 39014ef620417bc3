package receipt

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Config is TALLY_RECEIPT_*.
//
// Keys are written as a list, comma- or newline-separated. Each entry is
// either an RFC 8032 Ed25519 seed (32 bytes, base64 standard or URL alphabet,
// padding optional) or "pub:" and a raw 32-byte public key in base64, for a
// retired key whose seed has been destroyed. The first entry signs new
// receipts and must be a seed; the rest only verify. In a file, blank lines
// and lines starting with # are skipped. Generate a seed with
// `head -c 32 /dev/urandom | base64`.
type Config struct {
	// Enabled makes the vote path issue receipts: a commitment stored with
	// each ballot, the salt in the answer that accepts it, the signed
	// receipt in the 200 and the request status. On by default; with it
	// on, production refuses to start without configured keys, because a
	// process that invented its own key would sign receipts no other
	// process, and no restart, can verify. Off, ballots are recorded
	// without a commitment and no answer carries a receipt.
	Enabled bool `env:"ENABLED" envDefault:"true"`
	// Keys is the key list inline (a secret: never logged).
	Keys string `env:"KEYS"`
	// KeysFile is a path to a file holding the key list, for a mounted secret.
	KeysFile string `env:"KEYS_FILE"`
}

// String hides the seeds so a logged Config leaks nothing.
func (c Config) String() string {
	keys := ""
	if c.Keys != "" {
		keys = "<set>"
	}
	return fmt.Sprintf("{Enabled:%t Keys:%s KeysFile:%q}", c.Enabled, keys, c.KeysFile)
}

// Configured reports whether keys were given inline or by file.
func (c Config) Configured() bool { return c.Keys != "" || c.KeysFile != "" }

// Check refuses both sources at once, a key list that does not parse, and,
// in production with receipts enabled, no keys at all. It reads KeysFile.
func (c Config) Check(production bool) error {
	if c.Keys != "" && c.KeysFile != "" {
		return errors.New("set one of TALLY_RECEIPT_KEYS and TALLY_RECEIPT_KEYS_FILE, not both")
	}
	if !c.Configured() {
		if production && c.Enabled {
			return errors.New("TALLY_RECEIPT_ENABLED needs TALLY_RECEIPT_KEYS or TALLY_RECEIPT_KEYS_FILE when TALLY_ENV=production")
		}
		return nil
	}
	_, err := c.Keyring()
	return err
}

// Keyring builds the ring the configuration names. With no keys configured
// it returns an empty ring: it serves no keys and refuses to sign.
func (c Config) Keyring() (*Keyring, error) {
	spec := c.Keys
	src := "TALLY_RECEIPT_KEYS"
	if c.KeysFile != "" {
		b, err := os.ReadFile(c.KeysFile)
		if err != nil {
			return nil, fmt.Errorf("read TALLY_RECEIPT_KEYS_FILE: %w", err)
		}
		spec, src = string(b), "TALLY_RECEIPT_KEYS_FILE"
	}
	kr, err := ParseKeys(spec)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	return kr, nil
}

// ParseKeys reads a key list (see Config). An empty list is an empty ring.
func ParseKeys(spec string) (*Keyring, error) {
	var (
		active  ed25519.PrivateKey
		retired []ed25519.PublicKey
		n       int
	)
	for _, line := range strings.Split(spec, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		for _, entry := range strings.Split(line, ",") {
			entry = strings.TrimSpace(entry)
			if entry == "" {
				continue
			}
			n++
			if pub, ok := strings.CutPrefix(entry, "pub:"); ok {
				if n == 1 {
					return nil, errors.New("the first key signs new receipts and must be a seed, not pub:")
				}
				raw, err := decode32(pub)
				if err != nil {
					return nil, fmt.Errorf("key %d: public key: %w", n, err)
				}
				retired = append(retired, ed25519.PublicKey(raw))
				continue
			}
			seed, err := decode32(entry)
			if err != nil {
				return nil, fmt.Errorf("key %d: seed: %w", n, err)
			}
			priv := ed25519.NewKeyFromSeed(seed)
			if n == 1 {
				active = priv
			} else {
				retired = append(retired, priv.Public().(ed25519.PublicKey))
			}
		}
	}
	return NewKeyring(active, retired...)
}

// decode32 reads 32 bytes of base64 in either alphabet, padded or not.
func decode32(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	enc := base64.RawStdEncoding
	if strings.ContainsAny(s, "-_") {
		enc = base64.RawURLEncoding
	}
	b, err := enc.DecodeString(s)
	if err != nil {
		return nil, errors.New("not base64")
	}
	if len(b) != 32 {
		return nil, fmt.Errorf("%d bytes, want 32", len(b))
	}
	return b, nil
}

// NewDevKeys returns a key list holding one fresh random seed: the key a dev
// process signs with when none is configured (`make run` keeps one in
// .local/dev-receipt-key so receipts survive a restart).
func NewDevKeys() (string, error) {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return "", fmt.Errorf("generate dev receipt key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(seed), nil
}
