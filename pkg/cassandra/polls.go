package cassandra

import (
	"context"
	"time"

	"github.com/gocql/gocql"
	"github.com/scylladb/gocqlx/v2"
	"github.com/scylladb/gocqlx/v2/qb"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
)

// PollStore implements poll.Store.
type PollStore struct {
	s      gocqlx.Session
	serial gocql.SerialConsistency
}

// NewPollStore builds the store.
func NewPollStore(s gocqlx.Session, cfg Config) *PollStore {
	serial, _ := parseSerial(cfg.SerialConsistency)
	return &PollStore{s: s, serial: serial}
}

var (
	insertPollStatics = newStatement(qb.Insert(pollsTable.Name()).Columns(pollStaticColumns...).ToCql())
	insertPollOption  = newStatement(qb.Insert(pollsTable.Name()).Columns(pollOptionColumns...).ToCql())
	deletePollOption  = newStatement(pollsTable.Delete())
	selectPoll        = newStatement(pollsTable.Select(pollsTable.Metadata().Columns[1:]...)) // all but poll_id
	// replaceOptionsIf bumps the options version, provided no vote froze
	// the options and nobody replaced them since they were read: the
	// expected version is null for a poll whose options were never
	// replaced.
	replaceOptionsIf = newStatement(qb.Update(pollsTable.Name()).Set("options_version", "updated_at").
				Where(qb.Eq("poll_id")).
				If(qb.EqLit("options_frozen", "null"), qb.EqNamed("options_version", "expected_version")).ToCql())
	freezeOptions = newStatement(qb.Update(pollsTable.Name()).SetLit("options_frozen", "true").
			Where(qb.Eq("poll_id")).If(qb.Eq("options_version")).ToCql())
	selectPollVersion = newStatement(qb.Select(pollsTable.Name()).Columns("poll_version", "updated_at").
				Where(qb.Eq("poll_id")).Limit(1).ToCql())
	insertPollByCreator  = newStatement(pollsByCreatorTable.Insert())
	selectPollsByCreator = newStatement(pollsByCreatorTable.Select("poll_id"))
	insertCreateKey      = newStatement(pollIdempotencyTable.InsertBuilder().Unique().ToCql())
	selectCreateKey      = newStatement(pollIdempotencyTable.Get("poll_id", "fingerprint", "created_at", "counter_shards",
		"index_buckets"))
)

// writePoll writes the poll's partition in one single-partition batch, so
// readers never see metadata without its options.
func (st *PollStore) writePoll(ctx context.Context, p *poll.Poll, ts int64) error {
	b := newBatch(ctx, st.s, gocql.UnloggedBatch)
	if ts != 0 {
		b.WithTimestamp(ts)
	}
	b.add(insertPollStatics, toPollRow(p))
	for _, o := range p.Options {
		b.add(insertPollOption, toOptionRow(p.ID, o))
	}
	return b.exec(st.s)
}

// Create stores a new poll and its creator index row, written with the
// poll's creation time as their write timestamp. A create whose key claim
// lost its first attempt may be written twice, by that attempt, late, and
// by the retry that rebuilt it (poll.Service.Create): both write the same
// rows at the same timestamp, and any later change (a PATCH, a close, an
// option replacement) has a later one, so a late create never undoes it.
func (st *PollStore) Create(ctx context.Context, p *poll.Poll) error {
	var ts int64
	if !p.CreatedAt.IsZero() {
		ts = p.CreatedAt.UnixMicro()
	}
	if err := st.writePoll(ctx, p, ts); err != nil {
		return apperr.Unavailable("insert poll", err)
	}
	r := pollByCreatorRow{CreatorID: p.CreatorID, CreatedAt: p.CreatedAt, PollID: p.ID}
	q := insertPollByCreator.query(ctx, st.s).BindStruct(r)
	if ts != 0 {
		q.WithTimestamp(ts)
	}
	if err := q.ExecRelease(); err != nil {
		return apperr.Unavailable("index poll by creator", err)
	}
	return nil
}

