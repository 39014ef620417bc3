package observe

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gocql/gocql"
	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"
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
	for _, c := range []struct {
		err  error
		want string
	}{
		{redis.ErrPoolTimeout, "pool_timeout"},
		{gobreaker.ErrOpenState, "breaker_open"},
		{context.DeadlineExceeded, "timeout"},
		{redis.ErrClosed, "network"},
		{errors.New("odd"), "other"},
	} {
		if got := RedisErrorKind(c.err); got != c.want {
			t.Errorf("RedisErrorKind(%v) = %s, want %s", c.err, got, c.want)
		}
	}
}

func TestActivePollsForgetsIdlePolls(t *testing.T) {
	now := time.Unix(1000, 0)
	a := &ActivePolls{window: time.Minute, now: func() time.Time { return now }, last: map[gocql.UUID]time.Time{}}
	p1, p2 := gocql.MustRandomUUID(), gocql.MustRandomUUID()
	a.Seen(p1)
	a.Seen(p1)
	now = now.Add(40 * time.Second)
	a.Seen(p2)
	if n := a.Count(); n != 2 {
		t.Fatalf("count = %d, want 2", n)
	}
	now = now.Add(30 * time.Second) // p1 idle 70 s, p2 30 s
	if n := a.Count(); n != 1 {
		t.Fatalf("count = %d, want 1 after p1 went idle", n)
	}
}
