package poll

import (
	"context"
	"errors"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/audit"
	"github.com/tally-vote/tally/pkg/id"
)

// Store is what the service needs from the system of record.
type Store interface {
	Create(ctx context.Context, p *Poll) error
	// Get returns ErrNotFound for a missing poll.
	Get(ctx context.Context, id id.ID) (*Poll, error)
	ListByCreator(ctx context.Context, creator id.ID, page []byte, limit int) ([]id.ID, []byte, error)
	// Update writes the fields a change sets and nothing else.
	Update(ctx context.Context, id id.ID, ch Change) error
	// ReplaceOptions swaps p's options unless a vote froze them or they
	// changed since p was read (then ErrOptionsFrozen).
	ReplaceOptions(ctx context.Context, p *Poll, opts []Option, at time.Time) error
	// FreezeOptions freezes the options if they are still at version;
	// false means they were replaced since.
	FreezeOptions(ctx context.Context, id id.ID, version int) (bool, error)
	// ClaimCreateKey binds an Idempotency-Key to a create request's claim
	// (its poll id, fingerprint and what rebuilds the poll) with an LWT, and
	// returns the claim that holds the key (c itself when this call won).
	ClaimCreateKey(ctx context.Context, creator id.ID, key string, c CreateClaim) (CreateClaim, error)
}

// CreateClaim is what an Idempotency-Key of a create request is bound to:
// the poll id, the request's fingerprint, and the values of the poll that
// do not come from the request (its creation time and layout). With the
// request itself, it rebuilds the very poll the claiming attempt meant to
// store, so a retry can store it when that attempt died before it did.
type CreateClaim struct {
	PollID        id.ID
	Fingerprint   string
	CreatedAt     time.Time
	CounterShards int
	IndexBuckets  int
}

// rebuildable reports whether the claim holds all a rebuild needs: claims
// written before it carried the creation time and layout do not.
func (c CreateClaim) rebuildable() bool {
	return c.Fingerprint != "" && !c.CreatedAt.IsZero() && c.CounterShards > 0 && c.IndexBuckets > 0
}

// Auditor records what owners did to a poll, durably: an owner action is
// answered only after Append returned nil (pkg/audit's chain).
type Auditor interface {
	Append(ctx context.Context, pollID, actor id.ID, kind string, detail map[string]any) (audit.Entry, error)
	// AppendFirst writes the chain's first entry, unless it has one
	// (written reports which): a replayed create chains its poll once.
	AppendFirst(ctx context.Context, pollID, actor id.ID, kind string, detail map[string]any) (e audit.Entry, written bool, err error)
}

type noAudit struct{}

func (noAudit) AppendFirst(context.Context, id.ID, id.ID, string, map[string]any) (audit.Entry, bool, error) {
	return audit.Entry{}, false, nil
}

func (noAudit) Append(context.Context, id.ID, id.ID, string, map[string]any) (audit.Entry, error) {
	return audit.Entry{}, nil
}

// VoteCounter tells whether any vote exists, to freeze options.
type VoteCounter interface {
	HasVotes(ctx context.Context, p *Poll) (bool, error)
}

// Config holds poll defaults and the view's bounds (see view.go).
type Config struct {
	CounterShards int `env:"COUNTER_SHARDS" envDefault:"16"`
	IndexBuckets  int `env:"INDEX_BUCKETS" envDefault:"16"`
	// CacheTTL is how old a poll's view may grow while in use before it is
	// re-read in the background: how late an owner change whose notice was
	// lost reaches this process (plus one read). Readers never wait for it.
	CacheTTL time.Duration `env:"CACHE_TTL" envDefault:"500ms"`
	// StaleIfError is how long past CacheTTL a view is still served while
	// Cassandra cannot be read, so votes keep being accepted into Kafka
	// through an outage. The worker re-checks such votes against the poll
	// as it is when they are applied.
	StaleIfError time.Duration `env:"STALE_IF_ERROR" envDefault:"10m"`
	// NegativeTTL is how long an id found to name no poll is answered 404
	// without a read (a change notice for the id ends it sooner).
	NegativeTTL time.Duration `env:"NEGATIVE_TTL" envDefault:"1s"`
	// ViewIdle drops a view no reader asked for this long; it is no longer
	// re-read.
	ViewIdle time.Duration `env:"VIEW_IDLE" envDefault:"30s"`
	// RefreshConcurrency bounds the background re-reads in flight.
	RefreshConcurrency int `env:"REFRESH_CONCURRENCY" envDefault:"8"`
}

