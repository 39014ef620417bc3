package cassandra

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gocql/gocql"
	"github.com/scylladb/gocqlx/v2"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/auth"
)

type userRow struct {
	UserID       gocql.UUID
	Email        string
	Username     string
	PasswordHash string
	CreatedAt    time.Time
}

// UserStore implements auth.Store.
type UserStore struct {
	s      gocqlx.Session
	serial gocql.SerialConsistency
}

// NewUserStore builds the store.
func NewUserStore(s gocqlx.Session, cfg Config) *UserStore {
	serial, _ := parseSerial(cfg.SerialConsistency)
	return &UserStore{s: s, serial: serial}
}

// claim inserts key -> userID into a uniqueness table with IF NOT EXISTS.
// It returns true when userID holds the key, resolving unknown outcomes by
// a serial read and re-issuing (a bounded number of times) when that read
// shows the insert did not apply.
func (st *UserStore) claim(ctx context.Context, tbl, col, key string, id gocql.UUID) (bool, error) {
	insert := fmt.Sprintf("INSERT INTO %s (%s, user_id) VALUES (?, ?) IF NOT EXISTS", tbl, col)
	read := fmt.Sprintf("SELECT user_id FROM %s WHERE %s = ?", tbl, col)
	for range maxLWTAttempts {
		applied, existing, err := casInsert(st.s.Session.Query(insert, key, id).WithContext(ctx))
		if err == nil {
			owner, _ := existing["user_id"].(gocql.UUID)
			return applied || owner == id, nil
		}
		if !outcomeUnknown(err) {
			return false, apperr.Unavailable("claim "+col, err)
		}
		var owner gocql.UUID
		err = serialRead(st.s.Session.Query(read, key).WithContext(ctx), st.serial).Scan(&owner)
		switch {
		case errors.Is(err, gocql.ErrNotFound):
			continue
		case err != nil:
			return false, apperr.Unavailable("resolve "+col+" claim", err)
		}
		return owner == id, nil
	}
	return false, apperr.Unavailable("claim "+col, errors.New("outcome unresolved"))
}

func (st *UserStore) release(ctx context.Context, tbl, col, key string, id gocql.UUID) {
	stmt := fmt.Sprintf("DELETE FROM %s WHERE %s = ? IF user_id = ?", tbl, col)
	_, _ = st.s.Session.Query(stmt, key, id).WithContext(ctx).MapScanCAS(map[string]any{})
}

// CreateUser claims email then username, then writes the account. A lost
// username claim releases the email claim so the address stays usable.
func (st *UserStore) CreateUser(ctx context.Context, u auth.User) error {
	ok, err := st.claim(ctx, "users_by_email", "email", u.Email, u.ID)
	if err != nil {
		return err
	}
	if !ok {
		return auth.ErrEmailTaken
	}
	ok, err = st.claim(ctx, "users_by_username", "username", u.Username, u.ID)
	if err != nil || !ok {
		st.release(context.WithoutCancel(ctx), "users_by_email", "email", u.Email, u.ID)
		if err != nil {
			return err
		}
		return auth.ErrUsernameTaken
	}
	row := userRow{UserID: u.ID, Email: u.Email, Username: u.Username, PasswordHash: u.PasswordHash, CreatedAt: u.CreatedAt}
	if err := st.s.Query(usersTable.Insert()).WithContext(ctx).BindStruct(row).ExecRelease(); err != nil {
		return apperr.Unavailable("insert user", err)
	}
	return nil
}

// UserByID reads an account.
func (st *UserStore) UserByID(ctx context.Context, id gocql.UUID) (auth.User, error) {
	var r userRow
	err := st.s.Query(usersTable.Get()).WithContext(ctx).BindMap(map[string]any{"user_id": id}).GetRelease(&r)
	if errors.Is(err, gocql.ErrNotFound) {
		return auth.User{}, auth.ErrNotFound
	}
	if err != nil {
		return auth.User{}, apperr.Unavailable("read user", err)
	}
	return auth.User{ID: r.UserID, Email: r.Email, Username: r.Username, PasswordHash: r.PasswordHash, CreatedAt: r.CreatedAt}, nil
}

func (st *UserStore) lookup(ctx context.Context, tbl, col, key string) (gocql.UUID, error) {
	var id gocql.UUID
	err := st.s.Session.Query(fmt.Sprintf("SELECT user_id FROM %s WHERE %s = ?", tbl, col), key).WithContext(ctx).Scan(&id)
	if errors.Is(err, gocql.ErrNotFound) {
		return id, auth.ErrNotFound
	}
	if err != nil {
		return id, apperr.Unavailable("look up "+col, err)
	}
	return id, nil
}

// UserIDByEmail resolves an email.
func (st *UserStore) UserIDByEmail(ctx context.Context, email string) (gocql.UUID, error) {
	return st.lookup(ctx, "users_by_email", "email", email)
}

// UserIDByUsername resolves a username.
func (st *UserStore) UserIDByUsername(ctx context.Context, username string) (gocql.UUID, error) {
	return st.lookup(ctx, "users_by_username", "username", username)
}
