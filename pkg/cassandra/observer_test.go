package cassandra

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/gocql/gocql"
)

func TestClassify(t *testing.T) {
	for _, c := range []struct {
		stmt string
		want Statement
	}{
		{"INSERT INTO votes (poll_id, user_id) VALUES (?, ?) IF NOT EXISTS", Statement{"lwt", "votes"}},
		{"insert into tally_test_1.votes (a) values (?) if not exists", Statement{"lwt", "votes"}},
		{"INSERT INTO vote_index (a) VALUES (?)", Statement{"insert", "vote_index"}},
		{"UPDATE polls SET status = ? WHERE poll_id = ? IF status = ?", Statement{"lwt", "polls"}},
		{"UPDATE vote_counts SET votes = votes + ? WHERE poll_id = ?", Statement{"update", "vote_counts"}},
		{"SELECT option_id, votes FROM vote_counts WHERE poll_id = ?", Statement{"select", "vote_counts"}},
		{`SELECT * FROM "ks"."Users" WHERE id = ?`, Statement{"select", "users"}},
		{"DELETE FROM idempotency WHERE key = ? IF EXISTS", Statement{"lwt", "idempotency"}},
		{"DELETE a FROM t1 WHERE k = ?", Statement{"delete", "t1"}},
		{"BEGIN BATCH INSERT INTO a (k) VALUES (?); APPLY BATCH", Statement{"batch", "other"}},
		{"CREATE TABLE IF NOT EXISTS votes (k int PRIMARY KEY)", Statement{"schema", "other"}},
		{"SELECT * FROM " + strings.Repeat("a", 60), Statement{"select", "other"}},
		{"USE tally", Statement{"other", "other"}},
	} {
		if got := Classify(c.stmt); got != c.want {
			t.Errorf("Classify(%q) = %+v, want %+v", c.stmt, got, c.want)
		}
	}
}

func TestErrorKinds(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{&gocql.RequestErrWriteTimeout{WriteType: "CAS"}, "write_timeout"},
		{fmt.Errorf("insert: %w", &gocql.RequestErrReadTimeout{}), "read_timeout"},
		{&gocql.RequestErrUnavailable{}, "unavailable"},
		{&gocql.RequestErrCASWriteUnknown{}, "cas_unknown"},
		{gocql.ErrTimeoutNoResponse, "no_response"},
		{gocql.ErrNoConnections, "no_connections"},
		{errors.New("syntax"), "other"},
	} {
		if got := ErrorKind(c.err); got != c.want {
			t.Errorf("ErrorKind(%v) = %s, want %s", c.err, got, c.want)
		}
	}
}
