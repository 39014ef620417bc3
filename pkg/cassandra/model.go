package cassandra

import (
	"cmp"
	"encoding/json"
	"time"

	"github.com/gocql/gocql"
	"github.com/tally-vote/tally/pkg/audit"
	"github.com/tally-vote/tally/pkg/auth"
	"github.com/tally-vote/tally/pkg/count"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/tally"
	"github.com/tally-vote/tally/pkg/vote"
)

// Row structs, one per table this package reads or writes, and the named
// converters between them and the domain's types. Rows are what gocqlx binds
// and scans by the db tags; domain types never carry tags. A pointer field
// is a column that may be null: nil reads a null and writes one, as the
// positional statements these replaced did.

// userRow is a row of users.
type userRow struct {
	UserID       id.ID     `db:"user_id"`
	Email        string    `db:"email"`
	Username     string    `db:"username"`
	PasswordHash string    `db:"password_hash"`
	CreatedAt    time.Time `db:"created_at"`
}

func toUserRow(u auth.User) userRow {
	return userRow{UserID: u.ID, Email: u.Email, Username: u.Username, PasswordHash: u.PasswordHash, CreatedAt: u.CreatedAt}
}

func (r userRow) toUser() auth.User {
	return auth.User{ID: r.UserID, Email: r.Email, Username: r.Username, PasswordHash: r.PasswordHash, CreatedAt: r.CreatedAt}
}

// pollRow is a row of polls: the static columns, which every row of the
// partition reads alike, and one option's clustering row.
type pollRow struct {
	PollID                  id.ID      `db:"poll_id"`
	OptionID                id.ID      `db:"option_id"`
	CreatorID               id.ID      `db:"creator_id"`
	Title                   string     `db:"title"`
	Description             string     `db:"description"`
	StartTime               time.Time  `db:"start_time"`
	EndTime                 time.Time  `db:"end_time"`
	ClosedAt                *time.Time `db:"closed_at"`
	CreatedAt               time.Time  `db:"created_at"`
	UpdatedAt               time.Time  `db:"updated_at"`
	ShowResultsDuringVoting bool       `db:"show_results_during_voting"`
	AllowAnonymous          bool       `db:"allow_anonymous"`
	AllowMultipleOptions    bool       `db:"allow_multiple_options"`
	MaxVotesPerUser         int        `db:"max_votes_per_user"`
	CounterShards           int        `db:"counter_shards"`
	IndexBuckets            int        `db:"index_buckets"`
	OptionsVersion          *int       `db:"options_version"`
	OptionsFrozen           *bool      `db:"options_frozen"`
	BotPolicy               *string    `db:"bot_policy"`
	AnonymousAccess         *string    `db:"anonymous_access"`
	PollVersion             *int       `db:"poll_version"`
	ResultsVisibility       *string    `db:"results_visibility"`
	EmbedOrigins            []string   `db:"embed_origins"`
	MinVotesPerUser         *int       `db:"min_votes_per_user"`
	Method                  *string    `db:"method"`
	AllowVoteChange         *bool      `db:"allow_vote_change"`
	MaxVoteChanges          *int       `db:"max_vote_changes"`
	OptionText              *string    `db:"option_text"`
	DisplayOrder            *int       `db:"display_order"`
}

// pollStaticColumns are the statics a new poll is written with; the options
// version and freeze, and the poll version, are left unset until an option
// replacement, the first vote or an owner's change writes them.
var pollStaticColumns = []string{
	"poll_id", "creator_id", "title", "description", "start_time", "end_time", "closed_at", "created_at",
	"updated_at", "show_results_during_voting", "allow_anonymous", "allow_multiple_options",
	"max_votes_per_user", "counter_shards", "index_buckets", "bot_policy", "anonymous_access",
	"results_visibility", "embed_origins", "min_votes_per_user", "method", "allow_vote_change", "max_vote_changes",
}

// pollOptionColumns are the columns of one option's row.
var pollOptionColumns = []string{"poll_id", "option_id", "option_text", "display_order"}