// withDefaults fills what a hand-built Config left zero.
func (c Config) withDefaults() Config {
	if c.CacheTTL <= 0 {
		c.CacheTTL = 500 * time.Millisecond
	}
	if c.ViewIdle <= 0 {
		c.ViewIdle = 30 * time.Second
	}
	if c.RefreshConcurrency <= 0 {
		c.RefreshConcurrency = 8
	}
	return c
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
	cursors Cursors
	metrics metrics
	changes Changes

	views views
	// reads lets one read per poll run at a time, inline or background.
	reads    singleflight.Group
	vm       viewMetrics
	notices  chan id.ID
	resync   chan struct{}
	lastWarn atomic.Int64
	// The background work starts with the first view held (start) and
	// ends with Close.
	startOnce sync.Once
	bg        context.Context
	stop      context.CancelFunc
	wg        sync.WaitGroup
	// frozen remembers polls whose options this process saw frozen.
	frozen sync.Map
	// freezing lets one freeze per poll run at a time: the first votes of
	// a viral poll arrive together, and as many concurrent LWTs on one
	// partition would contend in Paxos for seconds.
	freezing singleflight.Group
}

// Deps are the service's collaborators.
type Deps struct {
	Store Store
	Votes VoteCounter
	// Audit records owner actions; nil records nothing.
	Audit Auditor
	// OnClose, when set, runs after an owner closes a poll (to queue its
	// final reconciliation).
	OnClose func(ctx context.Context, p *Poll)
	// Cursors seal list cursors.
	Cursors Cursors
	Log     *zap.Logger
	Now     func() time.Time
	// Metrics registers the service's metrics; nil registers none.
	Metrics prometheus.Registerer
	// Changes carries change notices between processes; nil sends and
	// receives none (the background re-reads alone then bound staleness).
	Changes Changes
}

type metrics struct {
	// idempotent counts creates that found their Idempotency-Key claimed,
	// by outcome: replayed, conflict, rebuilt, lost.
	idempotent *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) metrics {
	m := metrics{idempotent: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tally_poll_create_key_reuses_total",
		Help: "Poll creates whose Idempotency-Key was already claimed, by outcome: replayed (the poll was found), " +
			"conflict (another body), rebuilt (the claiming attempt stored no poll; this one stored it), " +
			"lost (no poll and a claim too old to rebuild it from).",
	}, []string{"outcome"})}
	for _, o := range []string{"replayed", "conflict", "rebuilt", "lost"} {
		m.idempotent.WithLabelValues(o)
	}
	if reg != nil {
		reg.MustRegister(m.idempotent)
	}
	return m
}

// NewService builds the service.
func NewService(cfg Config, d Deps) *Service {
	audit := d.Audit
	if audit == nil {
		audit = noAudit{}
	}
	s := &Service{cfg: cfg.withDefaults(), store: d.Store, votes: d.Votes, log: d.Log, now: d.Now, onClose: d.OnClose,
		audit: audit, cursors: d.Cursors, metrics: newMetrics(d.Metrics), changes: d.Changes,
		views:   views{byID: map[id.ID]*viewEntry{}, missing: map[id.ID]time.Time{}},
		notices: make(chan id.ID, 1024), resync: make(chan struct{}, 1)}
	s.bg, s.stop = context.WithCancel(context.Background())
	s.vm = newViewMetrics(d.Metrics, s)
	return s
}

