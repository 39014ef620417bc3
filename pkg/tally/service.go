package tally

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/tally-vote/tally/pkg/audit"
	"github.com/tally-vote/tally/pkg/count"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/livelag"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/redisx"
)

// Store is the tally's view of Cassandra.
type Store interface {
	// SumShards reads every counter shard of a poll and sums them.
	SumShards(ctx context.Context, pollID id.ID, shards int) (Counts, error)
	// CountRows counts ballot rows through the per-poll index, with and
	// without flagged ballots in the same pass, each ballot adding what
	// Tallied says under m, calling progress (when set) after each bucket.
	CountRows(ctx context.Context, pollID id.ID, m count.Method, buckets int, progress func(done, total int, ballots int64)) (RowCounts, error)
	// AnyRow reports whether the poll has at least one ballot row.
	AnyRow(ctx context.Context, pollID id.ID, buckets int) (bool, error)
	// AdjustShard adds deltas to one counter shard (used to repair drift).
	AdjustShard(ctx context.Context, pollID id.ID, shard int, delta Counts) error
	// SaveFinal freezes a closed poll's final tally unless one is frozen
	// already, and returns the frozen one (c's own when it was written).
	// f.Audit, when set, is stored with it as the audit chain's anchor.
	SaveFinal(ctx context.Context, pollID id.ID, f Frozen) (Frozen, error)
	// LoadFinal returns the frozen final tally; found is false if none.
	LoadFinal(ctx context.Context, pollID id.ID) (f Frozen, found bool, err error)
	// Ballots reads every ballot's options, in the voter's order, through
	// the per-poll index, and their scores (nil but on score polls): what a
	// ranked or score count needs beyond totals.
	Ballots(ctx context.Context, pollID id.ID, buckets int) ([][]id.ID, [][]int, error)
	// RecordDrift keeps one reconciliation's measured counter drift;
	// DriftRuns reads them all (the drift history a freeze certifies).
	RecordDrift(ctx context.Context, pollID id.ID, at time.Time, d Drift) error
	DriftRuns(ctx context.Context, pollID id.ID) ([]Drift, error)
	// LoadLag reads every worker's live-lag histogram of the poll.
	LoadLag(ctx context.Context, pollID id.ID) ([]livelag.Hist, error)
}

// Frozen is a closed poll's final tally.
type Frozen struct {
	Counts Counts
	AsOf   time.Time
	// Audit is the head of the poll's owner-action audit chain when the
	// tally was frozen (nil: the chain was empty, or the tally predates
	// the anchor): edits and deletions of the chain, the last entry
	// included, are caught against it.
	Audit *audit.Head
	// Drift is the poll's drift history up to the freeze (nil on tallies
	// frozen before it was kept).
	Drift *DriftHistory
	// Ledger is the poll's signed ledger head (nil on tallies frozen
	// before ledgers, or by a service without SetLedger).
	Ledger *LedgerHead
}

// Drift is one reconciliation's measured counter drift, in absolute
// ballots and the largest absolute difference of one option.
type Drift struct {
	Ballots   int64
	MaxOption int64
	Repaired  bool
}

// DriftOf sizes a measured difference between counters and rows.
func DriftOf(d Counts, repaired bool) Drift {
	out := Drift{Ballots: abs(d.Ballots), Repaired: repaired}
	for _, v := range d.Options {
		out.MaxOption = max(out.MaxOption, abs(v))
	}
	return out
}

// DriftHistory is how far a poll's live figures were from the truth over
// its life, frozen with its final tally: the reconciliations that measured
// counter drift, the largest drift, how many repaired it, and how long
// accepted votes took to reach the live tally.
type DriftHistory struct {
	Reconciliations int64 `json:"reconciliations_with_drift"`
	// MaxCounterDrift is the largest drift measured, in ballots or in one
	// option's count, whichever was larger.
	MaxCounterDrift int64           `json:"max_counter_drift"`
	Repairs         int64           `json:"repairs"`
	LiveLag         livelag.Summary `json:"live_lag"`
}

