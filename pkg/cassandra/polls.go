package cassandra

import (
	"context"
	"errors"
	"time"

	"github.com/gocql/gocql"
	"github.com/scylladb/gocqlx/v2"
	"github.com/scylladb/gocqlx/v2/qb"

	"github.com/tally-vote/tally/pkg/apperr"
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

const (
	insertPollStatics = `INSERT INTO polls (poll_id, creator_id, title, description, start_time, end_time,
		closed_at, created_at, updated_at, show_results_during_voting, allow_anonymous, allow_multiple_options,
		max_votes_per_user, counter_shards, index_buckets) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	insertPollOption = `INSERT INTO polls (poll_id, option_id, option_text, display_order) VALUES (?, ?, ?, ?)`
	deletePollOption = `DELETE FROM polls WHERE poll_id = ? AND option_id = ?`
	selectPoll       = `SELECT option_id, creator_id, title, description, start_time, end_time, closed_at,
		created_at, updated_at, show_results_during_voting, allow_anonymous, allow_multiple_options,
		max_votes_per_user, counter_shards, index_buckets, option_text, display_order,
		options_version, options_frozen FROM polls WHERE poll_id = ?`
)

func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// writePoll writes the poll's partition in one single-partition batch, so
// readers never see metadata without its options.
func (st *PollStore) writePoll(ctx context.Context, p *poll.Poll) error {
	b := st.s.Session.NewBatch(gocql.UnloggedBatch).WithContext(ctx)
	b.Query(insertPollStatics, p.ID, p.CreatorID, p.Title, p.Description, p.StartTime, p.EndTime,
		nullTime(p.ClosedAt), p.CreatedAt, p.UpdatedAt, p.Settings.ShowResultsDuringVoting,
		p.Settings.AllowAnonymous, p.Settings.AllowMultipleOptions, p.Settings.MaxVotesPerUser,
		p.CounterShards, p.IndexBuckets)
	for _, o := range p.Options {
		b.Query(insertPollOption, p.ID, o.ID, o.Text, o.DisplayOrder)
	}
	return st.s.Session.ExecuteBatch(b)
}

// Create stores a new poll and its creator index row.
func (st *PollStore) Create(ctx context.Context, p *poll.Poll) error {
	if err := st.writePoll(ctx, p); err != nil {
		return apperr.Unavailable("insert poll", err)
	}
	err := st.s.Session.Query(`INSERT INTO polls_by_creator (creator_id, created_at, poll_id) VALUES (?, ?, ?)`,
		p.CreatorID, p.CreatedAt, p.ID).WithContext(ctx).Exec()
	if err != nil {
		return apperr.Unavailable("index poll by creator", err)
	}
	return nil
}

// Update writes the changed fields and nothing else, so concurrent updates
// of different fields never undo each other: a description edit racing a
// close cannot write closed_at back to what it read.
func (st *PollStore) Update(ctx context.Context, id gocql.UUID, ch poll.Change) error {
	cols := []string{"updated_at"}
	vals := []any{ch.UpdatedAt}
	set := func(col string, v any) { cols = append(cols, col); vals = append(vals, v) }
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
		if sp.ShowResultsDuringVoting != nil {
			set("show_results_during_voting", *sp.ShowResultsDuringVoting)
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
	}
	stmt, _ := qb.Update("polls").Set(cols...).Where(qb.Eq("poll_id")).ToCql()
	if err := st.s.Session.Query(stmt, append(vals, id)...).WithContext(ctx).Exec(); err != nil {
		return apperr.Unavailable("update poll", err)
	}
	return nil
}

// versionArg is an options version as a CQL value: 0 is the null of polls
// created before options were versioned or never replaced.
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
	b := st.s.Session.NewBatch(gocql.UnloggedBatch).WithContext(ctx)
	b.Query(`UPDATE polls SET options_version = ?, updated_at = ? WHERE poll_id = ? IF options_frozen = null AND options_version = ?`,
		p.OptionsVersion+1, at, p.ID, versionArg(p.OptionsVersion))
	for _, o := range p.Options {
		b.Query(deletePollOption, p.ID, o.ID)
	}
	for _, o := range opts {
		b.Query(insertPollOption, p.ID, o.ID, o.Text, o.DisplayOrder)
	}
	applied, iter, err := st.s.Session.ExecuteBatchCAS(b)
	if iter != nil {
		_ = iter.Close()
	}
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
func (st *PollStore) FreezeOptions(ctx context.Context, id gocql.UUID, version int) (bool, error) {
	q := st.s.Session.Query(`UPDATE polls SET options_frozen = true WHERE poll_id = ? IF options_version = ?`,
		id, versionArg(version)).WithContext(ctx)
	applied, err := q.MapScanCAS(map[string]any{})
	if err != nil {
		return false, apperr.Unavailable("freeze poll options", err)
	}
	return applied, nil
}

// Get reads the poll partition.
func (st *PollStore) Get(ctx context.Context, id gocql.UUID) (*poll.Poll, error) {
	iter := st.s.Session.Query(selectPoll, id).WithContext(ctx).Iter()
	var (
		p     = &poll.Poll{ID: id}
		optID gocql.UUID
		text  *string
		order *int
		found bool
	)
	var (
		closedAt *time.Time
		version  *int
		frozen   *bool
	)
	for iter.Scan(&optID, &p.CreatorID, &p.Title, &p.Description, &p.StartTime, &p.EndTime, &closedAt,
		&p.CreatedAt, &p.UpdatedAt, &p.Settings.ShowResultsDuringVoting, &p.Settings.AllowAnonymous,
		&p.Settings.AllowMultipleOptions, &p.Settings.MaxVotesPerUser, &p.CounterShards, &p.IndexBuckets,
		&text, &order, &version, &frozen) {
		found = true
		if text != nil && optID != (gocql.UUID{}) {
			o := poll.Option{ID: optID, Text: *text}
			if order != nil {
				o.DisplayOrder = *order
			}
			p.Options = append(p.Options, o)
		}
		if closedAt != nil {
			p.ClosedAt = *closedAt
		}
		if version != nil {
			p.OptionsVersion = *version
		}
		p.OptionsFrozen = frozen != nil && *frozen
	}
	if err := iter.Close(); err != nil {
		return nil, apperr.Unavailable("read poll", err)
	}
	if !found || p.CreatorID == (gocql.UUID{}) {
		return nil, poll.ErrNotFound
	}
	poll.SortOptions(p.Options)
	return p, nil
}

// ListByCreator pages through the creator's polls, newest first, with
// Cassandra's paging state as the cursor.
func (st *PollStore) ListByCreator(ctx context.Context, creator gocql.UUID, page []byte, limit int) ([]gocql.UUID, []byte, error) {
	iter := st.s.Session.Query(`SELECT poll_id FROM polls_by_creator WHERE creator_id = ?`, creator).
		WithContext(ctx).PageSize(limit).PageState(page).Iter()
	next := iter.PageState()
	ids := make([]gocql.UUID, 0, limit)
	var id gocql.UUID
	for len(ids) < limit && iter.Scan(&id) {
		ids = append(ids, id)
	}
	if err := iter.Close(); err != nil {
		return nil, nil, apperr.Unavailable("list polls", err)
	}
	return ids, next, nil
}

// ClaimCreateKey binds an idempotency key and request fingerprint to a poll
// id, resolving unknown outcomes like the vote insert does.
func (st *PollStore) ClaimCreateKey(ctx context.Context, creator gocql.UUID, key, fingerprint string, id gocql.UUID) (gocql.UUID, string, error) {
	for range maxLWTAttempts {
		q := st.s.Session.Query(`INSERT INTO poll_idempotency (creator_id, idempotency_key, poll_id, fingerprint, created_at)
			VALUES (?, ?, ?, ?, ?) IF NOT EXISTS`, creator, key, id, fingerprint, time.Now().UTC()).WithContext(ctx)
		applied, existing, err := casInsert(q)
		if err == nil {
			if applied {
				return id, fingerprint, nil
			}
			winner, _ := existing["poll_id"].(gocql.UUID)
			fp, _ := existing["fingerprint"].(string)
			return winner, fp, nil
		}
		if !outcomeUnknown(err) {
			return gocql.UUID{}, "", apperr.Unavailable("claim idempotency key", err)
		}
		var (
			winner gocql.UUID
			fp     *string
		)
		rq := st.s.Session.Query(`SELECT poll_id, fingerprint FROM poll_idempotency WHERE creator_id = ? AND idempotency_key = ?`,
			creator, key).WithContext(ctx)
		err = serialRead(rq, st.serial).Scan(&winner, &fp)
		switch {
		case errors.Is(err, gocql.ErrNotFound):
			continue
		case err != nil:
			return gocql.UUID{}, "", apperr.Unavailable("resolve idempotency key", err)
		}
		return winner, deref(fp), nil
	}
	return gocql.UUID{}, "", apperr.Unavailable("claim idempotency key", errors.New("outcome unresolved"))
}
