package poll

import (
	"context"
	"errors"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gocql/gocql"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/audit"
)

// Store is what the service needs from the system of record.
type Store interface {
	Create(ctx context.Context, p *Poll) error
	// Get returns ErrNotFound for a missing poll.
	Get(ctx context.Context, id gocql.UUID) (*Poll, error)
	ListByCreator(ctx context.Context, creator gocql.UUID, page []byte, limit int) ([]gocql.UUID, []byte, error)
	// Update writes metadata and settings; with removed non-nil it also
	// replaces the options, deleting the removed ones.
	Update(ctx context.Context, p *Poll, removed []gocql.UUID) error
	// ClaimCreateKey binds an Idempotency-Key (and the fingerprint of the
	// request it came with) to a poll id with an LWT, and returns the id and
	// fingerprint that hold it (this call's own when it won).
	ClaimCreateKey(ctx context.Context, creator gocql.UUID, key, fingerprint string, id gocql.UUID) (gocql.UUID, string, error)
}

// Auditor records what owners did to a poll.
type Auditor interface {
	Record(ctx context.Context, pollID, actor gocql.UUID, kind string, detail map[string]any)
}

type noAudit struct{}

func (noAudit) Record(context.Context, gocql.UUID, gocql.UUID, string, map[string]any) {}

// VoteCounter tells whether any vote exists, to freeze options.
type VoteCounter interface {
	HasVotes(ctx context.Context, p *Poll) (bool, error)
}

// Config holds poll defaults.
type Config struct {
	CounterShards int           `env:"COUNTER_SHARDS" envDefault:"16"`
	IndexBuckets  int           `env:"INDEX_BUCKETS" envDefault:"16"`
	CacheTTL      time.Duration `env:"CACHE_TTL" envDefault:"2s"`
}

// Service creates, reads and updates polls.
type Service struct {
	cfg     Config
	store   Store
	votes   VoteCounter
	log     *zap.Logger
	now     func() time.Time
	onClose func(ctx context.Context, p *Poll)
	audit   Auditor

	mu    sync.Mutex
	cache map[gocql.UUID]cached
}

type cached struct {
	p       *Poll
	fetched time.Time
}

// NewService builds the service. onClose, when set, runs after the owner
// closes a poll (to trigger reconciliation).
func NewService(cfg Config, store Store, votes VoteCounter, log *zap.Logger, now func() time.Time) *Service {
	return &Service{cfg: cfg, store: store, votes: votes, log: log, now: now, cache: map[gocql.UUID]cached{}, audit: noAudit{}}
}

// AuditTo sends owner actions to a.
func (s *Service) AuditTo(a Auditor) { s.audit = a }

// OnClose registers a hook run after an owner closes a poll.
func (s *Service) OnClose(fn func(ctx context.Context, p *Poll)) { s.onClose = fn }

// Create validates and stores a poll. With an idempotency key, a repeat of
// the same key by the same creator returns the poll the first call made.
func (s *Service) Create(ctx context.Context, creator gocql.UUID, in CreateInput, idemKey string) (*Poll, bool, error) {
	in.Title = strings.TrimSpace(in.Title)
	if err := in.Validate(); err != nil {
		return nil, false, err
	}
	now := s.now().UTC().Truncate(time.Millisecond)
	p := &Poll{
		ID:            gocql.MustRandomUUID(),
		CreatorID:     creator,
		Title:         in.Title,
		Description:   in.Description,
		StartTime:     now,
		CreatedAt:     now,
		UpdatedAt:     now,
		Settings:      in.Settings,
		CounterShards: s.cfg.CounterShards,
		IndexBuckets:  s.cfg.IndexBuckets,
	}
	if in.StartTime != nil {
		p.StartTime = in.StartTime.UTC().Truncate(time.Millisecond)
	}
	p.EndTime = p.StartTime.Add(DefaultLength)
	if in.EndTime != nil {
		p.EndTime = in.EndTime.UTC().Truncate(time.Millisecond)
	}
	if !p.EndTime.After(p.StartTime) {
		return nil, false, apperr.Invalid("end_time", "must be after start_time")
	}
	p.Options = buildOptions(in.Options)

	if idemKey != "" {
		fp := in.fingerprint()
		winner, winnerFP, err := s.store.ClaimCreateKey(ctx, creator, idemKey, fp, p.ID)
		if err != nil {
			return nil, false, err
		}
		if winner != p.ID && winnerFP != "" && winnerFP != fp {
			return nil, false, ErrIdempotencyConflict
		}
		if winner != p.ID {
			existing, err := s.awaitPoll(ctx, winner)
			return existing, false, err
		}
	}
	if err := s.store.Create(ctx, p); err != nil {
		return nil, false, err
	}
	s.log.Info("poll created", zap.Stringer("poll_id", p.ID), zap.Stringer("user_id", creator))
	s.audit.Record(ctx, p.ID, creator, audit.PollCreated, map[string]any{"title": p.Title, "options": len(p.Options),
		"start_time": p.StartTime, "end_time": p.EndTime, "settings": p.Settings})
	return p, true, nil
}

