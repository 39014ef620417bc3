package poll

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/id"
)

// The view: what this process knows of the polls it serves. A reader is
// served the view it holds at once, however the system of record is doing;
// views are re-read in the background (on a change notice, and at least
// every CacheTTL while in use), never on a reader's goroutine. Only a poll
// this process has never seen is read inline, by its first reader, and an
// id found to name no poll is answered ErrNotFound without a read for
// NegativeTTL.

const (
	// refreshTimeout bounds one read of a poll into the view.
	refreshTimeout = 5 * time.Second
	// stableAge is how old a view StableCached serves may be.
	stableAge = 10 * time.Minute
	// maxMissing bounds the ids remembered as naming no poll.
	maxMissing = 100_000
	// noticeWorkers re-read the polls change notices name.
	noticeWorkers = 2
)

// views holds the view entries and the ids known to name no poll.
type views struct {
	mu      sync.RWMutex
	byID    map[id.ID]*viewEntry
	missing map[id.ID]time.Time // id → until when it is known missing
}

// viewEntry is one poll's view. Its snapshot is replaced whole, so readers
// take it without the lock.
type viewEntry struct {
	snap atomic.Pointer[viewSnap]
	used atomic.Int64  // unix nanoseconds of the last reader
	gen  atomic.Uint64 // change notices received for the poll
	// retryAt (unix nanoseconds) holds off the periodic re-read after one
	// failed, so a Cassandra that refuses at once is not asked every tick.
	retryAt atomic.Int64
}

// viewSnap is a poll as one read returned it.
type viewSnap struct {
	p *Poll
	// seenAt is when the read that returned p started: nothing written
	// before it is missing from p (the vote carries it, see View).
	seenAt time.Time
	// gen is the entry's notice count when that read started: a snapshot
	// whose gen is behind its entry's predates a change notice.
	gen uint64
}

func (e *viewEntry) touch(now time.Time) {
	// Skipping an update younger than a second keeps concurrent readers
	// of one poll from all writing the same cache line.
	n := now.UnixNano()
	if n-e.used.Load() > int64(time.Second) {
		e.used.Store(n)
	}
}

// newer reports whether v should replace cur: a higher poll version always
// wins (versions only move on), the same version when read later.
func (v *viewSnap) newer(cur *viewSnap) bool {
	if cur == nil || v.p.Version != cur.p.Version {
		return cur == nil || v.p.Version > cur.p.Version
	}
	return !v.seenAt.Before(cur.seenAt)
}

// View is a poll as a reader saw it, with when it was read from Cassandra
// (the start of that read). A vote carries SeenAt so the worker can tell a
// vote accepted on a stale view (during an outage) from one accepted on a
// fresh one. The view is served at once while it is younger than CacheTTL
// + StaleIfError; older, the reader waits for a read.
func (s *Service) View(ctx context.Context, id id.ID) (*Poll, time.Time, error) {
	return s.view(ctx, id, s.cfg.CacheTTL+s.cfg.StaleIfError)
}

// Cached reads a poll through the view (see View). Other processes' owner
// changes reach it through change notices, and within CacheTTL and one read
// when a notice is lost.
func (s *Service) Cached(ctx context.Context, id id.ID) (*Poll, error) {
	p, _, err := s.view(ctx, id, s.cfg.CacheTTL+s.cfg.StaleIfError)
	return p, err
}

// StableCached serves views up to ten minutes old (plus StaleIfError), for
// the vote worker: what never changes after creation (id, counter shards,
// index buckets) can be taken from it as is; anything an owner can change
// (end_time, closed_at, options) only once the reader knows the copy is not
// older than what it must be judged by: the worker compares its Version
// with the one a vote carries and calls Get when it is older.
func (s *Service) StableCached(ctx context.Context, id id.ID) (*Poll, error) {
	p, _, err := s.view(ctx, id, stableAge+s.cfg.StaleIfError)
	return p, err
}