// Create validates and stores a poll. With an idempotency key, a repeat of
// the same key by the same creator returns the poll the first call made;
// if that call claimed the key but never stored its poll (it died between
// the two), the repeat stores the same poll under the claimed id.
func (s *Service) Create(ctx context.Context, creator id.ID, in CreateInput, idemKey string) (*Poll, bool, error) {
	in.Title = strings.TrimSpace(in.Title)
	if err := in.Validate(); err != nil {
		return nil, false, err
	}
	c := CreateClaim{PollID: id.New(), CreatedAt: s.now().UTC().Truncate(time.Millisecond),
		CounterShards: s.cfg.CounterShards, IndexBuckets: s.cfg.IndexBuckets}
	p, err := newPoll(creator, in, c)
	if err != nil {
		return nil, false, err
	}
	rebuilt := false
	if idemKey != "" {
		c.Fingerprint = in.fingerprint()
		held, err := s.store.ClaimCreateKey(ctx, creator, idemKey, c)
		if err != nil {
			return nil, false, err
		}
		if held.PollID != c.PollID {
			if held.Fingerprint != "" && held.Fingerprint != c.Fingerprint {
				s.metrics.idempotent.WithLabelValues("conflict").Inc()
				return nil, false, ErrIdempotencyConflict
			}
			existing, err := s.awaitPoll(ctx, held.PollID)
			if err == nil {
				s.metrics.idempotent.WithLabelValues("replayed").Inc()
				// The first attempt may have stored the poll and failed
				// to chain its creation (it was answered an error): the
				// replay chains it, once (a chain's first entry is
				// written only where the chain is empty).
				if err := s.auditCreated(ctx, creator, existing, false); err != nil {
					return nil, false, err
				}
			}
			if !errors.Is(err, ErrNotFound) {
				return existing, false, err
			}
			if !held.rebuildable() {
				// A claim from before claims carried the poll's creation
				// time and layout: nothing to rebuild the poll from.
				s.metrics.idempotent.WithLabelValues("lost").Inc()
				s.log.Warn("idempotency key claimed by a create that stored no poll; the claim cannot rebuild it",
					zap.Stringer("poll_id", held.PollID), zap.Stringer("user_id", creator))
				return nil, false, err
			}
			// The claiming attempt stored nothing within the wait: it died,
			// or is still on its way. Store the poll it meant to store; both
			// writers then write the same rows, with the same timestamp.
			if p, err = newPoll(creator, in, held); err != nil {
				return nil, false, err
			}
			rebuilt = true
		}
	}
	if err := s.store.Create(ctx, p); err != nil {
		return nil, false, err
	}
	s.views.mu.Lock()
	delete(s.views.missing, p.ID)
	s.views.mu.Unlock()
	s.announce(ctx, p.ID)
	if rebuilt {
		s.metrics.idempotent.WithLabelValues("rebuilt").Inc()
		s.log.Warn("poll rebuilt from its idempotency claim: the attempt that claimed the key stored no poll",
			zap.Stringer("poll_id", p.ID), zap.Stringer("user_id", creator))
	} else {
		s.log.Info("poll created", zap.Stringer("poll_id", p.ID), zap.Stringer("user_id", creator),
			zap.String("method", string(p.Settings.CountingMethod())))
	}
	// The poll is stored: its entry is the chain's first. If it cannot be
	// written the create is answered with the error; the poll exists, and
	// a retry with the same Idempotency-Key replays it and chains it then.
	if err := s.auditCreated(ctx, creator, p, rebuilt); err != nil {
		return nil, false, err
	}
	return p, true, nil
}

// auditCreated chains poll.created as the poll's first entry, unless the
// chain already has one.
func (s *Service) auditCreated(ctx context.Context, creator id.ID, p *Poll, rebuilt bool) error {
	detail := map[string]any{"title": p.Title, "options": len(p.Options), "start_time": p.StartTime,
		"end_time": p.EndTime, "settings": p.Settings}
	if rebuilt {
		detail["rebuilt_from_claim"] = true
	}
	_, _, err := s.audit.AppendFirst(ctx, p.ID, creator, audit.PollCreated, detail)
	return err
}