// toPollRow is the poll's static row; closed_at is null until a close.
func toPollRow(p *poll.Poll) pollRow {
	r := pollRow{
		PollID: p.ID, CreatorID: p.CreatorID, Title: p.Title, Description: p.Description,
		StartTime: p.StartTime, EndTime: p.EndTime, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt,
		// The boolean is still written, derived, for readers that know only it.
		ShowResultsDuringVoting: p.Settings.Visibility().ShownDuringVoting(),
		ResultsVisibility:       nullable(string(p.Settings.Visibility())),
		AllowAnonymous:          p.Settings.AllowAnonymous,
		AllowMultipleOptions:    p.Settings.AllowMultipleOptions, MaxVotesPerUser: p.Settings.MaxVotesPerUser,
		CounterShards: p.CounterShards, IndexBuckets: p.IndexBuckets,
		BotPolicy: nullable(string(p.Settings.BotPolicy)), AnonymousAccess: nullable(string(p.Settings.AnonymousAccess)),
		EmbedOrigins: p.Settings.EmbedOrigins,
		Method:       nullable(string(p.Settings.CountingMethod())),
	}
	if p.Settings.MinVotesPerUser > 0 {
		r.MinVotesPerUser = &p.Settings.MinVotesPerUser
	}
	if p.Settings.AllowVoteChange {
		r.AllowVoteChange = &p.Settings.AllowVoteChange
	}
	if p.Settings.MaxVoteChanges > 0 {
		r.MaxVoteChanges = &p.Settings.MaxVoteChanges
	}
	if !p.ClosedAt.IsZero() {
		r.ClosedAt = &p.ClosedAt
	}
	return r
}

// visibility is the row's results_visibility. Polls written before 014
// read null, and the boolean they were written with says their mode. This
// code writes the two together, in agreement; a boolean that disagrees with
// the mode was written later, by a process that knows only the boolean (a
// rolling deploy), and it wins.
func (r pollRow) visibility() poll.ResultsVisibility {
	if v := poll.ResultsVisibility(deref(r.ResultsVisibility)); v.Valid() && v.ShownDuringVoting() == r.ShowResultsDuringVoting {
		return v
	}
	return poll.VisibilityOf(r.ShowResultsDuringVoting)
}

// toOptionRow is one option's clustering row.
func toOptionRow(pollID id.ID, o poll.Option) pollRow {
	return pollRow{PollID: pollID, OptionID: o.ID, OptionText: &o.Text, DisplayOrder: &o.DisplayOrder}
}

// addToPoll folds one row of the partition into p: the statics (the same on
// every row) and the row's option, if it has one.
func (r pollRow) addToPoll(p *poll.Poll) {
	p.CreatorID, p.Title, p.Description = r.CreatorID, r.Title, r.Description
	p.StartTime, p.EndTime, p.CreatedAt, p.UpdatedAt = r.StartTime, r.EndTime, r.CreatedAt, r.UpdatedAt
	p.Settings = poll.Settings{
		ResultsVisibility: r.visibility(), AllowAnonymous: r.AllowAnonymous,
		AllowMultipleOptions: r.AllowMultipleOptions, MaxVotesPerUser: r.MaxVotesPerUser,
		// Polls created before 010 read nulls: the defaults.
		BotPolicy:       cmp.Or(poll.BotPolicy(deref(r.BotPolicy)), poll.DefaultSettings.BotPolicy),
		AnonymousAccess: cmp.Or(poll.AnonymousAccess(deref(r.AnonymousAccess)), poll.DefaultSettings.AnonymousAccess),
		// Null before 015, and after the owner cleared the list.
		EmbedOrigins: nilIfEmpty(r.EmbedOrigins),
		// Polls created before 016 read nulls: no minimum, and the method
		// the boolean names (Settings.CountingMethod).
		Method: count.Method(deref(r.Method)),
	}
	if r.MinVotesPerUser != nil {
		p.Settings.MinVotesPerUser = *r.MinVotesPerUser
	}
	// Null before 026: no change allowed.
	if r.AllowVoteChange != nil {
		p.Settings.AllowVoteChange = *r.AllowVoteChange
	}
	if r.MaxVoteChanges != nil {
		p.Settings.MaxVoteChanges = *r.MaxVoteChanges
	}
	p.CounterShards, p.IndexBuckets = r.CounterShards, r.IndexBuckets
	// A partition whose only row is the static one reads a null option_id.
	if r.OptionText != nil && r.OptionID != (id.ID{}) {
		o := poll.Option{ID: r.OptionID, Text: *r.OptionText}
		if r.DisplayOrder != nil {
			o.DisplayOrder = *r.DisplayOrder
		}
		p.Options = append(p.Options, o)
	}
	if r.ClosedAt != nil {
		p.ClosedAt = *r.ClosedAt
	}
	if r.OptionsVersion != nil {
		p.OptionsVersion = *r.OptionsVersion
	}
	if r.PollVersion != nil {
		p.Version = *r.PollVersion
	}
	p.OptionsFrozen = r.OptionsFrozen != nil && *r.OptionsFrozen
}

