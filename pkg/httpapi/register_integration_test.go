//go:build integration

package httpapi_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/tally-vote/tally/pkg/id"
)

// orphanClaims lists the uniqueness claims (users_by_email,
// users_by_username) whose account row does not exist, read from the
// test's own keyspace without Tally's code.
func (e *env) orphanClaims(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, tbl := range []string{"users_by_email", "users_by_username"} {
		key := strings.TrimPrefix(tbl, "users_by_")
		iter := e.app.CQL.Session.Query(`SELECT ` + key + `, user_id FROM ` + tbl).Iter()
		var (
			value string
			owner id.ID
		)
		for iter.Scan(&value, &owner) {
			var n int
			if err := e.app.CQL.Session.Query(`SELECT COUNT(*) FROM users WHERE user_id = ?`, owner).Scan(&n); err != nil {
				t.Fatalf("read user %v: %v", owner, err)
			}
			if n == 0 {
				out = append(out, tbl+":"+value)
			}
		}
		if err := iter.Close(); err != nil {
			t.Fatalf("scan %s: %v", tbl, err)
		}
	}
	return out
}

func registration() map[string]any {
	name := "r_" + strings.ReplaceAll(uuid.NewString()[:18], "-", "")
	return map[string]any{"email": name + "@example.test", "username": name, "password": "correct horse battery"}
}

// Issue 19, hole 10: no outcome of registration leaves a uniqueness claim
// without its account, so no email or username is locked out for good.
func TestRegistrationLeavesNoClaimWithoutAccount(t *testing.T) {
	e := newEnv(t)
	cql := e.app.CQL.Session

	// The user insert fails for real after both claims applied: the users
	// table is gone (recreated afterwards from the server's own DDL).
	var ddl string
	if err := cql.Query(`DESCRIBE TABLE users`).Scan(nil, nil, nil, &ddl); err != nil {
		t.Fatalf("describe users: %v", err)
	}
	if err := cql.Query(`DROP TABLE users`).Exec(); err != nil {
		t.Fatalf("drop users: %v", err)
	}
	reg := registration()
	r := e.c.Do("POST", "/v1/auth/register", "", reg)
	if err := cql.Query(ddl).Exec(); err != nil {
		t.Fatalf("recreate users: %v", err)
	}
	if r.Status != http.StatusServiceUnavailable || r.Code() != "UNAVAILABLE" {
		t.Fatalf("register without a users table: %d %s, want 503 UNAVAILABLE", r.Status, r.Raw)
	}
	if orphans := e.orphanClaims(t); len(orphans) != 0 {
		t.Fatalf("a failed registration left claims without an account: %v", orphans)
	}
	e.c.Do("POST", "/v1/auth/register", "", reg).Must(t, http.StatusCreated)
	e.c.Do("POST", "/v1/auth/login", "", map[string]any{"login": reg["email"], "password": reg["password"]}).
		Must(t, http.StatusOK)

	// A claim left behind where nothing could release it (an LWT whose
	// outcome stayed unknown, then a failed release) is taken over by the
	// next registration once it is past its grace period, and only if its
	// account never appeared.
	plant := func(reg map[string]any, owner id.ID, age time.Duration) {
		ts := time.Now().Add(-age).UnixMicro()
		for _, q := range []struct{ stmt, value string }{
			{`INSERT INTO users_by_email (email, user_id) VALUES (?, ?) USING TIMESTAMP ?`, reg["email"].(string)},
			{`INSERT INTO users_by_username (username, user_id) VALUES (?, ?) USING TIMESTAMP ?`, reg["username"].(string)},
		} {
			if err := cql.Query(q.stmt, q.value, owner, ts).Exec(); err != nil {
				t.Fatalf("plant claim: %v", err)
			}
		}
	}
	stale := registration()
	plant(stale, id.New(), 10*time.Minute)
	e.c.Do("POST", "/v1/auth/register", "", stale).Must(t, http.StatusCreated)
	e.c.Do("POST", "/v1/auth/login", "", map[string]any{"login": stale["username"], "password": stale["password"]}).
		Must(t, http.StatusOK)

	// A claim whose account exists is never taken over, however old.
	held := registration()
	holder := id.New()
	plant(held, holder, 10*time.Minute)
	if err := cql.Query(`INSERT INTO users (user_id, email, username, password_hash, created_at) VALUES (?, ?, ?, ?, ?)`,
		holder, held["email"], held["username"], "not a hash", time.Now()).Exec(); err != nil {
		t.Fatalf("plant account: %v", err)
	}
	for _, tc := range []struct{ field, code string }{{"email", "EMAIL_TAKEN"}, {"username", "USERNAME_TAKEN"}} {
		again := registration()
		again[tc.field] = held[tc.field]
		if r := e.c.Do("POST", "/v1/auth/register", "", again); r.Status != http.StatusConflict || r.Code() != tc.code {
			t.Fatalf("register the %s of an account with an old claim: %d %s, want 409 %s", tc.field, r.Status, r.Raw, tc.code)
		}
	}
	if orphans := e.orphanClaims(t); len(orphans) != 0 {
		t.Fatalf("claims without an account: %v", orphans)
	}
}