// newPoll is the poll a create request makes under claim c: every value
// comes from the request or the claim, so the same request under the same
// claim always makes the same poll, option ids included.
func newPoll(creator id.ID, in CreateInput, c CreateClaim) (*Poll, error) {
	p := &Poll{
		ID:            c.PollID,
		CreatorID:     creator,
		Title:         in.Title,
		Description:   in.Description,
		StartTime:     c.CreatedAt,
		CreatedAt:     c.CreatedAt,
		UpdatedAt:     c.CreatedAt,
		Settings:      in.Settings,
		CounterShards: c.CounterShards,
		IndexBuckets:  c.IndexBuckets,
	}
	if in.StartTime != nil {
		p.StartTime = in.StartTime.UTC().Truncate(time.Millisecond)
	}
	p.EndTime = p.StartTime.Add(DefaultLength)
	if in.EndTime != nil {
		p.EndTime = in.EndTime.UTC().Truncate(time.Millisecond)
	}
	if !p.EndTime.After(p.StartTime) {
		return nil, apperr.Invalid("end_time", "must be after start_time")
	}
	p.Options = buildOptions(in.Options, func(i int) id.ID { return OptionID(c.PollID, i) })
	return p, nil
}

// OptionID is the id of a new poll's option: a name-based (SHA-1, version 5)
// UUID of the poll id and the option's index in the create request.
func OptionID(pollID id.ID, index int) id.ID {
	return id.ID(uuid.NewSHA1(uuid.UUID(pollID), []byte("option/"+strconv.Itoa(index))))
}

