package redisx

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tally-vote/tally/pkg/id"
)

// ActivePollSet is the deployment-wide set of polls that received a
// counted vote (key ActivePolls): a sorted set, member the poll id, score
// the last vote's time in unix ms. Every process merges what it saw into
// it, so its size is a distinct count across pods (observe.ActivePolls).
type ActivePollSet struct {
	rdb redis.Cmdable
	key string
	ttl time.Duration
}

// NewActivePollSet returns the set at key; ttl lets a deployment that stops
// voting leave nothing behind (twice the activity window is plenty).
func NewActivePollSet(rdb redis.Cmdable, key string, ttl time.Duration) *ActivePollSet {
	return &ActivePollSet{rdb: rdb, key: key, ttl: ttl}
}

// Merge adds seen (poll -> last counted vote), only ever raising a poll's
// score, drops the polls last seen before cut and returns how many remain,
// in one MULTI/EXEC round trip.
func (s *ActivePollSet) Merge(ctx context.Context, seen map[id.ID]time.Time, cut time.Time) (int64, error) {
	members := make([]redis.Z, 0, len(seen))
	for p, t := range seen {
		members = append(members, redis.Z{Score: float64(t.UnixMilli()), Member: p.String()})
	}
	var card *redis.IntCmd
	_, err := s.rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		if len(members) > 0 {
			// GT: a process with an older sighting (a late batch) never
			// lowers a score another process raised.
			pipe.ZAddGT(ctx, s.key, members...)
		}
		pipe.ZRemRangeByScore(ctx, s.key, "-inf", "("+strconv.FormatInt(cut.UnixMilli(), 10))
		pipe.PExpire(ctx, s.key, s.ttl)
		card = pipe.ZCard(ctx, s.key)
		return nil
	})
	if err != nil {
		return 0, err
	}
	return card.Val(), nil
}
