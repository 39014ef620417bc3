package ledger

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

func TestCacheLoadsOnceAndEvictsLeastRecent(t *testing.T) {
	c := NewCache(25)
	var loads atomic.Int64
	loader := func(n int) func(context.Context) (*Ledger, error) {
		return func(context.Context) (*Ledger, error) {
			loads.Add(1)
			return Build(randomEntries(n)), nil
		}
	}
	ctx := context.Background()
	a, b, d := [16]byte{1}, [16]byte{2}, [16]byte{3}

	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := c.Get(ctx, a, loader(10)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if loads.Load() != 1 {
		t.Fatalf("loads = %d, want 1", loads.Load())
	}
	if _, hit, _ := c.Get(ctx, a, loader(10)); !hit {
		t.Fatal("second get missed")
	}
	_, _, _ = c.Get(ctx, b, loader(10))
	_, _, _ = c.Get(ctx, a, loader(10)) // a is now the most recent
	_, _, _ = c.Get(ctx, d, loader(10)) // 30 leaves > 25: b goes
	if n, leaves := c.Len(); n != 2 || leaves != 20 {
		t.Fatalf("held %d ledgers, %d leaves; want 2, 20", n, leaves)
	}
	if _, hit, _ := c.Get(ctx, a, loader(10)); !hit {
		t.Fatal("the most recent ledger was evicted")
	}
	if _, hit, _ := c.Get(ctx, b, loader(10)); hit {
		t.Fatal("the least recent ledger was kept")
	}

	big := [16]byte{9}
	l, _, _ := c.Get(ctx, big, loader(100))
	if n, _ := c.Len(); n != 1 || l.Size() != 100 {
		t.Fatalf("an oversized ledger: held %d ledgers", n)
	}

	boom := errors.New("boom")
	if _, _, err := c.Get(ctx, [16]byte{7}, func(context.Context) (*Ledger, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if n, _ := c.Len(); n != 1 {
		t.Fatal("a failed load was kept")
	}
}