// Update writes the changed fields and nothing else, so concurrent updates
// of different fields never undo each other: a description edit racing a
// close cannot write closed_at back to what it read. It is an LWT
// conditional on the poll version the change was judged against, and
// writes the next version; poll.ErrChangedSince when another change came
// first.
func (st *PollStore) Update(ctx context.Context, id id.ID, ch poll.Change) error {
	vals := qb.M{"poll_id": id, "updated_at": ch.UpdatedAt, "poll_version": ch.Version + 1,
		"expected_version": versionArg(ch.Version)}
	cols := []string{"updated_at", "poll_version"}
	set := func(col string, v any) { cols = append(cols, col); vals[col] = v }
	if ch.Title != nil {
		set("title", *ch.Title)
	}
	if ch.Description != nil {
		set("description", *ch.Description)
	}
	if ch.EndTime != nil {
		set("end_time", *ch.EndTime)
	}
	if ch.ClosedAt != nil {
		set("closed_at", *ch.ClosedAt)
	}
	if sp := ch.Settings; sp != nil {
		if v, ok := sp.Visibility(); ok {
			set("results_visibility", string(v))
			set("show_results_during_voting", v.ShownDuringVoting())
		}
		if sp.AllowAnonymous != nil {
			set("allow_anonymous", *sp.AllowAnonymous)
		}
		if sp.AllowMultipleOptions != nil {
			set("allow_multiple_options", *sp.AllowMultipleOptions)
		}
		if sp.MaxVotesPerUser != nil {
			set("max_votes_per_user", *sp.MaxVotesPerUser)
		}
		if sp.MinVotesPerUser != nil {
			set("min_votes_per_user", *sp.MinVotesPerUser)
		}
		if sp.Method != nil {
			set("method", string(*sp.Method))
		}
		if sp.BotPolicy != nil {
			set("bot_policy", string(*sp.BotPolicy))
		}
		if sp.AnonymousAccess != nil {
			set("anonymous_access", string(*sp.AnonymousAccess))
		}
		if sp.AllowVoteChange != nil {
			set("allow_vote_change", *sp.AllowVoteChange)
		}
		if sp.MaxVoteChanges != nil {
			set("max_vote_changes", *sp.MaxVoteChanges)
		}
		if sp.EmbedOrigins != nil {
			// An empty list writes a null: the same as never set.
			set("embed_origins", nilIfEmpty(*sp.EmbedOrigins))
		}
	}
	conds := []qb.Cmp{qb.EqNamed("poll_version", "expected_version")}
	if ch.OptionsVersion != nil {
		// A method change: votes checked against the poll before it must
		// fail their freeze, and a freeze first must fail this write.
		set("options_version", *ch.OptionsVersion+1)
		vals["expected_options_version"] = versionArg(*ch.OptionsVersion)
		conds = append(conds, qb.EqLit("options_frozen", "null"), qb.EqNamed("options_version", "expected_options_version"))
	}
	q := qb.Update(pollsTable.Name()).Set(cols...).Where(qb.Eq("poll_id")).
		If(conds...).QueryContext(ctx, st.s)
	applied, _, err := execCAS(q.BindMap(vals))
	if err != nil && outcomeUnknown(err) && ctx.Err() == nil {
		applied, err = st.settleUpdate(ctx, id, ch)
	}
	if err != nil {
		return apperr.Unavailable("update poll", err)
	}
	if !applied {
		return poll.ErrChangedSince
	}
	return nil
}

// settleUpdate tells, by a read at serial consistency (which completes any
// Paxos round in flight on the partition), whether an update whose outcome
// the cluster did not report applied: the poll is then at the version it
// wrote, with its updated_at. Otherwise it did not apply, and the caller
// judges the change again, as after a lost condition.
func (st *PollStore) settleUpdate(ctx context.Context, id id.ID, ch poll.Change) (bool, error) {
	row := map[string]any{}
	err := mapScan(selectPollVersion.query(ctx, st.s).BindMap(qb.M{"poll_id": id}).
		Consistency(gocql.Consistency(st.serial)), row)
	if err != nil {
		return false, err
	}
	v, _ := row["poll_version"].(int)
	at, _ := row["updated_at"].(time.Time)
	return v == ch.Version+1 && at.Equal(ch.UpdatedAt), nil
}

// versionArg is an options or poll version as a CQL value: 0 is the null
// of polls created before the column existed or never changed since.
func versionArg(v int) any {
	if v == 0 {
		return nil
	}
	return v
}