// pollByCreatorRow is a row of polls_by_creator.
type pollByCreatorRow struct {
	CreatorID id.ID     `db:"creator_id"`
	CreatedAt time.Time `db:"created_at"`
	PollID    id.ID     `db:"poll_id"`
}

// pollIdempotencyRow is a row of poll_idempotency: a create key's claim.
// created_at is the poll's creation time (it was the claim's own before
// migration 009, whose columns such claims leave null).
type pollIdempotencyRow struct {
	CreatorID      id.ID     `db:"creator_id"`
	IdempotencyKey string    `db:"idempotency_key"`
	PollID         id.ID     `db:"poll_id"`
	Fingerprint    string    `db:"fingerprint"`
	CreatedAt      time.Time `db:"created_at"`
	CounterShards  int       `db:"counter_shards"`
	IndexBuckets   int       `db:"index_buckets"`
}

func toPollIdempotencyRow(creator id.ID, key string, c poll.CreateClaim) pollIdempotencyRow {
	return pollIdempotencyRow{CreatorID: creator, IdempotencyKey: key, PollID: c.PollID, Fingerprint: c.Fingerprint,
		CreatedAt: c.CreatedAt, CounterShards: c.CounterShards, IndexBuckets: c.IndexBuckets}
}

// pollIdempotencyFromMap reads a claim returned by an LWT or a serial read,
// by column name; a null column reads as its zero value.
func pollIdempotencyFromMap(m map[string]any) poll.CreateClaim {
	var c poll.CreateClaim
	c.PollID = mapID(m["poll_id"])
	c.Fingerprint, _ = m["fingerprint"].(string)
	c.CreatedAt, _ = m["created_at"].(time.Time)
	c.CreatedAt = c.CreatedAt.UTC()
	c.CounterShards, _ = m["counter_shards"].(int)
	c.IndexBuckets, _ = m["index_buckets"].(int)
	return c
}

// voteRow is a row of votes. Empty strings are written as nulls.
type voteRow struct {
	PollID         id.ID     `db:"poll_id"`
	VoterID        id.ID     `db:"voter_id"`
	OptionIDs      []id.ID   `db:"option_ids"`
	VoteID         id.ID     `db:"vote_id"`
	RequestID      id.ID     `db:"request_id"`
	IdempotencyKey *string   `db:"idempotency_key"`
	VotedAt        time.Time `db:"voted_at"`
	Anonymous      bool      `db:"anonymous"`
	IP             *string   `db:"ip"`
	UserAgent      *string   `db:"user_agent"`
	WriteID        id.ID     `db:"write_id"`
	Device         *string   `db:"device"`
	Flags          []string  `db:"flags"`
	// Scores are a score ballot's scores, in option_ids' order (020).
	Scores []int `db:"scores"`
	// Commitment is the ballot's receipt commitment, nil before 024.
	Commitment []byte `db:"commitment"`
	// WrittenAt is WRITETIME(vote_id) in microseconds, read by scans only.
	WrittenAt int64 `db:"written_at"`
	// Version, Revoked, ChangedAt and ChangeRequests are a changed
	// ballot's (026); null on a ballot as first cast.
	Version        *int                  `db:"version"`
	Revoked        *bool                 `db:"revoked"`
	ChangedAt      *time.Time            `db:"changed_at"`
	ChangeRequests map[gocql.UUID]string `db:"change_requests"`
}

// nonEmpty is a blob column's value, nil when it is null or empty (gocql
// reads a null blob as an empty slice in some paths and nil in others).
func nonEmpty(v any) []byte {
	b, _ := v.([]byte)
	if len(b) == 0 {
		return nil
	}
	return b
}