// HistoryOf sums a poll's drift runs and live-lag histograms.
func HistoryOf(runs []Drift, lag []livelag.Hist) DriftHistory {
	h := DriftHistory{Reconciliations: int64(len(runs)), LiveLag: livelag.Merge(lag)}
	for _, r := range runs {
		h.MaxCounterDrift = max(h.MaxCounterDrift, r.Ballots, r.MaxOption)
		if r.Repaired {
			h.Repairs++
		}
	}
	return h
}

// Config tunes caching.
type Config struct {
	LiveCacheTTL  time.Duration `env:"LIVE_CACHE_TTL" envDefault:"1s"`
	FinalCacheTTL time.Duration `env:"FINAL_CACHE_TTL" envDefault:"5s"`
	// FinalMinInterval is the least time between the end of one count of
	// a poll's rows (tally=final on a poll not yet frozen) and the start of
	// the next in this process; meanwhile the last count is served with its
	// as_of. A count of a big poll is a scan of its whole vote index, so
	// however many read it, each process scans a poll at most once per
	// (scan time + FinalMinInterval).
	FinalMinInterval time.Duration `env:"FINAL_MIN_INTERVAL" envDefault:"5s"`
	// FlagsCacheTTL is how long the owner's flag report (GET …/flags) is
	// cached; each report built past it is audited.
	FlagsCacheTTL time.Duration `env:"FLAGS_CACHE_TTL" envDefault:"5s"`
	// FenceMax bounds how long a live (non-final) reconciliation holds its
	// fence. Follow-up writers of the poll wait while it is up, and a drain
	// batch commits only once all its follow-ups are written, so a long
	// count of a viral poll's index would stall the whole drain. Past it
	// the fence is lifted, the count goes on unfenced, and the run reports
	// what it measured without repairing (result fence_released). 0 keeps
	// the fence for the whole count.
	FenceMax time.Duration `env:"FENCE_MAX" envDefault:"2s"`
}

// maxFinalMemo bounds how many polls' last counts a process remembers.
const maxFinalMemo = 4096

// Auditor records reconciliation outcomes (Record: the unchained system
// log, best effort) and the owner's re-tallies (Append: the poll's chain,
// durable; the re-tally is answered only once its entry is written).
type Auditor interface {
	Record(ctx context.Context, pollID, actor id.ID, kind string, detail map[string]any)
	Append(ctx context.Context, pollID, actor id.ID, kind string, detail map[string]any) (audit.Entry, error)
	// Head reads the poll's chain head (the zero Head for an empty chain),
	// anchored in the final tally when it is frozen.
	Head(ctx context.Context, pollID id.ID) (audit.Head, error)
}

// Cache holds computed results for a short while (pkg/redisx implements it
// on Redis). It is an accelerator: every error reads as a miss, and the
// results are computed from the store.
type Cache interface {
	// Get returns the bytes under key; ok is false on a miss.
	Get(ctx context.Context, key string) (b []byte, ok bool, err error)
	Set(ctx context.Context, key string, b []byte, ttl time.Duration) error
	Del(ctx context.Context, keys ...string) error
}

// Fence holds a poll's follow-up writes while a reconciliation measures it
// (pkg/redisx/fence implements it, and vote.Fence, on Redis).
type Fence interface {
	// Raise waits until no follow-up writer of the poll is in flight and
	// keeps new ones out until lift is called. Another reconciliation's
	// fence is ErrBusy; any other error means there is no fence to be had.
	Raise(ctx context.Context, pollID id.ID) (lift func(), err error)
}

// Service serves results and keeps the counters.
type Service struct {
	audit Auditor
	cfg   Config
	store Store
	fence Fence
	cache Cache
	log   *zap.Logger
	now   func() time.Time
	group singleflight.Group
	m     *metrics

	// finals remembers each poll's last row count, to space out scans.
	finalsMu sync.Mutex
	finals   map[id.ID]finalMemo

	// changed, when set, hears of results a reconciliation changed (a
	// repair, a freeze), for the live hubs.
	changed atomic.Pointer[func(pollID id.ID)]

	// complete, when set, finishes the poll's unfinished direct writes
	// before a final run measures it (CompleteBeforeFinal).
	complete atomic.Pointer[func(ctx context.Context, p *poll.Poll) error]

	// ledger, when set, builds the ledger final runs freeze (SetLedger).
	ledger *ledgerDeps

	// frozen, when set, hears each final run's frozen tally (OnFrozen).
	frozen atomic.Pointer[func(ctx context.Context, p *poll.Poll, f Frozen)]
}

