package redisx

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cache is a byte cache on Redis (tally.Cache).
type Cache struct{ rdb *redis.Client }

// NewCache builds the cache.
func NewCache(rdb *redis.Client) Cache { return Cache{rdb: rdb} }

// Get returns the bytes under key; a missing key is not an error.
func (c Cache) Get(ctx context.Context, key string) ([]byte, bool, error) {
	b, err := c.rdb.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	return b, err == nil, err
}

// Set stores b under key for ttl.
func (c Cache) Set(ctx context.Context, key string, b []byte, ttl time.Duration) error {
	return c.rdb.Set(ctx, key, b, ttl).Err()
}

// Del drops the keys.
func (c Cache) Del(ctx context.Context, keys ...string) error {
	return c.rdb.Del(ctx, keys...).Err()
}
