package ledger

import (
	"container/list"
	"context"
	"sync"

	"golang.org/x/sync/singleflight"
)

// Cache keeps recently asked-for frozen ledgers in memory, least recently
// used first out, bounded by their total leaves. A frozen ledger never
// changes, so an entry is never stale; one larger than the bound is still
// kept, alone, so the poll everyone is checking is built once, not on
// every request.
type Cache struct {
	maxLeaves uint64

	mu     sync.Mutex
	leaves uint64
	order  *list.List // of *cacheItem, most recent first
	byKey  map[[16]byte]*list.Element
	group  singleflight.Group
}

type cacheItem struct {
	key [16]byte
	l   *Ledger
}

// NewCache holds up to maxLeaves leaves in all (at least one ledger).
func NewCache(maxLeaves uint64) *Cache {
	return &Cache{maxLeaves: maxLeaves, order: list.New(), byKey: map[[16]byte]*list.Element{}}
}

// Get returns the ledger under key, calling load once (however many ask at
// once) when it is not held. hit reports whether it was held; a load's
// error is returned and nothing is kept.
func (c *Cache) Get(ctx context.Context, key [16]byte, load func(ctx context.Context) (*Ledger, error)) (l *Ledger, hit bool, err error) {
	if l, ok := c.lookup(key); ok {
		return l, true, nil
	}
	v, err, _ := c.group.Do(string(key[:]), func() (any, error) {
		if l, ok := c.lookup(key); ok {
			return l, nil
		}
		// The load outlives the caller that started it: others may wait on it.
		l, err := load(context.WithoutCancel(ctx))
		if err != nil {
			return nil, err
		}
		c.add(key, l)
		return l, nil
	})
	if err != nil {
		return nil, false, err
	}
	return v.(*Ledger), false, nil
}

// Len is how many ledgers and leaves the cache holds.
func (c *Cache) Len() (ledgers int, leaves uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len(), c.leaves
}

func (c *Cache) lookup(key [16]byte) (*Ledger, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byKey[key]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(e)
	return e.Value.(*cacheItem).l, true
}

func (c *Cache) add(key [16]byte, l *Ledger) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.byKey[key]; ok {
		return
	}
	c.byKey[key] = c.order.PushFront(&cacheItem{key: key, l: l})
	c.leaves += l.Size()
	for c.leaves > c.maxLeaves && c.order.Len() > 1 {
		last := c.order.Back()
		it := last.Value.(*cacheItem)
		c.order.Remove(last)
		delete(c.byKey, it.key)
		c.leaves -= it.l.Size()
	}
}