// awaitPoll reads a poll whose creation may still be in flight in a
// concurrent request holding the same idempotency key.
func (s *Service) awaitPoll(ctx context.Context, id gocql.UUID) (*Poll, error) {
	for i := 0; ; i++ {
		p, err := s.store.Get(ctx, id)
		if !errors.Is(err, ErrNotFound) || i == 40 {
			return p, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func buildOptions(in []OptionInput) []Option {
	opts := make([]Option, len(in))
	for i, o := range in {
		order := i
		if o.DisplayOrder != nil {
			order = *o.DisplayOrder
		}
		opts[i] = Option{ID: gocql.MustRandomUUID(), Text: strings.TrimSpace(o.Text), DisplayOrder: order}
	}
	SortOptions(opts)
	return opts
}

// SortOptions orders options by display order, keeping ties stable.
func SortOptions(opts []Option) {
	sort.SliceStable(opts, func(i, j int) bool { return opts[i].DisplayOrder < opts[j].DisplayOrder })
}

// Get reads a poll from the system of record.
func (s *Service) Get(ctx context.Context, id gocql.UUID) (*Poll, error) {
	p, err := s.store.Get(ctx, id)
	if err == nil {
		s.put(p)
	}
	return p, err
}

// Cached reads a poll through a short-lived in-process cache: the vote hot
// path reads poll metadata on every request. PATCH invalidates this
// process's entry; other processes see the change within CacheTTL.
func (s *Service) Cached(ctx context.Context, id gocql.UUID) (*Poll, error) {
	return s.cachedWithin(ctx, id, s.cfg.CacheTTL)
}

// StableCached is for readers that use only what never changes after
// creation (id, counter shards, index buckets): the vote worker. It accepts
// entries up to ten minutes old, so draining votes for thousands of polls
// does not re-read every poll every few seconds.
func (s *Service) StableCached(ctx context.Context, id gocql.UUID) (*Poll, error) {
	return s.cachedWithin(ctx, id, 10*time.Minute)
}

func (s *Service) cachedWithin(ctx context.Context, id gocql.UUID, maxAge time.Duration) (*Poll, error) {
	s.mu.Lock()
	c, ok := s.cache[id]
	s.mu.Unlock()
	if ok && s.now().Sub(c.fetched) < maxAge {
		return c.p, nil
	}
	return s.Get(ctx, id)
}

func (s *Service) put(p *Poll) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.cache) > 100_000 {
		s.cache = map[gocql.UUID]cached{}
	}
	s.cache[p.ID] = cached{p: p, fetched: s.now()}
}

func (s *Service) invalidate(id gocql.UUID) {
	s.mu.Lock()
	delete(s.cache, id)
	s.mu.Unlock()
}

// List returns the creator's polls, newest first, one page at a time.
func (s *Service) List(ctx context.Context, creator gocql.UUID, page []byte, limit int) ([]*Poll, []byte, error) {
	ids, next, err := s.store.ListByCreator(ctx, creator, page, limit)
	if err != nil {
		return nil, nil, err
	}
	polls := make([]*Poll, 0, len(ids))
	for _, id := range ids {
		p, err := s.store.Get(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		polls = append(polls, p)
	}
	return polls, next, nil
}

// Update applies an owner's patch.
func (s *Service) Update(ctx context.Context, caller gocql.UUID, id gocql.UUID, pt Patch) (*Poll, error) {
	p, err := s.store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if p.CreatorID != caller {
		return nil, ErrNotOwner
	}
	if err := pt.Validate(p); err != nil {
		return nil, err
	}
	now := s.now().UTC().Truncate(time.Millisecond)
	status := p.StatusAt(now)
	if status == Closed && (pt.EndTime != nil || pt.Options != nil) {
		return nil, ErrClosed
	}
	var removed []gocql.UUID
	if pt.Options != nil {
		if status != Draft {
			has, err := s.votes.HasVotes(ctx, p)
			if err != nil {
				return nil, err
			}
			if has {
				return nil, ErrOptionsFrozen
			}
		}
		removed = make([]gocql.UUID, 0, len(p.Options))
		for _, o := range p.Options {
			removed = append(removed, o.ID)
		}
		p.Options = buildOptions(pt.Options)
	}
	if pt.Title != nil {
		p.Title = strings.TrimSpace(*pt.Title)
	}
	if pt.Description != nil {
		p.Description = *pt.Description
	}
	if pt.EndTime != nil {
		p.EndTime = pt.EndTime.UTC().Truncate(time.Millisecond)
	}
	if pt.Settings != nil {
		p.Settings = pt.Settings.Apply(p.Settings)
	}
	closing := pt.Close && status != Closed
	if closing {
		p.ClosedAt = now
	}
	p.UpdatedAt = now
	if err := s.store.Update(ctx, p, removed); err != nil {
		return nil, err
	}
	s.invalidate(id)
	s.log.Info("poll updated", zap.Stringer("poll_id", id), zap.Bool("closed", closing))
	s.auditPatch(ctx, caller, p, pt, closing)
	if closing && s.onClose != nil {
		s.onClose(context.WithoutCancel(ctx), p)
	}
	return p, nil
}

func (s *Service) auditPatch(ctx context.Context, caller gocql.UUID, p *Poll, pt Patch, closing bool) {
	var changed []string
	for name, set := range map[string]bool{"title": pt.Title != nil, "description": pt.Description != nil,
		"end_time": pt.EndTime != nil, "settings": pt.Settings != nil} {
		if set {
			changed = append(changed, name)
		}
	}
	if len(changed) > 0 {
		sort.Strings(changed)
		s.audit.Record(ctx, p.ID, caller, audit.PollUpdated, map[string]any{"fields": changed, "end_time": p.EndTime,
			"settings": p.Settings})
	}
	if pt.Options != nil {
		s.audit.Record(ctx, p.ID, caller, audit.OptionsReplaced, map[string]any{"options": len(p.Options)})
	}
	if closing {
		s.audit.Record(ctx, p.ID, caller, audit.PollClosed, map[string]any{"closed_at": p.ClosedAt})
	}
}