// view serves the view of pollID if one younger than limit is held, an
// ErrNotFound remembered for the id, or else reads the poll (one read per
// poll at a time, shared by its concurrent readers).
func (s *Service) view(ctx context.Context, pollID id.ID, limit time.Duration) (*Poll, time.Time, error) {
	now := s.now()
	s.views.mu.RLock()
	e := s.views.byID[pollID]
	missingUntil := s.views.missing[pollID]
	s.views.mu.RUnlock()
	if e != nil {
		e.touch(now)
		if v := e.snap.Load(); now.Sub(v.seenAt) < limit {
			s.vm.hits.Inc()
			return v.p, v.seenAt, nil
		}
	} else if now.Before(missingUntil) {
		s.vm.negativeHits.Inc()
		return nil, time.Time{}, ErrNotFound
	}
	s.vm.misses.Inc()
	ch := s.reads.DoChan(pollID.String(), func() (any, error) {
		// Detached from the first reader: the others share its answer.
		return s.read(context.WithoutCancel(ctx), pollID, true)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, time.Time{}, r.Err
		}
		v := r.Val.(*viewSnap)
		return v.p, v.seenAt, nil
	case <-ctx.Done():
		return nil, time.Time{}, ctx.Err()
	}
}

// read reads a poll from the system of record into the view: held views
// are updated (insert also adds a new one), a poll found missing is
// remembered as missing. It returns the snapshot the view holds afterwards
// (which may be newer than the one read).
func (s *Service) read(ctx context.Context, pollID id.ID, insert bool) (*viewSnap, error) {
	gen := s.genOf(pollID)
	start := s.now()
	rctx, cancel := context.WithTimeout(ctx, refreshTimeout)
	defer cancel()
	p, err := s.store.Get(rctx, pollID)
	if errors.Is(err, ErrNotFound) {
		s.forget(pollID)
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	return s.keep(&viewSnap{p: p, seenAt: start, gen: gen}, insert), nil
}

func (s *Service) genOf(pollID id.ID) uint64 {
	s.views.mu.RLock()
	defer s.views.mu.RUnlock()
	if e := s.views.byID[pollID]; e != nil {
		return e.gen.Load()
	}
	return 0
}

// keep stores v in its poll's view unless the view holds a newer one, and
// returns the snapshot the view holds. Without insert, a poll this process
// holds no view of is not added (Get serves tools that read every poll).
func (s *Service) keep(v *viewSnap, insert bool) *viewSnap {
	s.views.mu.Lock()
	defer s.views.mu.Unlock()
	e := s.views.byID[v.p.ID]
	if e == nil {
		if !insert {
			return v
		}
		e = &viewEntry{}
		e.used.Store(s.now().UnixNano())
		e.snap.Store(v)
		s.views.byID[v.p.ID] = e
		delete(s.views.missing, v.p.ID)
		s.startOnce.Do(s.start)
		return v
	}
	cur := e.snap.Load()
	if v.newer(cur) {
		e.snap.Store(v)
		return v
	}
	return cur
}

// forget drops the view of a poll found missing and remembers the id as
// missing for NegativeTTL.
func (s *Service) forget(pollID id.ID) {
	s.views.mu.Lock()
	defer s.views.mu.Unlock()
	delete(s.views.byID, pollID)
	if s.cfg.NegativeTTL <= 0 {
		return
	}
	now := s.now()
	if len(s.views.missing) >= maxMissing {
		for k, until := range s.views.missing {
			if !now.Before(until) {
				delete(s.views.missing, k)
			}
		}
		if len(s.views.missing) >= maxMissing {
			// A flood of random ids: start over rather than grow.
			clear(s.views.missing)
		}
	}
	s.views.missing[pollID] = now.Add(s.cfg.NegativeTTL)
}

// changedHere updates this process's view after an owner change it wrote
// (p is the poll as written) and tells the other processes.
func (s *Service) changedHere(ctx context.Context, p *Poll) {
	s.keep(&viewSnap{p: p, seenAt: s.now(), gen: s.genOf(p.ID)}, false)
	s.announce(ctx, p.ID)
}

// revalidate re-reads a poll's view in the background. A read that began
// before a change notice arrived (its snapshot's gen is behind) is followed
// by another, so a notice is never answered by a read that predates it.
func (s *Service) revalidate(ctx context.Context, pollID id.ID) {
	for range 3 {
		r, err, _ := s.reads.Do(pollID.String(), func() (any, error) { return s.read(ctx, pollID, false) })
		if errors.Is(err, ErrNotFound) || ctx.Err() != nil {
			return
		}
		if err != nil {
			s.refreshFailed(pollID, err)
			return
		}
		s.setRetry(pollID, time.Time{})
		if r.(*viewSnap).gen >= s.genOf(pollID) {
			return
		}
	}
}

// refreshFailed counts a failed background read and logs it: at warn at
// most once per refreshLogEvery, at debug otherwise. The view keeps
// serving the last poll read (up to StaleIfError).
func (s *Service) refreshFailed(pollID id.ID, err error) {
	s.vm.refreshErrors.Inc()
	s.setRetry(pollID, s.now().Add(s.cfg.CacheTTL))
	now := s.now().UnixNano()
	last := s.lastWarn.Load()
	if now-last >= int64(refreshLogEvery) && s.lastWarn.CompareAndSwap(last, now) {
		s.log.Warn("poll view refresh failed; serving the last poll read", zap.Stringer("poll_id", pollID),
			zap.Error(err))
		return
	}
	s.log.Debug("poll view refresh failed", zap.Stringer("poll_id", pollID), zap.Error(err))
}

func (s *Service) setRetry(pollID id.ID, at time.Time) {
	s.views.mu.RLock()
	e := s.views.byID[pollID]
	s.views.mu.RUnlock()
	if e == nil {
		return
	}
	if at.IsZero() {
		e.retryAt.Store(0)
	} else {
		e.retryAt.Store(at.UnixNano())
	}
}

// refreshLogEvery rate-limits the warn line of failing background reads.
const refreshLogEvery = 10 * time.Second

// start runs the background work once the first view is held: the refresh
// loop, the notice workers and the change subscription.
func (s *Service) start() {
	ctx := s.bg
	s.wg.Add(1 + noticeWorkers)
	go func() { defer s.wg.Done(); s.refreshLoop(ctx) }()
	for range noticeWorkers {
		go func() {
			defer s.wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case pollID := <-s.notices:
					s.revalidate(ctx, pollID)
				}
			}
		}()
	}
	if s.changes != nil {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.changes.Watch(ctx, s.noticed, s.resynced) }()
	}
}

