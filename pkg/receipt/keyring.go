package receipt

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// KeyID names a public key: the first 8 bytes of SHA-256 of its 32 raw bytes,
// base64url without padding (11 characters). Derived, never assigned, so a
// verifier holding only the key can recompute it.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return base64.RawURLEncoding.EncodeToString(sum[:8])
}

// Key is one receipt key. A retired key keeps only its public half.
type Key struct {
	ID     string
	Public ed25519.PublicKey
	// private is nil for a verify-only key.
	private ed25519.PrivateKey
}

// CanSign reports whether the key holds its private half.
func (k Key) CanSign() bool { return k.private != nil }

// Keyring holds the one key that signs new receipts and every older key that
// still verifies the receipts it signed. Rotation is: put a new seed first,
// keep the old seed (or just its public key) after it, restart. Receipts
// already issued keep verifying for as long as their key stays on the ring.
type Keyring struct {
	active *Key
	keys   []Key // active first, then retired keys in configured order
	byID   map[string]*Key
	signed prometheus.Counter // nil until Instrument
}

// NewKeyring builds a ring from an active private key and any number of
// retired keys (private or public-only; a private one is used to verify only).
// active may be nil: the ring then verifies but refuses to sign.
func NewKeyring(active ed25519.PrivateKey, retired ...ed25519.PublicKey) (*Keyring, error) {
	kr := &Keyring{byID: map[string]*Key{}}
	if active != nil {
		if len(active) != ed25519.PrivateKeySize {
			return nil, fmt.Errorf("receipt: active key has %d bytes, want %d", len(active), ed25519.PrivateKeySize)
		}
		pub := active.Public().(ed25519.PublicKey)
		kr.keys = append(kr.keys, Key{ID: KeyID(pub), Public: pub, private: active})
	}
	for _, pub := range retired {
		if len(pub) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("receipt: retired key has %d bytes, want %d", len(pub), ed25519.PublicKeySize)
		}
		kr.keys = append(kr.keys, Key{ID: KeyID(pub), Public: pub})
	}
	for i := range kr.keys {
		k := &kr.keys[i]
		if _, dup := kr.byID[k.ID]; dup {
			return nil, fmt.Errorf("receipt: key %s is configured twice", k.ID)
		}
		kr.byID[k.ID] = k
	}
	if active != nil {
		kr.active = &kr.keys[0]
	}
	return kr, nil
}

// ActiveKeyID is the id of the key that signs new receipts, or "".
func (kr *Keyring) ActiveKeyID() string {
	if kr.active == nil {
		return ""
	}
	return kr.active.ID
}

// Keys lists every key on the ring, the active one first.
func (kr *Keyring) Keys() []Key { return append([]Key(nil), kr.keys...) }

// Sign stamps r with the active key's id and signs it.
func (kr *Keyring) Sign(r *Receipt) error {
	if kr.active == nil {
		return ErrNoSigningKey
	}
	r.KeyID = kr.active.ID
	r.RecordedAt = r.RecordedAt.UTC().Truncate(time.Millisecond)
	r.Signature = ed25519.Sign(kr.active.private, r.SigningBytes())
	if kr.signed != nil {
		kr.signed.Inc()
	}
	return nil
}

// Verify checks r's signature with the key its id names.
func (kr *Keyring) Verify(r *Receipt) error {
	k, ok := kr.byID[r.KeyID]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownKey, r.KeyID)
	}
	return r.VerifyWith(k.Public)
}

// JWK is a public key in the JSON Web Key shape of RFC 8037 (OKP, Ed25519),
// as the well-known route serves it.
type JWK struct {
	KeyID string `json:"kid"`
	Kty   string `json:"kty"`
	Alg   string `json:"alg"`
	Crv   string `json:"crv"`
	// X is the raw 32-byte public key, base64url without padding.
	X string `json:"x"`
	// Use is "sig"; Active marks the key that signs new receipts.
	Use    string `json:"use"`
	Active bool   `json:"active"`
}

// JWKs lists the ring's public keys, the active one first.
func (kr *Keyring) JWKs() []JWK {
	out := make([]JWK, 0, len(kr.keys))
	for i, k := range kr.keys {
		out = append(out, JWK{KeyID: k.ID, Kty: "OKP", Alg: "EdDSA", Crv: "Ed25519",
			X: base64.RawURLEncoding.EncodeToString(k.Public), Use: "sig", Active: i == 0 && kr.active != nil})
	}
	return out
}

// PublicKeyFromJWK reads the raw key out of a JWK and checks that its kid is
// the one the key derives: the check a stand-alone verifier makes after
// fetching the well-known list.
func PublicKeyFromJWK(j JWK) (ed25519.PublicKey, error) {
	if j.Kty != "OKP" || j.Crv != "Ed25519" || (j.Alg != "" && j.Alg != "EdDSA") {
		return nil, fmt.Errorf("receipt: key %q is not an Ed25519 key", j.KeyID)
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(j.X, "="))
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("receipt: key %q has a malformed x", j.KeyID)
	}
	pub := ed25519.PublicKey(raw)
	if KeyID(pub) != j.KeyID {
		return nil, fmt.Errorf("receipt: key %q does not match its kid", j.KeyID)
	}
	return pub, nil
}

// Instrument registers the ring's metrics: how many keys it holds by state
// (an operator checks a rotation took by watching verify_only go up) and how
// many receipts it has signed. Call it once, before the ring is shared.
func (kr *Keyring) Instrument(reg prometheus.Registerer) {
	keys := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "tally_receipt_keys",
		Help: "Receipt keys on this process's ring, by state: active (signs new receipts) or verify_only."}, []string{"state"})
	active := 0
	if kr.active != nil {
		active = 1
	}
	keys.WithLabelValues("active").Set(float64(active))
	keys.WithLabelValues("verify_only").Set(float64(len(kr.keys) - active))
	kr.signed = prometheus.NewCounter(prometheus.CounterOpts{Name: "tally_receipts_signed_total",
		Help: "Receipts signed by this process."})
	reg.MustRegister(keys, kr.signed)
}
