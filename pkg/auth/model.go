// Package auth owns accounts, password hashing, and the JWTs that identify
// account holders and anonymous voters.
package auth

import (
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/id"
)

// Sentinels.
var (
	ErrEmailTaken      = apperr.New(apperr.CodeEmailTaken, "an account with this email exists")
	ErrUsernameTaken   = apperr.New(apperr.CodeUsernameTaken, "this username is taken")
	ErrBadCredentials  = apperr.New(apperr.CodeUnauthenticated, "wrong login or password")
	ErrInvalidToken    = apperr.New(apperr.CodeUnauthenticated, "missing, invalid or expired token")
	ErrUserNotFound    = apperr.New(apperr.CodeUnauthenticated, "the account behind this token no longer exists")
	ErrAnonymousCaller = apperr.New(apperr.CodeForbidden, "anonymous voter tokens cannot do this, log in with an account")
)

// User is an account.
type User struct {
	ID           id.ID
	Email        string
	Username     string
	PasswordHash string
	CreatedAt    time.Time
}

// Principal is who a request acts for: an account, or an anonymous voter
// whose id was minted with its token.
type Principal struct {
	UserID    id.ID
	Anonymous bool
	// ExpiresAt is when the token that named this principal expires (zero
	// for a principal not read from a token); long-lived connections such
	// as live sockets end then.
	ExpiresAt time.Time
	// AccountCreated is when the account was registered, carried in the
	// token (zero for anonymous voters and tokens issued before it was):
	// the bot signals watch bursts of brand-new accounts.
	AccountCreated time.Time
}

// Token is what login and anonymous sign-in return.
type Token struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"`
}

var (
	usernameRe = regexp.MustCompile(`^[a-z0-9_]{3,32}$`)
	// EmailPattern is what an email must match (after trimming): an
	// RFC 5322 dot-atom local part and a domain of dotted hostname labels.
	// Deliverability is not ours to judge. The OpenAPI document states the
	// same pattern (allowing the whitespace the server trims).
	EmailPattern = `^[A-Za-z0-9.!#$%&'*+/=?^_{|}~` + "`" + `-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$`
	emailRe      = regexp.MustCompile(EmailPattern)
)

// Password length limits, in characters (Unicode code points) as the SPEC
// and the OpenAPI document count them. A password longer than bcrypt's 72
// bytes is pre-hashed (see bcryptInput), so no character is ignored.
const (
	MinPassword = 8
	MaxPassword = 72
)

// Registration is the register request after parsing.
type Registration struct {
	Email    string
	Username string
	Password string
}

// Normalize lower-cases and trims the email; usernames are taken as given.
func (r *Registration) Normalize() {
	r.Email = strings.ToLower(strings.TrimSpace(r.Email))
}

// Validate checks the SPEC's limits.
func (r Registration) Validate() error {
	switch {
	case len(r.Email) > 254 || !emailRe.MatchString(r.Email):
		return apperr.Invalid("email", "must look like an email address")
	case !usernameRe.MatchString(r.Username):
		return apperr.Invalid("username", "must be 3 to 32 characters of a-z, 0-9 and _")
	case utf8.RuneCountInString(r.Password) < MinPassword:
		return apperr.Invalid("password", "must be at least %d characters", MinPassword)
	case utf8.RuneCountInString(r.Password) > MaxPassword:
		return apperr.Invalid("password", "must be at most %d characters", MaxPassword)
	}
	return nil
}

func errInvalid(field, msg string) error { return apperr.Invalid(field, "%s", msg) }
