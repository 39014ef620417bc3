package redisx

import (
	"context"
	"errors"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"
)

func TestErrorKinds(t *testing.T) {
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
		if got := ErrorKind(c.err); got != c.want {
			t.Errorf("ErrorKind(%v) = %s, want %s", c.err, got, c.want)
		}
	}
}