// ReplaceOptions swaps the poll's options in one conditional batch that
// applies only while no vote has frozen them and nobody replaced them
// since p was read. It returns poll.ErrOptionsFrozen when it did not apply.
func (st *PollStore) ReplaceOptions(ctx context.Context, p *poll.Poll, opts []poll.Option, at time.Time) error {
	b := newBatch(ctx, st.s, gocql.UnloggedBatch)
	b.add(replaceOptionsIf, qb.M{"options_version": p.OptionsVersion + 1, "updated_at": at, "poll_id": p.ID,
		"expected_version": versionArg(p.OptionsVersion)})
	for _, o := range p.Options {
		b.add(deletePollOption, pollRow{PollID: p.ID, OptionID: o.ID})
	}
	for _, o := range opts {
		b.add(insertPollOption, toOptionRow(p.ID, o))
	}
	applied, err := b.execCAS(st.s)
	if err != nil {
		return apperr.Unavailable("replace poll options", err)
	}
	if !applied {
		return poll.ErrOptionsFrozen
	}
	return nil
}

// FreezeOptions marks the options frozen, provided they are still the
// version the caller validated a vote against. It is idempotent.
func (st *PollStore) FreezeOptions(ctx context.Context, id id.ID, version int) (bool, error) {
	q := freezeOptions.query(ctx, st.s).BindMap(qb.M{"poll_id": id, "options_version": versionArg(version)})
	applied, _, err := execCAS(q)
	if err != nil {
		return false, apperr.Unavailable("freeze poll options", err)
	}
	return applied, nil
}

// Get reads the poll partition.
func (st *PollStore) Get(ctx context.Context, pollID id.ID) (*poll.Poll, error) {
	iter := selectPoll.query(ctx, st.s).BindStruct(pollRow{PollID: pollID}).Iter()
	var (
		p     = &poll.Poll{ID: pollID}
		r     pollRow
		found bool
	)
	for iter.StructScan(&r) {
		found = true
		r.addToPoll(p)
		r = pollRow{}
	}
	if err := iter.Close(); err != nil {
		return nil, apperr.Unavailable("read poll", err)
	}
	if !found || p.CreatorID == (id.ID{}) {
		return nil, poll.ErrNotFound
	}
	poll.SortOptions(p.Options)
	return p, nil
}

// ListByCreator pages through the creator's polls, newest first, with
// Cassandra's paging state as the cursor.
func (st *PollStore) ListByCreator(ctx context.Context, creator id.ID, page []byte, limit int) ([]id.ID, []byte, error) {
	iter := selectPollsByCreator.query(ctx, st.s).BindStruct(pollByCreatorRow{CreatorID: creator}).
		PageSize(limit).PageState(page).Iter()
	next := iter.PageState()
	ids := make([]id.ID, 0, limit)
	var r pollByCreatorRow
	for len(ids) < limit && iter.StructScan(&r) {
		ids = append(ids, r.PollID)
	}
	if err := iter.Close(); err != nil {
		return nil, nil, apperr.Unavailable("list polls", err)
	}
	return ids, next, nil
}

// ClaimCreateKey binds an idempotency key to a create claim with IF NOT
// EXISTS, resolving unknown outcomes like the vote insert does. It returns
// the claim that holds the key.
func (st *PollStore) ClaimCreateKey(ctx context.Context, creator id.ID, key string, c poll.CreateClaim) (poll.CreateClaim, error) {
	_, stored, err := insertIfAbsent{
		op: "claim idempotency key",
		attempt: func(ctx context.Context) (*gocqlx.Queryx, func(map[string]any) bool) {
			q := insertCreateKey.query(ctx, st.s).BindStruct(toPollIdempotencyRow(creator, key, c))
			return q, func(row map[string]any) bool { return mapID(row["poll_id"]) == c.PollID }
		},
		read: func(ctx context.Context) *gocqlx.Queryx {
			return selectCreateKey.query(ctx, st.s).BindStruct(pollIdempotencyRow{CreatorID: creator, IdempotencyKey: key})
		},
		serial: st.serial,
	}.run(ctx)
	if err != nil {
		return poll.CreateClaim{}, err
	}
	if stored == nil { // applied outright
		return c, nil
	}
	return pollIdempotencyFromMap(stored), nil
}
