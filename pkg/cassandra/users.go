package cassandra

import (
	"context"
	"errors"

	"github.com/gocql/gocql"
	"github.com/scylladb/gocqlx/v2"
	"github.com/scylladb/gocqlx/v2/qb"
	"github.com/scylladb/gocqlx/v2/table"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/auth"
)

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

var (
	insertUser = newStatement(usersTable.Insert())
	selectUser = newStatement(usersTable.Get())
)

// uniqueness is one of the tables that guard an account attribute: a row
// per value, claimed with IF NOT EXISTS.
type uniqueness struct {
	name  string // the attribute, for errors: "email"
	claim statement
	owner statement
	// release deletes the row if it is still the account's own claim.
	release statement
}

func newUniqueness(name string, t *table.Table) uniqueness {
	return uniqueness{
		name:    name,
		claim:   newStatement(t.InsertBuilder().Unique().ToCql()),
		owner:   newStatement(t.Get("user_id")),
		release: newStatement(t.DeleteBuilder().If(qb.Eq("user_id")).ToCql()),
	}
}

var (
	uniqueEmail    = newUniqueness("email", usersByEmailTable)
	uniqueUsername = newUniqueness("username", usersByUsernameTable)
)

// claim inserts the row (the value and userID) into a uniqueness table. It
// returns true when userID holds the value; unknown outcomes are resolved
// by insertIfAbsent.
func (st *UserStore) claim(ctx context.Context, u uniqueness, row any, id gocql.UUID) (bool, error) {
	applied, stored, err := insertIfAbsent{
		op: "claim " + u.name,
		attempt: func(ctx context.Context) (*gocqlx.Queryx, func(map[string]any) bool) {
			return u.claim.query(ctx, st.s).BindStruct(row), func(r map[string]any) bool { return r["user_id"] == id }
		},
		read:   func(ctx context.Context) *gocqlx.Queryx { return u.owner.query(ctx, st.s).BindStruct(row) },
		serial: st.serial,
	}.run(ctx)
	if err != nil {
		return false, err
	}
	owner, _ := stored["user_id"].(gocql.UUID)
	return applied || owner == id, nil
}

func (st *UserStore) release(ctx context.Context, u uniqueness, row any) {
	_, _, _ = execCAS(u.release.query(ctx, st.s).BindStruct(row))
}

// CreateUser claims email then username, then writes the account. A lost
// username claim releases the email claim so the address stays usable.
func (st *UserStore) CreateUser(ctx context.Context, u auth.User) error {
	email := userByEmailRow{Email: u.Email, UserID: u.ID}
	ok, err := st.claim(ctx, uniqueEmail, email, u.ID)
	if err != nil {
		return err
	}
	if !ok {
		return auth.ErrEmailTaken
	}
	ok, err = st.claim(ctx, uniqueUsername, userByUsernameRow{Username: u.Username, UserID: u.ID}, u.ID)
	if err != nil || !ok {
		st.release(context.WithoutCancel(ctx), uniqueEmail, email)
		if err != nil {
			return err
		}
		return auth.ErrUsernameTaken
	}
	if err := insertUser.query(ctx, st.s).BindStruct(toUserRow(u)).ExecRelease(); err != nil {
		return apperr.Unavailable("insert user", err)
	}
	return nil
}

// UserByID reads an account.
func (st *UserStore) UserByID(ctx context.Context, id gocql.UUID) (auth.User, error) {
	r := userRow{UserID: id}
	err := selectUser.query(ctx, st.s).BindStruct(r).GetRelease(&r)
	if errors.Is(err, gocql.ErrNotFound) {
		return auth.User{}, auth.ErrNotFound
	}
	if err != nil {
		return auth.User{}, apperr.Unavailable("read user", err)
	}
	return r.toUser(), nil
}

func (st *UserStore) lookup(ctx context.Context, u uniqueness, row any) (gocql.UUID, error) {
	var id gocql.UUID
	err := u.owner.query(ctx, st.s).BindStruct(row).GetRelease(&id)
	if errors.Is(err, gocql.ErrNotFound) {
		return id, auth.ErrNotFound
	}
	if err != nil {
		return id, apperr.Unavailable("look up "+u.name, err)
	}
	return id, nil
}

// UserIDByEmail resolves an email.
func (st *UserStore) UserIDByEmail(ctx context.Context, email string) (gocql.UUID, error) {
	return st.lookup(ctx, uniqueEmail, userByEmailRow{Email: email})
}

// UserIDByUsername resolves a username.
func (st *UserStore) UserIDByUsername(ctx context.Context, username string) (gocql.UUID, error) {
	return st.lookup(ctx, uniqueUsername, userByUsernameRow{Username: username})
}