// OnFrozen sets who hears that a final run froze, or found frozen, the
// poll's final tally (app: the public events). It runs after the tally is
// stored and must not block.
func (s *Service) OnFrozen(fn func(ctx context.Context, p *poll.Poll, f Frozen)) {
	s.frozen.Store(&fn)
}

// CompleteBeforeFinal sets what a final run does before it measures: the
// vote service's Complete, which indexes ballots whose direct write gave
// up on its follow-ups (app wires it). An error fails the run, which is
// retried: a tally is never frozen over an unresolved direct write.
func (s *Service) CompleteBeforeFinal(fn func(ctx context.Context, p *poll.Poll) error) {
	s.complete.Store(&fn)
}

// OnChanged sets who hears that a reconciliation repaired or froze a
// poll's results (app: the live notices).
func (s *Service) OnChanged(fn func(pollID id.ID)) {
	s.changed.Store(&fn)
}

func (s *Service) announce(pollID id.ID) {
	if fn := s.changed.Load(); fn != nil {
		(*fn)(pollID)
	}
}

// finalMemo is a poll's last row count, when it started (its as_of) and
// when it finished.
type finalMemo struct {
	rows RowCounts
	asOf time.Time
	done time.Time
}

type metrics struct {
	scans     prometheus.Counter
	cache     *prometheus.CounterVec
	drift     *prometheus.CounterVec
	runs      *prometheus.CounterVec
	retallies *prometheus.CounterVec
	flagged   prometheus.Histogram
	hidden    *prometheus.CounterVec
	// methodCounts counts exact method counts (ranked, schulze) computed
	// from the rows for tally=final, each a read of the poll's ballots.
	methodCounts *prometheus.CounterVec
}

// NewService builds the service and registers its metrics.
// audit may be nil (nothing recorded).
func NewService(cfg Config, store Store, cache Cache, fence Fence, audit Auditor, log *zap.Logger, now func() time.Time, reg prometheus.Registerer) *Service {
	m := &metrics{
		scans: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tally_final_scans_total",
			Help: "Counts of a poll's vote rows made to answer tally=final or a flag report (each scans the poll's vote index).",
		}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_results_cache_total", Help: "Results cache lookups by tally mode (live, final, flags) and outcome (hit, miss, error).",
		}, []string{"mode", "outcome"}),
		drift: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_reconcile_drift_votes_total",
			Help: "Absolute vote-count drift found by reconciliation, by source (counters, redis).",
		}, []string{"source"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_reconcile_runs_total", Help: "Reconciliation runs by result (clean, repaired, unfenced_drift, busy, failed); fence_released counts runs whose count outlasted TALLY_RESULTS_FENCE_MAX, so the fence was lifted and nothing repaired.",
		}, []string{"result"}),
		retallies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tally_flag_retallies_total",
			Help: "Tallies excluding flagged votes computed, shown and audited, by who asked (api: the poll's owner, cli: tally reconcile --exclude-flagged).",
		}, []string{"by"}),
		flagged: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tally_reconcile_flagged_ratio",
			Help:    "Share of a poll's ballots that carry bot-signal flags, observed by each reconciliation of a poll with ballots.",
			Buckets: []float64{0, 0.01, 0.05, 0.1, 0.25, 0.5, 1},
		}),
	}
	m.hidden = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tally_results_hidden_total",
		Help: "Results refused (403 RESULTS_HIDDEN, or a live socket closed with 4403) by the poll's results_visibility, by mode.",
	}, []string{"mode"})
	m.methodCounts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tally_method_counts_total",
		Help: "Exact counts of ranked and Schulze polls computed from their ballot rows for tally=final, by method (each reads the poll's vote index).",
	}, []string{"method"})
	reg.MustRegister(m.scans, m.cache, m.drift, m.runs, m.retallies, m.flagged, m.hidden, m.methodCounts)
	for _, v := range []poll.ResultsVisibility{poll.ResultsAfterVote, poll.ResultsAfterClose, poll.ResultsOwnerOnly} {
		m.hidden.WithLabelValues(string(v))
	}
	// Exported at zero from the start, so alerts on increase() see the
	// first drift.
	m.drift.WithLabelValues("counters")
	m.drift.WithLabelValues("redis")
	m.retallies.WithLabelValues("api")
	m.retallies.WithLabelValues("cli")
	return &Service{cfg: cfg, store: store, fence: fence, cache: cache, audit: audit, log: log, now: now, m: m,
		finals: map[id.ID]finalMemo{}}
}

