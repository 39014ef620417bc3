package auth

import (
	"errors"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/tally-vote/tally/pkg/id"
)

const issuer = "tally"

type claims struct {
	Anonymous bool `json:"anon,omitempty"`
	// AccountCreated is the account's registration time, unix seconds.
	AccountCreated int64 `json:"acct,omitempty"`
	jwt.RegisteredClaims
}

// Tokens signs and verifies HS256 JWTs.
type Tokens struct {
	secret []byte
	ttl    time.Duration
	now    func() time.Time
	parser *jwt.Parser
	// key hands the parser the secret, built once with the secret already
	// boxed into an interface: one allocation less per Verify than a
	// closure returning t.secret.
	key jwt.Keyfunc
}

// NewTokens builds a signer. now is injected so tests control expiry.
func NewTokens(secret string, ttl time.Duration, now func() time.Time) *Tokens {
	var key any = []byte(secret)
	return &Tokens{
		key:    func(*jwt.Token) (any, error) { return key, nil },
		secret: []byte(secret),
		ttl:    ttl,
		now:    now,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithIssuer(issuer),
			jwt.WithExpirationRequired(),
			jwt.WithTimeFunc(now),
		),
	}
}

// Issue signs a token for p.
func (t *Tokens) Issue(p Principal) (Token, error) {
	now := t.now()
	var created int64
	if !p.AccountCreated.IsZero() {
		created = p.AccountCreated.Unix()
	}
	c := claims{
		AccountCreated: created,
		Anonymous:      p.Anonymous,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    issuer,
			Subject:   p.UserID.String(),
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(t.ttl)),
		},
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(t.secret)
	if err != nil {
		return Token{}, err
	}
	return Token{AccessToken: s, TokenType: "Bearer", ExpiresIn: int(t.ttl.Seconds())}, nil
}

// Verify checks signature, algorithm, issuer and expiry. Every failure is
// ErrInvalidToken: callers learn nothing about why.
func (t *Tokens) Verify(raw string) (Principal, error) {
	var c claims
	tok, err := t.parser.ParseWithClaims(raw, &c, t.key)
	if err != nil || !tok.Valid {
		return Principal{}, errors.Join(ErrInvalidToken, err)
	}
	id, err := id.Parse(c.Subject)
	if err != nil {
		return Principal{}, errors.Join(ErrInvalidToken, err)
	}
	pr := Principal{UserID: id, Anonymous: c.Anonymous, ExpiresAt: c.ExpiresAt.Time}
	if c.AccountCreated > 0 {
		pr.AccountCreated = time.Unix(c.AccountCreated, 0).UTC()
	}
	return pr, nil
}