// awaitPoll reads a poll whose creation may still be in flight in a
// concurrent request holding the same idempotency key.
func (s *Service) awaitPoll(ctx context.Context, id id.ID) (*Poll, error) {
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

// buildOptions makes options from input, the i-th with the id id(i).
func buildOptions(in []OptionInput, id func(i int) id.ID) []Option {
	opts := make([]Option, len(in))
	for i, o := range in {
		order := i
		if o.DisplayOrder != nil {
			order = *o.DisplayOrder
		}
		opts[i] = Option{ID: id(i), Text: strings.TrimSpace(o.Text), DisplayOrder: order}
	}
	SortOptions(opts)
	return opts
}

// SortOptions orders options by display order, keeping ties stable.
func SortOptions(opts []Option) {
	sort.SliceStable(opts, func(i, j int) bool { return opts[i].DisplayOrder < opts[j].DisplayOrder })
}

// Get reads a poll from the system of record, and updates this process's
// view of it if it holds one.
func (s *Service) Get(ctx context.Context, id id.ID) (*Poll, error) {
	gen := s.genOf(id)
	start := s.now()
	p, err := s.store.Get(ctx, id)
	if err == nil {
		s.keep(&viewSnap{p: p, seenAt: start, gen: gen}, false)
	}
	return p, err
}

// List returns the creator's polls, newest first, one page at a time.
// The cursor is one this method returned to the same creator ("" for the
// first page); any other is ErrBadCursor.
func (s *Service) List(ctx context.Context, creator id.ID, cursor string, limit int) ([]*Poll, string, error) {
	page, err := s.cursors.Open(creator, cursor)
	if err != nil {
		return nil, "", err
	}
	ids, next, err := s.store.ListByCreator(ctx, creator, page, limit)
	if err != nil {
		return nil, "", err
	}
	polls := make([]*Poll, 0, len(ids))
	for _, id := range ids {
		p, err := s.store.Get(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, "", err
		}
		polls = append(polls, p)
	}
	return polls, s.cursors.Seal(creator, next), nil
}

// maxUpdateAttempts bounds how often an owner's change is judged again
// after losing its conditional write to a concurrent change.
const maxUpdateAttempts = 5

// Update applies an owner's patch. Each field is written on its own (see
// Change), with a conditional write on the poll version the patch was
// judged against: a change that loses to a concurrent one is judged again
// against the poll as it is now, so a close is never undone (a later
// end_time edit finds the poll closed) and every change moves the version
// on. Options are replaced with a conditional write that loses to any vote
// accepted first (FreezeOptions).
func (s *Service) Update(ctx context.Context, caller id.ID, pollID id.ID, pt Patch) (*Poll, error) {
	var replaced []Option
	for attempt := 1; ; attempt++ {
		p, closing, err := s.update(ctx, caller, pollID, pt, &replaced)
		if errors.Is(err, ErrChangedSince) && attempt < maxUpdateAttempts {
			continue
		}
		if errors.Is(err, ErrChangedSince) {
			return nil, apperr.Unavailable("update poll", err)
		}
		if err != nil {
			return nil, err
		}
		s.changedHere(ctx, p)
		fields := []zap.Field{zap.Stringer("poll_id", pollID), zap.Bool("closed", closing), zap.Int("poll_version", p.Version)}
		if sp := pt.Settings; sp != nil {
			if v, ok := sp.Visibility(); ok {
				fields = append(fields, zap.String("results_visibility", string(v)))
			}
			if sp.EmbedOrigins != nil {
				fields = append(fields, zap.Int("embed_origins", len(*sp.EmbedOrigins)))
			}
			if sp.Method != nil || sp.AllowMultipleOptions != nil {
				fields = append(fields, zap.String("method", string(p.Settings.CountingMethod())))
			}
		}
		s.log.Info("poll updated", fields...)
		// The change is written: its entries are chained before the answer.
		// If they cannot be, the answer is the error, and what follows a
		// close still runs (the poll is closed either way).
		aerr := s.auditPatch(ctx, caller, p, pt, closing)
		if closing && s.onClose != nil {
			s.onClose(context.WithoutCancel(ctx), p)
		}
		if aerr != nil {
			return nil, aerr
		}
		return p, nil
	}
}

// update is one attempt of Update, judged against the poll as read now.
// replaced holds the options an earlier attempt already wrote.
func (s *Service) update(ctx context.Context, caller id.ID, pollID id.ID, pt Patch, replaced *[]Option) (*Poll, bool, error) {
	p, err := s.store.Get(ctx, pollID)
	if err != nil {
		return nil, false, err
	}
	if p.CreatorID != caller {
		return nil, false, ErrNotOwner
	}
	now := s.now().UTC().Truncate(time.Millisecond)
	if err := pt.Validate(p, now); err != nil {
		return nil, false, err
	}
	status := p.StatusAt(now)
	if status == Closed && (pt.EndTime != nil || (pt.Options != nil && *replaced == nil)) {
		return nil, false, ErrClosed
	}
	if pt.Options != nil && *replaced == nil {
		if p.OptionsFrozen {
			return nil, false, ErrOptionsFrozen
		}
		if status != Draft {
			// Polls whose votes predate frozen options are checked by rows.
			has, err := s.votes.HasVotes(ctx, p)
			if err != nil {
				return nil, false, err
			}
			if has {
				return nil, false, ErrOptionsFrozen
			}
		}
		// Fresh ids: a replacement must not reuse the ids of the options
		// it deletes in the same batch.
		opts := buildOptions(pt.Options, func(int) id.ID { return id.New() })
		if err := s.store.ReplaceOptions(ctx, p, opts, now); err != nil {
			return nil, false, err
		}
		*replaced = opts
		p.Options, p.OptionsVersion = opts, p.OptionsVersion+1
	}
	methodChanges := false
	if pt.Settings != nil {
		if methodChanges, err = s.checkMethodChange(ctx, p, *pt.Settings, status); err != nil {
			return nil, false, err
		}
		sp := pt.Settings.withMethodColumns(p.Settings)
		pt.Settings = &sp
	}
	ch := Change{Version: p.Version, Description: pt.Description, EndTime: pt.EndTime, Settings: pt.Settings, UpdatedAt: now}
	if methodChanges {
		v := p.OptionsVersion
		ch.OptionsVersion = &v
	}
	if pt.Title != nil {
		t := strings.TrimSpace(*pt.Title)
		ch.Title, p.Title = &t, t
	}
	if pt.Description != nil {
		p.Description = *pt.Description
	}
	if pt.EndTime != nil {
		end := pt.EndTime.UTC().Truncate(time.Millisecond)
		ch.EndTime, p.EndTime = &end, end
	}
	if pt.Settings != nil {
		p.Settings = pt.Settings.Apply(p.Settings)
	}
	closing := pt.Close && status != Closed
	if closing {
		ch.ClosedAt, p.ClosedAt = &now, now
	}
	if err := s.store.Update(ctx, pollID, ch); err != nil {
		return nil, false, err
	}
	p.UpdatedAt, p.Version = now, p.Version+1
	if ch.OptionsVersion != nil {
		p.OptionsVersion++
	}
	return p, closing, nil
}

// checkMethodChange refuses a patch that changes the counting method once a
// vote exists, the rule options follow: frozen options say so at once, and
// an open poll whose votes predate the freeze is asked by its rows. It
// reports whether the patch changes the method, so the write can guard
// against a vote freezing the options meanwhile (Change.OptionsVersion).
func (s *Service) checkMethodChange(ctx context.Context, p *Poll, sp SettingsPatch, status Status) (bool, error) {
	if sp.Apply(p.Settings).CountingMethod() == p.Settings.CountingMethod() {
		return false, nil
	}
	if p.OptionsFrozen {
		return false, ErrMethodFrozen
	}
	if status == Draft {
		return true, nil
	}
	has, err := s.votes.HasVotes(ctx, p)
	if err != nil {
		return false, err
	}
	if has {
		return false, ErrMethodFrozen
	}
	return true, nil
}

// ErrOptionsChanged: the options a vote was checked against were replaced
// before the vote could freeze them; the vote must be checked again.
var ErrOptionsChanged = apperr.New(apperr.CodeInvalidOption, "the poll's options changed; check the options and vote again")

// FreezeOptions freezes p's options before a vote checked against them is
// accepted. Once done (or seen done) for a poll it costs nothing. It
// returns ErrOptionsChanged if the options were replaced since p was read.
func (s *Service) FreezeOptions(ctx context.Context, p *Poll) error {
	if p.OptionsFrozen {
		return nil
	}
	if v, ok := s.frozen.Load(p.ID); ok && v.(int) == p.OptionsVersion {
		return nil
	}
	key := p.ID.String() + "/" + strconv.Itoa(p.OptionsVersion)
	ch := s.freezing.DoChan(key, func() (any, error) {
		// Detached from the first caller: the others share its answer.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), freezeTimeout)
		defer cancel()
		ok, err := s.store.FreezeOptions(fctx, p.ID, p.OptionsVersion)
		if err != nil {
			return nil, err
		}
		if !ok {
			s.reread(p.ID)
			return nil, ErrOptionsChanged
		}
		s.frozen.Store(p.ID, p.OptionsVersion)
		// Off the vote's path: other processes learn the options are
		// frozen and skip their own freeze.
		go s.announce(fctx, p.ID)
		return nil, nil
	})
	select {
	case r := <-ch:
		return r.Err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// freezeTimeout bounds one shared freeze; callers may give up sooner.
const freezeTimeout = 10 * time.Second

// auditPatch chains the entries of an applied patch: poll.updated,
// poll.options_replaced, poll.closed, each with the poll version the change
// made, so a change without its entry (a crash between the two) shows as a
// version the chain skips.
func (s *Service) auditPatch(ctx context.Context, caller id.ID, p *Poll, pt Patch, closing bool) error {
	var changed []string
	for name, set := range map[string]bool{"title": pt.Title != nil, "description": pt.Description != nil,
		"end_time": pt.EndTime != nil, "settings": pt.Settings != nil} {
		if set {
			changed = append(changed, name)
		}
	}
	if len(changed) > 0 {
		sort.Strings(changed)
		if _, err := s.audit.Append(ctx, p.ID, caller, audit.PollUpdated, map[string]any{"fields": changed,
			"end_time": p.EndTime, "settings": p.Settings, "poll_version": p.Version}); err != nil {
			return err
		}
	}
	if pt.Options != nil {
		if _, err := s.audit.Append(ctx, p.ID, caller, audit.OptionsReplaced, map[string]any{"options": len(p.Options),
			"poll_version": p.Version}); err != nil {
			return err
		}
	}
	if closing {
		if _, err := s.audit.Append(ctx, p.ID, caller, audit.PollClosed, map[string]any{"closed_at": p.ClosedAt,
			"poll_version": p.Version}); err != nil {
			return err
		}
	}
	return nil
}