// VisibleTo applies the visibility rule (Visible) to the caller at the
// service's clock, and counts its refusals by mode.
func (s *Service) VisibleTo(p *poll.Poll, caller id.ID, signedIn bool, voted func() (bool, error)) error {
	err := Visible(p, caller, signedIn, s.now(), voted)
	if errors.Is(err, ErrResultsHidden) {
		s.m.hidden.WithLabelValues(string(p.Settings.Visibility())).Inc()
	}
	return err
}

// Add counts applied ballots in one counter shard (implements
// vote.Counter): one counter batch however many ballots.
func (s *Service) Add(ctx context.Context, p *poll.Poll, shard int, ballots [][]id.ID, scores [][]int) error {
	d, m := NewCounts(), p.Settings.CountingMethod()
	for i, opts := range ballots {
		var sc []int
		if i < len(scores) {
			sc = scores[i]
		}
		d.AddBallot(m, opts, sc)
	}
	return s.store.AdjustShard(ctx, p.ID, shard, d)
}

// Choice is what one ballot counts: its options, and a score ballot's
// scores.
type Choice struct {
	Options []id.ID
	Scores  []int
}

// Move moves one changed ballot's count in one counter shard (behind
// vote.CountMover): what from counted is taken away, what to counts is
// added, in one counter batch. Either may be nil (a first count, a
// revoke).
func (s *Service) Move(ctx context.Context, p *poll.Poll, shard int, from, to *Choice) error {
	d, m := NewCounts(), p.Settings.CountingMethod()
	if to != nil {
		d.AddBallot(m, to.Options, to.Scores)
	}
	if from != nil {
		old := NewCounts()
		old.AddBallot(m, from.Options, from.Scores)
		d = old.Diff(d)
	}
	return s.store.AdjustShard(ctx, p.ID, shard, d)
}

// Frozen reports whether the poll's final tally is frozen. A frozen tally
// is never unfrozen; the worker asks before it writes a closed poll's vote.
func (s *Service) Frozen(ctx context.Context, pollID id.ID) (bool, error) {
	_, found, err := s.store.LoadFinal(ctx, pollID)
	return found, err
}

// HasVotes reports whether any ballot row exists (implements
// poll.VoteCounter).
func (s *Service) HasVotes(ctx context.Context, p *poll.Poll) (bool, error) {
	return s.store.AnyRow(ctx, p.ID, p.IndexBuckets)
}

type snapshot struct {
	Counts Counts    `json:"counts"`
	AsOf   time.Time `json:"as_of"`
	// Count is the method's exact count, on tally=final of ranked and
	// Schulze polls.
	Count *count.Result `json:"count,omitempty"`
	// Certificate is set when the counts are the frozen final tally.
	Certificate *Certificate `json:"certificate,omitempty"`
}

func cacheKey(mode Mode, pollID id.ID) string {
	return redisx.Results(string(mode), pollID)
}

// Results returns the poll's results in the given mode. Visibility is the
// caller's concern (see CanSee).
func (s *Service) Results(ctx context.Context, p *poll.Poll, mode Mode) (*Results, error) {
	snap, err := s.snapshot(ctx, p, mode)
	if err != nil {
		return nil, err
	}
	now := s.now()
	r := BuildResults(p, snap.Counts, mode, snap.AsOf, now)
	r.Method, r.Count = p.Settings.CountingMethod(), snap.Count
	r.Certify(snap.Certificate)
	if mode == Live && r.TallyState == StateReconciling {
		// Live counters of a closed poll: the state is the poll's, so a
		// frozen tally says certified here too (one small read, closed
		// polls only).
		if _, found, err := s.store.LoadFinal(ctx, p.ID); err == nil && found {
			r.TallyState = StateCertified
		}
	}
	return r, nil
}