// nullable is s as a column that is null when s is empty.
func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// toVoteRow is the ballot as one insert attempt writes it.
func toVoteRow(b *vote.Ballot, writeID id.ID) voteRow {
	return voteRow{
		PollID: b.PollID, VoterID: b.VoterID, OptionIDs: b.OptionIDs, VoteID: b.VoteID, RequestID: b.RequestID,
		IdempotencyKey: nullable(b.IdempotencyKey), VotedAt: b.VotedAt, Anonymous: b.Anonymous,
		IP: nullable(b.IP), UserAgent: nullable(b.UserAgent), WriteID: writeID,
		Device: nullable(b.Device), Flags: b.Flags, Scores: b.Scores, Commitment: b.Commitment,
	}
}

// voteRowFromMap reads a row returned by an LWT or a serial read, by column
// name. The key columns are not in a serial read's map; the caller knows
// them.
func voteRowFromMap(pollID, voterID id.ID, m map[string]any) voteRow {
	r := voteRow{PollID: pollID, VoterID: voterID}
	r.OptionIDs = mapIDs(m["option_ids"])
	r.VoteID = mapID(m["vote_id"])
	r.RequestID = mapID(m["request_id"])
	r.VotedAt, _ = m["voted_at"].(time.Time)
	r.Anonymous, _ = m["anonymous"].(bool)
	r.WriteID = mapID(m["write_id"])
	key, _ := m["idempotency_key"].(string)
	ip, _ := m["ip"].(string)
	ua, _ := m["user_agent"].(string)
	r.IdempotencyKey, r.IP, r.UserAgent = nullable(key), nullable(ip), nullable(ua)
	dev, _ := m["device"].(string)
	r.Device = nullable(dev)
	r.Flags, _ = m["flags"].([]string)
	r.Scores, _ = m["scores"].([]int)
	r.Commitment = nonEmpty(m["commitment"])
	if v, ok := m["version"].(int); ok && v > 0 {
		r.Version = &v
	}
	if v, ok := m["revoked"].(bool); ok && v {
		r.Revoked = &v
	}
	if v, ok := m["changed_at"].(time.Time); ok && !v.IsZero() {
		r.ChangedAt = &v
	}
	r.ChangeRequests, _ = m["change_requests"].(map[gocql.UUID]string)
	return r
}

// changeState copies the row's change columns into b.
func (r voteRow) changeState(b *vote.Ballot) {
	if r.Version != nil {
		b.Version = *r.Version
	}
	b.Revoked = r.Revoked != nil && *r.Revoked
	if r.ChangedAt != nil {
		b.ChangedAt = *r.ChangedAt
	}
	if len(r.ChangeRequests) > 0 {
		b.Changes = make(map[id.ID]vote.ChangeOutcome, len(r.ChangeRequests))
		for rid, text := range r.ChangeRequests {
			if o, ok := vote.ParseChangeOutcome(text); ok {
				b.Changes[id.ID(rid)] = o
			}
		}
	}
}

func (r voteRow) toBallot() *vote.Ballot {
	b := &vote.Ballot{
		PollID: r.PollID, VoterID: r.VoterID, OptionIDs: r.OptionIDs, VoteID: r.VoteID, RequestID: r.RequestID,
		IdempotencyKey: deref(r.IdempotencyKey), VotedAt: r.VotedAt, Anonymous: r.Anonymous,
		IP: deref(r.IP), UserAgent: deref(r.UserAgent), Device: deref(r.Device), Flags: r.Flags, Scores: r.Scores,
		Commitment: nonEmpty(r.Commitment),
	}
	r.changeState(b)
	return b
}

func (r voteRow) toScanRow() vote.Ballot {
	b := vote.Ballot{
		PollID: r.PollID, VoterID: r.VoterID, VoteID: r.VoteID, RequestID: r.RequestID, OptionIDs: r.OptionIDs,
		IdempotencyKey: deref(r.IdempotencyKey), VotedAt: r.VotedAt, Anonymous: r.Anonymous,
		IP: deref(r.IP), UserAgent: deref(r.UserAgent), Flags: r.Flags, Scores: r.Scores,
		Commitment: nonEmpty(r.Commitment),
		WrittenAt:  time.UnixMicro(r.WrittenAt).UTC(),
	}
	r.changeState(&b)
	return b
}

