package cassandra

import (
	"context"
	"errors"
	"time"

	"github.com/gocql/gocql"
	"github.com/scylladb/gocqlx/v2"
	"github.com/scylladb/gocqlx/v2/qb"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/auth"
	"github.com/tally-vote/tally/pkg/id"
)

// UserStore implements auth.Store.
type UserStore struct {
	s      gocqlx.Session
	serial gocql.SerialConsistency
	now    func() time.Time
}

// NewUserStore builds the store.
func NewUserStore(s gocqlx.Session, cfg Config) *UserStore {
	serial, _ := parseSerial(cfg.SerialConsistency)
	return &UserStore{s: s, serial: serial, now: time.Now}
}

var (
	insertUser = newStatement(usersTable.Insert())
	selectUser = newStatement(usersTable.Get())
)

// CreateUser claims the email, then the username, then writes the account.
// Whatever makes it fail after a claim was tried (a claim lost, a claim or
// the insert failing or timing out) releases every claim this call may hold,
// so no claim is left without its account. A claim that could not be
// released (Cassandra unreachable, or the release's own outcome unknown) is
// taken over by a later registration once it is past claimGrace and its
// account never appeared (see claim).
func (st *UserStore) CreateUser(ctx context.Context, u auth.User) (err error) {
	ctx, cancel := context.WithTimeout(ctx, createUserTimeout)
	defer cancel()
	var held []claimed
	defer func() {
		if err != nil {
			st.release(ctx, held, u.ID)
		}
	}()
	for _, c := range []claimed{{uniqueEmail, u.Email, auth.ErrEmailTaken}, {uniqueUsername, u.Username, auth.ErrUsernameTaken}} {
		// Held before the claim is tried: a try that fails may have applied.
		held = append(held, c)
		ok, err := st.claim(ctx, c.u, c.value, u.ID)
		if err != nil {
			return err
		}
		if !ok {
			held = held[:len(held)-1]
			return c.taken
		}
	}
	if err := insertUser.query(ctx, st.s).BindStruct(toUserRow(u)).ExecRelease(); err != nil {
		return apperr.Unavailable("insert user", err)
	}
	return nil
}

// UserByID reads an account.
func (st *UserStore) UserByID(ctx context.Context, id id.ID) (auth.User, error) {
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

func (st *UserStore) lookup(ctx context.Context, u uniqueness, value string) (id.ID, error) {
	var id id.ID
	err := u.owner.query(ctx, st.s).BindMap(qb.M{u.name: value}).GetRelease(&id)
	if errors.Is(err, gocql.ErrNotFound) {
		return id, auth.ErrNotFound
	}
	if err != nil {
		return id, apperr.Unavailable("look up "+u.name, err)
	}
	return id, nil
}

// UserIDByEmail resolves an email.
func (st *UserStore) UserIDByEmail(ctx context.Context, email string) (id.ID, error) {
	return st.lookup(ctx, uniqueEmail, email)
}

// UserIDByUsername resolves a username.
func (st *UserStore) UserIDByUsername(ctx context.Context, username string) (id.ID, error) {
	return st.lookup(ctx, uniqueUsername, username)
}