// snapshot reads counts through the Redis cache; concurrent misses in this
// process share one computation. With Redis down it computes directly.
func (s *Service) snapshot(ctx context.Context, p *poll.Poll, mode Mode) (snapshot, error) {
	key := cacheKey(mode, p.ID)
	if snap, ok := s.cached(ctx, key); ok {
		s.m.cache.WithLabelValues(string(mode), "hit").Inc()
		return snap, nil
	}
	s.m.cache.WithLabelValues(string(mode), "miss").Inc()
	v, err, _ := s.group.Do(key, func() (any, error) {
		snap, ttl, err := s.compute(context.WithoutCancel(ctx), p, mode)
		if err != nil {
			return snap, err
		}
		if b, err := json.Marshal(snap); err == nil {
			if err := s.cache.Set(ctx, key, b, ttl); err != nil {
				s.log.Debug("cache results", zap.Stringer("poll_id", p.ID), zap.Error(err))
			}
		}
		return snap, nil
	})
	if err != nil {
		return snapshot{}, err
	}
	return v.(snapshot), nil
}

// cached reads a snapshot from Redis; a miss, an error or a bad entry is
// not ok.
func (s *Service) cached(ctx context.Context, key string) (snapshot, bool) {
	b, ok, err := s.cache.Get(ctx, key)
	if err != nil {
		s.m.cache.WithLabelValues("any", "error").Inc()
	}
	if !ok {
		return snapshot{}, false
	}
	var snap snapshot
	if json.Unmarshal(b, &snap) != nil || snap.Counts.Options == nil {
		return snapshot{}, false
	}
	return snap, true
}

func (s *Service) compute(ctx context.Context, p *poll.Poll, mode Mode) (snapshot, time.Duration, error) {
	now := s.now().UTC()
	if mode == Live {
		c, err := s.store.SumShards(ctx, p.ID, p.CounterShards)
		return snapshot{Counts: c, AsOf: now}, s.cfg.LiveCacheTTL, err
	}
	// A closed poll whose reconciliation has frozen its tally serves it.
	if p.StatusAt(now) == poll.Closed {
		f, found, err := s.store.LoadFinal(ctx, p.ID)
		if err != nil {
			return snapshot{}, 0, err
		}
		if found {
			snap := snapshot{Counts: f.Counts, AsOf: f.AsOf, Certificate: CertificateOf(f)}
			return s.withCount(ctx, p, snap, time.Minute)
		}
	}
	memo, ttl, err := s.countRows(ctx, p)
	if err != nil {
		return snapshot{}, ttl, err
	}
	return s.withCount(ctx, p, snapshot{Counts: memo.rows.All, AsOf: memo.asOf}, ttl)
}

// withCount adds the method's exact count to a final snapshot of a ranked
// or Schulze poll, from a read of the ballots of its own. On a frozen poll
// that read sees the rows the frozen totals were counted from (nothing is
// written to a frozen poll), so the count is the one of the close; on an
// open poll it may include ballots written after the totals were counted.
func (s *Service) withCount(ctx context.Context, p *poll.Poll, snap snapshot, ttl time.Duration) (snapshot, time.Duration, error) {
	if !carriesCount(p) {
		return snap, ttl, nil
	}
	ballots, scores, err := s.store.Ballots(ctx, p.ID, p.IndexBuckets)
	if err != nil {
		return snapshot{}, 0, err
	}
	s.m.methodCounts.WithLabelValues(string(p.Settings.CountingMethod())).Inc()
	c := MethodCountScored(p, ballots, scores)
	snap.Count = &c
	return snap, ttl, nil
}