// voteIndexRow is a row of votes_by_poll. Options is the frozen list new
// rows carry; OptionIDs is the legacy list of rows written before it.
type voteIndexRow struct {
	PollID    id.ID     `db:"poll_id"`
	Bucket    int       `db:"bucket"`
	VoterID   id.ID     `db:"voter_id"`
	Options   []id.ID   `db:"options"`
	OptionIDs []id.ID   `db:"option_ids"`
	VoteID    id.ID     `db:"vote_id"`
	VotedAt   time.Time `db:"voted_at"`
	Flags     []string  `db:"flags"`
	Scores    []int     `db:"scores"`
	// Commitment is the ballot's receipt commitment, nil before 024.
	Commitment []byte `db:"commitment"`
	// Version and Revoked are what a changed ballot's entry counted (026).
	Version *int  `db:"version"`
	Revoked *bool `db:"revoked"`
	// TS is the write timestamp of an entry of a ballot as first cast:
	// its accept time, so a late rewrite of it (a retried follow-up)
	// never overwrites a change's entry, written later (settle).
	TS int64 `db:"ts"`
}

// voteIndexColumns are the columns every index row is written with: never
// the legacy option_ids, which a same-timestamp rewrite would append to;
// flags, scores and commitment only when the ballot has them (see
// optionalColumns).
var voteIndexColumns = []string{"poll_id", "bucket", "voter_id", "options", "vote_id", "voted_at"}

func toVoteIndexRow(pollID id.ID, bucket int, voterID id.ID, e vote.IndexEntry) voteIndexRow {
	return voteIndexRow{PollID: pollID, Bucket: bucket, VoterID: voterID, Options: e.Options, VoteID: e.VoteID,
		VotedAt: e.VotedAt, Flags: e.Flags, Scores: e.Scores, Commitment: e.Commitment, TS: indexTS(e.VotedAt)}
}

// ballotIndexRow is the index row of a ballot.
func ballotIndexRow(pollID id.ID, bucket int, b *vote.Ballot) voteIndexRow {
	return voteIndexRow{PollID: pollID, Bucket: bucket, VoterID: b.VoterID, Options: b.OptionIDs, VoteID: b.VoteID,
		VotedAt: b.VotedAt, Flags: b.Flags, Scores: b.Scores, Commitment: b.Commitment, TS: indexTS(b.VotedAt)}
}

// choices is the row's options, falling back to the legacy list.
func (r voteIndexRow) choices() []id.ID {
	if r.Options == nil {
		return r.OptionIDs
	}
	return r.Options
}

func (r voteIndexRow) toIndexEntry() vote.IndexEntry {
	e := vote.IndexEntry{VoteID: r.VoteID, Options: r.choices(), VotedAt: r.VotedAt, Flags: r.Flags, Scores: r.Scores,
		Commitment: nonEmpty(r.Commitment), Revoked: r.revoked()}
	if r.Version != nil {
		e.Version = *r.Version
	}
	return e
}

// indexTS is the write timestamp of a first-cast ballot's index entry.
func indexTS(votedAt time.Time) int64 {
	if votedAt.IsZero() {
		return time.Now().UnixMicro()
	}
	return votedAt.UnixMicro()
}

// revoked reports an entry of a revoked ballot, which counts nothing.
func (r voteIndexRow) revoked() bool { return r.Revoked != nil && *r.Revoked }

// voteCountRow is a row of vote_counts: one counter shard of one option, or
// of the ballots under tally.BallotKey.
type voteCountRow struct {
	PollID   id.ID `db:"poll_id"`
	Shard    int   `db:"shard"`
	OptionID id.ID `db:"option_id"`
	Votes    int64 `db:"votes"`
}

// addTo adds the shard's count to c.
func (r voteCountRow) addTo(c *tally.Counts) {
	if r.OptionID == tally.BallotKey {
		c.Ballots += r.Votes
	} else {
		c.Options[r.OptionID] += r.Votes
	}
}