// Close stops the background work.
func (s *Service) Close() {
	s.stop()
	s.wg.Wait()
}

// refreshTick is how often the refresh loop looks for views due.
func (s *Service) refreshTick() time.Duration {
	return max(s.cfg.CacheTTL/4, 10*time.Millisecond)
}

func (s *Service) refreshLoop(ctx context.Context) {
	t := time.NewTicker(s.refreshTick())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.refreshRound(ctx, false)
		case <-s.resync:
			s.refreshRound(ctx, true)
		}
	}
}

// refreshRound re-reads the views due (all of them with all): those a
// notice named since their read, and those that will be CacheTTL old
// before the next round, with at most RefreshConcurrency reads at once.
// Views no reader asked for in ViewIdle are dropped instead.
func (s *Service) refreshRound(ctx context.Context, all bool) {
	due := s.due(all)
	sem := make(chan struct{}, s.cfg.RefreshConcurrency)
	var wg sync.WaitGroup
	for _, pollID := range due {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			s.revalidate(ctx, pollID)
		}()
	}
	wg.Wait()
}

// due lists the views to re-read now, drops idle views and forgets
// expired missing ids.
func (s *Service) due(all bool) []id.ID {
	now := s.now()
	idle := now.Add(-s.cfg.ViewIdle).UnixNano()
	older := s.cfg.CacheTTL - s.refreshTick()
	s.views.mu.Lock()
	defer s.views.mu.Unlock()
	var out []id.ID
	for k, e := range s.views.byID {
		if e.used.Load() < idle {
			delete(s.views.byID, k)
			continue
		}
		v := e.snap.Load()
		if all || v.gen != e.gen.Load() || now.Sub(v.seenAt) >= older && now.UnixNano() >= e.retryAt.Load() {
			out = append(out, k)
		}
	}
	for k, until := range s.views.missing {
		if !now.Before(until) {
			delete(s.views.missing, k)
		}
	}
	return out
}

// oldestAge is the age of the oldest view in use, in seconds.
func (s *Service) oldestAge() float64 {
	now := s.now()
	idle := now.Add(-s.cfg.ViewIdle).UnixNano()
	s.views.mu.RLock()
	defer s.views.mu.RUnlock()
	var oldest time.Duration
	for _, e := range s.views.byID {
		if e.used.Load() >= idle {
			oldest = max(oldest, now.Sub(e.snap.Load().seenAt))
		}
	}
	return oldest.Seconds()
}

func (s *Service) held() float64 {
	s.views.mu.RLock()
	defer s.views.mu.RUnlock()
	return float64(len(s.views.byID))
}