// countRows counts a poll's rows unless this process finished a count less
// than FinalMinInterval ago; then it serves that count (with its as_of),
// cached for the rest of the interval. tally=final and the flag report
// share both the memo and the count: concurrent callers of either are
// collapsed into one scan per poll.
func (s *Service) countRows(ctx context.Context, p *poll.Poll) (finalMemo, time.Duration, error) {
	if memo, left, ok := s.lastCount(p.ID); ok {
		return memo, min(left, s.cfg.FinalCacheTTL), nil
	}
	v, err, _ := s.group.Do("rows:"+p.ID.String(), func() (any, error) {
		s.m.scans.Inc()
		asOf := s.now().UTC()
		rc, err := s.store.CountRows(ctx, p.ID, p.Settings.CountingMethod(), p.IndexBuckets, nil)
		if err != nil {
			return finalMemo{}, err
		}
		memo := finalMemo{rows: rc, asOf: asOf, done: s.now()}
		s.finalsMu.Lock()
		if _, ok := s.finals[p.ID]; !ok && len(s.finals) >= maxFinalMemo {
			for k := range s.finals { // evict one at random: the map stays bounded
				delete(s.finals, k)
				break
			}
		}
		s.finals[p.ID] = memo
		s.finalsMu.Unlock()
		return memo, nil
	})
	if err != nil {
		return finalMemo{}, 0, err
	}
	return v.(finalMemo), s.cfg.FinalCacheTTL, nil
}

// lastCount is the poll's last count while it is younger than
// FinalMinInterval, and how long it stays so.
func (s *Service) lastCount(pollID id.ID) (finalMemo, time.Duration, bool) {
	s.finalsMu.Lock()
	memo, ok := s.finals[pollID]
	s.finalsMu.Unlock()
	if !ok {
		return finalMemo{}, 0, false
	}
	left := memo.done.Add(s.cfg.FinalMinInterval).Sub(s.now())
	return memo, left, left > 0
}

// Invalidate drops cached results so the next read recomputes.
func (s *Service) Invalidate(ctx context.Context, pollID id.ID) {
	_ = s.cache.Del(ctx, cacheKey(Live, pollID), cacheKey(Final, pollID), cacheKey(flagsMode, pollID))
	s.finalsMu.Lock()
	delete(s.finals, pollID)
	s.finalsMu.Unlock()
}

// LiveSince returns live results read at since or later (for the live
// hub, after a "counts changed" notice of that time): the cached snapshot
// when it is that recent, else a fresh sum of the shards, cached for the
// other processes that received the same notice.
func (s *Service) LiveSince(ctx context.Context, p *poll.Poll, since time.Time) (*Results, error) {
	key := cacheKey(Live, p.ID)
	if snap, ok := s.cached(ctx, key); ok && !snap.AsOf.Before(since) {
		s.m.cache.WithLabelValues(string(Live), "hit").Inc()
		return BuildResults(p, snap.Counts, Live, snap.AsOf, s.now()), nil
	}
	s.m.cache.WithLabelValues(string(Live), "miss").Inc()
	snap, ttl, err := s.compute(ctx, p, Live)
	if err != nil {
		return nil, err
	}
	if b, err := json.Marshal(snap); err == nil {
		if err := s.cache.Set(ctx, key, b, ttl); err != nil {
			s.log.Debug("cache results", zap.Stringer("poll_id", p.ID), zap.Error(err))
		}
	}
	return BuildResults(p, snap.Counts, Live, snap.AsOf, s.now()), nil
}

// AuditAnchor is the audit chain head anchored in the poll's certified
// final tally, nil while the tally is not frozen or anchors nothing.
func (s *Service) AuditAnchor(ctx context.Context, pollID id.ID) (*audit.Head, error) {
	f, found, err := s.store.LoadFinal(ctx, pollID)
	if err != nil || !found {
		return nil, err
	}
	return f.Audit, nil
}

// FrozenResults returns the poll's frozen final tally, and false while it
// has none.
func (s *Service) FrozenResults(ctx context.Context, p *poll.Poll) (*Results, bool, error) {
	f, found, err := s.store.LoadFinal(ctx, p.ID)
	if err != nil || !found {
		return nil, false, err
	}
	r := BuildResults(p, f.Counts, Final, f.AsOf, s.now())
	r.Certify(CertificateOf(f))
	return r, true, nil
}