// finalTallyRow is a row of final_tallies: the static ballots and as_of,
// and one option's count (null on the static-only row).
type finalTallyRow struct {
	PollID   id.ID     `db:"poll_id"`
	OptionID *id.ID    `db:"option_id"`
	Votes    *int64    `db:"votes"`
	Ballots  int64     `db:"ballots"`
	AsOf     time.Time `db:"as_of"`
	// AuditSeq and AuditHash anchor the poll's audit chain (null when the
	// chain was empty at the freeze, or the tally predates 022).
	AuditSeq  *int64 `db:"audit_seq"`
	AuditHash []byte `db:"audit_hash"`
	// Drift is the drift history frozen with the tally, as JSON (023).
	Drift *string `db:"drift"`
	// The signed ledger head frozen with the tally (025); null on tallies
	// frozen before it.
	LedgerRoot        []byte  `db:"ledger_root"`
	LedgerSize        *int64  `db:"ledger_size"`
	LedgerKID         *string `db:"ledger_kid"`
	LedgerSig         []byte  `db:"ledger_sig"`
	LedgerUncommitted *int64  `db:"ledger_uncommitted"`
}

// addTo folds the row into f.
func (r finalTallyRow) addTo(f *tally.Frozen) {
	f.Counts.Ballots, f.AsOf = r.Ballots, r.AsOf
	if r.AuditSeq != nil && *r.AuditSeq > 0 {
		f.Audit = &audit.Head{Seq: *r.AuditSeq, Hash: r.AuditHash}
	}
	if r.Drift != nil && f.Drift == nil {
		var h tally.DriftHistory
		if json.Unmarshal([]byte(*r.Drift), &h) == nil {
			f.Drift = &h
		}
	}
	if len(r.LedgerRoot) == 32 && r.LedgerSize != nil && f.Ledger == nil {
		h := &tally.LedgerHead{Size: uint64(*r.LedgerSize), Sig: r.LedgerSig}
		copy(h.Root[:], r.LedgerRoot)
		if r.LedgerKID != nil {
			h.KeyID = *r.LedgerKID
		}
		if r.LedgerUncommitted != nil {
			h.Uncommitted = *r.LedgerUncommitted
		}
		f.Ledger = h
	}
	if r.OptionID != nil && r.Votes != nil {
		f.Counts.Options[*r.OptionID] = *r.Votes
	}
}

// voteRequestFailureRow is a row of vote_request_failures.
type voteRequestFailureRow struct {
	PollID    id.ID     `db:"poll_id"`
	VoterID   id.ID     `db:"voter_id"`
	RequestID id.ID     `db:"request_id"`
	ErrorCode string    `db:"error_code"`
	Message   string    `db:"message"`
	FailedAt  time.Time `db:"failed_at"`
}

// auditRow is a row of audit_log; detail is the event's JSON.
type auditRow struct {
	PollID  id.ID      `db:"poll_id"`
	At      gocql.UUID `db:"at"` // timeuuid
	Event   string     `db:"event"`
	ActorID id.ID      `db:"actor_id"`
	Detail  string     `db:"detail"`
}

// toEvent decodes the entry; a detail that is not a JSON object is dropped.
func (r auditRow) toEvent() audit.Event {
	e := audit.Event{PollID: r.PollID, At: r.At.Time().UTC(), Kind: r.Event, ActorID: r.ActorID}
	_ = json.Unmarshal([]byte(r.Detail), &e.Detail)
	return e
}

// inviteRow is a row of poll_invites: a keyed hash of one invite code.
type inviteRow struct {
	PollID    id.ID     `db:"poll_id"`
	CodeHash  []byte    `db:"code_hash"`
	CreatedAt time.Time `db:"created_at"`
}

// mapID reads a uuid or timeuuid value of a map scan (a CAS answer's
// current row), the zero ID when absent.
//
// A map scan holds a uuid as gocql.UUID: compare ids through mapID, never
// as interface values (an id.ID is never == a gocql.UUID, which made every
// settled unknown outcome look like another write: a sync vote whose
// connection closed mid-insert was stored but never counted).
func mapID(v any) id.ID {
	u, _ := v.(gocql.UUID)
	return id.ID(u)
}

// mapIDs reads a list<uuid> value of a map scan.
func mapIDs(v any) []id.ID {
	us, _ := v.([]gocql.UUID)
	if us == nil {
		return nil
	}
	out := make([]id.ID, len(us))
	for i, u := range us {
		out[i] = id.ID(u)
	}
	return out
}

// nilIfEmpty is a list column's value: nil for an empty list, which gocql
// writes as a null, as an absent list reads.
func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}
