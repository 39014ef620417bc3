package auth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"time"

	"github.com/tally-vote/tally/pkg/id"
	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"
)

// Store is what the service needs from the system of record.
type Store interface {
	// CreateUser claims the email and username with LWTs, then writes the
	// user. It returns ErrEmailTaken or ErrUsernameTaken when a claim loses.
	CreateUser(ctx context.Context, u User) error
	UserByID(ctx context.Context, id id.ID) (User, error)
	UserIDByEmail(ctx context.Context, email string) (id.ID, error)
	UserIDByUsername(ctx context.Context, username string) (id.ID, error)
}

// ErrNotFound is what a Store returns for a missing user.
var ErrNotFound = errors.New("user not found")

// Config tunes hashing and tokens.
type Config struct {
	TokenTTL   time.Duration `env:"TOKEN_TTL" envDefault:"24h"`
	BcryptCost int           `env:"BCRYPT_COST" envDefault:"10"`
}

// Service registers accounts and issues tokens.
type Service struct {
	cfg    Config
	store  Store
	tokens *Tokens
	log    *zap.Logger
	now    func() time.Time
	// dummyHash is compared against when a login names no account, so both
	// paths cost one bcrypt comparison and timing does not reveal which
	// logins exist.
	dummyHash []byte
}

// NewService builds the service.
func NewService(cfg Config, store Store, tokens *Tokens, log *zap.Logger, now func() time.Time) *Service {
	h, _ := bcrypt.GenerateFromPassword([]byte("not-a-real-password"), cfg.BcryptCost)
	return &Service{cfg: cfg, store: store, tokens: tokens, log: log, now: now, dummyHash: h}
}

// Register creates an account.
func (s *Service) Register(ctx context.Context, r Registration) (User, error) {
	r.Normalize()
	if err := r.Validate(); err != nil {
		return User{}, err
	}
	hash, err := bcrypt.GenerateFromPassword(bcryptInput(r.Password), s.cfg.BcryptCost)
	if err != nil {
		return User{}, err
	}
	u := User{
		ID:           id.New(),
		Email:        r.Email,
		Username:     r.Username,
		PasswordHash: string(hash),
		CreatedAt:    s.now().UTC().Truncate(time.Millisecond),
	}
	if err := s.store.CreateUser(ctx, u); err != nil {
		return User{}, err
	}
	s.log.Info("user registered", zap.Stringer("user_id", u.ID))
	return u, nil
}

// Login checks a password against the account named by email or username.
func (s *Service) Login(ctx context.Context, login, password string) (Token, error) {
	login = strings.TrimSpace(login)
	if login == "" {
		return Token{}, errInvalid("login", "is required")
	}
	if password == "" {
		return Token{}, errInvalid("password", "is required")
	}
	var (
		id  id.ID
		err error
	)
	if strings.Contains(login, "@") {
		id, err = s.store.UserIDByEmail(ctx, strings.ToLower(login))
	} else {
		id, err = s.store.UserIDByUsername(ctx, login)
	}
	if errors.Is(err, ErrNotFound) {
		_ = bcrypt.CompareHashAndPassword(s.dummyHash, bcryptInput(password))
		return Token{}, ErrBadCredentials
	}
	if err != nil {
		return Token{}, err
	}
	u, err := s.store.UserByID(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return Token{}, ErrBadCredentials
	}
	if err != nil {
		return Token{}, err
	}
	if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), bcryptInput(password)) != nil {
		return Token{}, ErrBadCredentials
	}
	return s.tokens.Issue(Principal{UserID: u.ID, AccountCreated: u.CreatedAt})
}

// Anonymous mints a voter identity and its token. Each call is a new voter;
// deduplication then works on that id exactly as on an account's.
func (s *Service) Anonymous() (Token, error) {
	return s.tokens.Issue(Principal{UserID: id.New(), Anonymous: true})
}

// Me returns the caller's account.
func (s *Service) Me(ctx context.Context, p Principal) (User, error) {
	if p.Anonymous {
		return User{}, ErrAnonymousCaller
	}
	u, err := s.store.UserByID(ctx, p.UserID)
	if errors.Is(err, ErrNotFound) {
		return User{}, ErrUserNotFound
	}
	return u, err
}

// Verify resolves a bearer token.
func (s *Service) Verify(raw string) (Principal, error) { return s.tokens.Verify(raw) }

// bcryptInput is what bcrypt hashes for a password. bcrypt reads at most 72
// bytes, and 72 characters of UTF-8 may take up to 288: a password over 72
// bytes is hashed with SHA-256 first (43 bytes in unpadded base64, with a
// prefix), so every character counts. Passwords of at most 72 bytes are
// hashed as they are, which keeps every hash stored before this rule valid
// (longer passwords were refused then).
func bcryptInput(password string) []byte {
	if len(password) <= 72 {
		return []byte(password)
	}
	sum := sha256.Sum256([]byte(password))
	return []byte("sha256:" + base64.RawStdEncoding.EncodeToString(sum[:]))
}
