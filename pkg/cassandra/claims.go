package cassandra

import (
	"context"
	"errors"
	"time"

	"github.com/gocql/gocql"
	"github.com/scylladb/gocqlx/v2"
	"github.com/scylladb/gocqlx/v2/qb"
	"github.com/scylladb/gocqlx/v2/table"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/auth"
	"github.com/tally-vote/tally/pkg/id"
)

// claimGrace is how long a uniqueness claim may stand without its account
// before another registration may take it over. A registration writes its
// account within createUserTimeout of its first claim, or fails and releases
// its claims; a claim older than claimGrace whose account does not exist is
// one whose release could not be done (Cassandra unreachable, an outcome
// that stayed unknown), and nobody else would ever free it.
const claimGrace = 2 * time.Minute

// createUserTimeout bounds a registration's claims and account insert, well
// inside claimGrace: an account insert answered as written was stored before
// any other registration could take its claims over.
const createUserTimeout = 30 * time.Second

// releaseTimeout bounds releasing the claims of a failed registration.
const releaseTimeout = 5 * time.Second

// uniqueness is one of the tables that guard an account attribute: a row
// per value naming the account (user_id) that holds it, claimed with
// IF NOT EXISTS. The row's write time is when the claim was made.
type uniqueness struct {
	name  string // the key column and the attribute, for errors: "email"
	claim statement
	owner statement
	// written reads the holder and the claim's write time.
	written statement
	// takeOver moves an abandoned claim to another account, if it still
	// names the holder that was judged to have abandoned it.
	takeOver statement
	// release deletes the row if it is still the account's own claim.
	release statement
}

func newUniqueness(name string, t *table.Table) uniqueness {
	return uniqueness{
		name:     name,
		claim:    newStatement(t.InsertBuilder().Unique().ToCql()),
		owner:    newStatement(t.Get("user_id")),
		written:  newStatement(t.Get("user_id", "WRITETIME(user_id)")),
		takeOver: newStatement(t.UpdateBuilder("user_id").If(qb.EqNamed("user_id", "holder")).ToCql()),
		release:  newStatement(t.DeleteBuilder().If(qb.Eq("user_id")).ToCql()),
	}
}

var (
	uniqueEmail    = newUniqueness("email", usersByEmailTable)
	uniqueUsername = newUniqueness("username", usersByUsernameTable)
)

// claimed is a claim a registration makes, and the error when another
// account holds it.
type claimed struct {
	u     uniqueness
	value string
	taken error
}

// claim makes userID hold value in u's table. It returns true when userID
// does: the claim applied (an unknown outcome is resolved by
// insertIfAbsent), or userID took over a claim abandoned by a registration
// that never wrote its account.
func (st *UserStore) claim(ctx context.Context, u uniqueness, value string, userID id.ID) (bool, error) {
	row := qb.M{u.name: value, "user_id": userID}
	// Twice at most: a claim found abandoned may be released before it is
	// taken over, and is then claimed again.
	for range 2 {
		applied, stored, err := insertIfAbsent{
			op: "claim " + u.name,
			attempt: func(ctx context.Context) (*gocqlx.Queryx, func(map[string]any) bool) {
				return u.claim.query(ctx, st.s).BindMap(row), func(r map[string]any) bool { return r["user_id"] == userID }
			},
			read:   func(ctx context.Context) *gocqlx.Queryx { return u.owner.query(ctx, st.s).BindMap(row) },
			serial: st.serial,
		}.run(ctx)
		if err != nil {
			return false, err
		}
		if holder := mapID(stored["user_id"]); applied || holder == userID {
			return true, nil
		}
		ok, gone, err := st.takeOver(ctx, u, value, userID)
		if !gone {
			return ok, err
		}
	}
	return false, apperr.Unavailable("claim "+u.name, errors.New("the claim changed hands while it was read"))
}

// takeOver moves value's claim to userID if it is abandoned: made more than
// claimGrace ago, by an account that does not exist. gone reports that the
// claim was no longer there to judge.
func (st *UserStore) takeOver(ctx context.Context, u uniqueness, value string, userID id.ID) (ok, gone bool, err error) {
	row := map[string]any{}
	err = mapScan(u.written.query(ctx, st.s).BindMap(qb.M{u.name: value}), row)
	if errors.Is(err, gocql.ErrNotFound) {
		return false, true, nil
	}
	if err != nil {
		return false, false, apperr.Unavailable("read "+u.name+" claim", err)
	}
	holder := mapID(row["user_id"])
	written, _ := row["writetime(user_id)"].(int64)
	if st.now().Sub(time.UnixMicro(written)) < claimGrace {
		return false, false, nil // held, or its registration is still under way
	}
	switch _, err := st.UserByID(ctx, holder); {
	case err == nil:
		return false, false, nil // the account exists: the value is taken
	case !errors.Is(err, auth.ErrNotFound):
		return false, false, err
	}
	applied, _, err := execCAS(u.takeOver.query(ctx, st.s).BindMap(qb.M{"user_id": userID, u.name: value, "holder": holder}))
	if err != nil {
		return false, false, apperr.Unavailable("take over "+u.name+" claim", err)
	}
	return applied, false, nil
}

// release deletes each claim in held that still names userID, on a context
// of its own (the request's may be what failed). A release that fails
// leaves its claim to be taken over after claimGrace.
func (st *UserStore) release(ctx context.Context, held []claimed, userID id.ID) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	for _, c := range held {
		_, _, _ = execCAS(c.u.release.query(ctx, st.s).BindMap(qb.M{c.u.name: c.value, "user_id": userID}))
	}
}
