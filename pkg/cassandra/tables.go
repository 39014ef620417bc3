package cassandra

import "github.com/scylladb/gocqlx/v2/table"

// The tables of cql/, one place for their names, columns and keys. Columns
// added by a later migration (ALTER TABLE) are listed with the table they
// belong to, so a table's metadata is its current shape, not its first one.
// Statements are built from these with gocqlx's table and qb builders.

// usersTable holds accounts (001).
var usersTable = table.New(table.Metadata{
	Name:    "users",
	Columns: []string{"user_id", "email", "username", "password_hash", "created_at"},
	PartKey: []string{"user_id"},
})

// usersByEmailTable is the uniqueness guard of emails (001).
var usersByEmailTable = table.New(table.Metadata{
	Name:    "users_by_email",
	Columns: []string{"email", "user_id"},
	PartKey: []string{"email"},
})

// usersByUsernameTable is the uniqueness guard of usernames (001).
var usersByUsernameTable = table.New(table.Metadata{
	Name:    "users_by_username",
	Columns: []string{"username", "user_id"},
	PartKey: []string{"username"},
})

// pollsTable keeps a poll in one partition: statics for the poll, a
// clustering row per option (002; options_version and options_frozen 008;
// poll_version 012; results_visibility 014; embed_origins 015;
// min_votes_per_user, method 016; allow_vote_change, max_vote_changes 026).
var pollsTable = table.New(table.Metadata{
	Name: "polls",
	Columns: []string{
		"poll_id", "option_id",
		"creator_id", "title", "description", "start_time", "end_time", "closed_at", "created_at",
		"updated_at", "show_results_during_voting", "allow_anonymous", "allow_multiple_options",
		"max_votes_per_user", "counter_shards", "index_buckets", "options_version", "options_frozen",
		"bot_policy", "anonymous_access", "poll_version", "results_visibility", "embed_origins",
		"min_votes_per_user", "method", "option_text", "display_order", "allow_vote_change", "max_vote_changes",
	},
	PartKey: []string{"poll_id"},
	SortKey: []string{"option_id"},
})

// pollsByCreatorTable lists a creator's polls, newest first (002).
var pollsByCreatorTable = table.New(table.Metadata{
	Name:    "polls_by_creator",
	Columns: []string{"creator_id", "created_at", "poll_id"},
	PartKey: []string{"creator_id"},
	SortKey: []string{"created_at", "poll_id"},
})

// pollIdempotencyTable binds a create request's Idempotency-Key to its poll
// and what rebuilds it (002; fingerprint 007; counter_shards, index_buckets
// 009). Rows expire after a day (table default TTL).
var pollIdempotencyTable = table.New(table.Metadata{
	Name: "poll_idempotency",
	Columns: []string{"creator_id", "idempotency_key", "poll_id", "fingerprint", "created_at", "counter_shards",
		"index_buckets"},
	PartKey: []string{"creator_id", "idempotency_key"},
})

// votesTable is the truth: one partition per (poll, voter) (003; write_id
// 008; device and flags 010; scores 020; commitment 024; version, revoked,
// changed_at, change_requests 026).
var votesTable = table.New(table.Metadata{
	Name: "votes",
	Columns: []string{
		"poll_id", "voter_id", "option_ids", "vote_id", "request_id", "idempotency_key",
		"voted_at", "anonymous", "ip", "user_agent", "write_id", "device", "flags", "scores",
		"commitment", "version", "revoked", "changed_at", "change_requests",
	},
	PartKey: []string{"poll_id", "voter_id"},
})

// votesByPollTable is the per-poll index of ballots (003; options 005, which
// new rows write instead of the legacy option_ids list; flags 010; scores
// 020; commitment 024; version, revoked 026).
var votesByPollTable = table.New(table.Metadata{
	Name:    "votes_by_poll",
	Columns: []string{"poll_id", "bucket", "voter_id", "option_ids", "options", "vote_id", "voted_at", "flags", "scores", "commitment", "version", "revoked"},
	PartKey: []string{"poll_id", "bucket"},
	SortKey: []string{"voter_id"},
})

// voteCountsTable holds the live tally in counter shards (003).
var voteCountsTable = table.New(table.Metadata{
	Name:    "vote_counts",
	Columns: []string{"poll_id", "shard", "option_id", "votes"},
	PartKey: []string{"poll_id", "shard"},
	SortKey: []string{"option_id"},
})

// talliesTable is no longer written or read; it keeps old reconciled counts
// (003) and is described here so every table of cql/ has its metadata.
var talliesTable = table.New(table.Metadata{
	Name:    "tallies",
	Columns: []string{"poll_id", "option_id", "votes", "ballots", "as_of", "final"},
	PartKey: []string{"poll_id"},
	SortKey: []string{"option_id"},
})

// finalTalliesTable holds the frozen final tally of a closed poll (008),
// with the audit chain's head when it was frozen (022), its drift history
// (023) and its signed ledger head (025).
var finalTalliesTable = table.New(table.Metadata{
	Name: "final_tallies",
	Columns: []string{"poll_id", "option_id", "votes", "ballots", "as_of", "audit_seq", "audit_hash", "drift",
		"ledger_root", "ledger_size", "ledger_kid", "ledger_sig", "ledger_uncommitted"},
	PartKey: []string{"poll_id"},
	SortKey: []string{"option_id"},
})

// voteRequestFailuresTable records why an async request produced no ballot
// (004). Rows expire after seven days (table default TTL).
var voteRequestFailuresTable = table.New(table.Metadata{
	Name:    "vote_request_failures",
	Columns: []string{"poll_id", "voter_id", "request_id", "error_code", "message", "failed_at"},
	PartKey: []string{"poll_id", "voter_id"},
	SortKey: []string{"request_id"},
})

// auditLogTable is the append-only per-poll audit log, newest first (006).
var auditLogTable = table.New(table.Metadata{
	Name:    "audit_log",
	Columns: []string{"poll_id", "at", "event", "actor_id", "detail"},
	PartKey: []string{"poll_id"},
	SortKey: []string{"at"},
})

// pollInvitesTable holds keyed hashes of a poll's invite codes (011).
var pollInvitesTable = table.New(table.Metadata{
	Name:    "poll_invites",
	Columns: []string{"poll_id", "code_hash", "created_at"},
	PartKey: []string{"poll_id"},
	SortKey: []string{"code_hash"},
})

// pendingFinalsTable holds the polls whose final tally is still to be
// frozen, by when it is due (013).
var pendingFinalsTable = table.New(table.Metadata{
	Name:    "pending_finals",
	Columns: []string{"bucket", "due_at", "poll_id"},
	PartKey: []string{"bucket"},
	SortKey: []string{"due_at", "poll_id"},
})

// regionDrainsTable holds each region's drain point (017).
var regionDrainsTable = table.New(table.Metadata{
	Name:    "region_drains",
	Columns: []string{"region", "drained_through", "recorded_at"},
	PartKey: []string{"region"},
})

// unfinishedBallotsTable holds the voters whose direct write may lack its
// index row (018).
var unfinishedBallotsTable = table.New(table.Metadata{
	Name:    "unfinished_ballots",
	Columns: []string{"poll_id", "bucket", "voter_id", "since"},
	PartKey: []string{"poll_id", "bucket"},
	SortKey: []string{"voter_id"},
})

// auditChainTable holds each poll's owner actions as a hash chain, in seq
// order (019).
var auditChainTable = table.New(table.Metadata{
	Name:    "audit_chain",
	Columns: []string{"poll_id", "seq", "at", "event", "actor_id", "detail", "prev_hash", "hash"},
	PartKey: []string{"poll_id"},
	SortKey: []string{"seq"},
})

// webhooksTable holds a poll's webhook targets and secrets (021).
var webhooksTable = table.New(table.Metadata{
	Name:    "webhooks",
	Columns: []string{"poll_id", "webhook_id", "url", "secret", "created_at"},
	PartKey: []string{"poll_id"},
	SortKey: []string{"webhook_id"},
})

// webhookDeliveriesTable is the delivery log, one row per webhook and
// event (021).
var webhookDeliveriesTable = table.New(table.Metadata{
	Name: "webhook_deliveries",
	Columns: []string{"webhook_id", "event_id", "event_type", "status", "attempts", "status_code", "last_error",
		"updated_at"},
	PartKey: []string{"webhook_id"},
	SortKey: []string{"event_id"},
})

// pollDriftTable records the counter drift each reconciliation measured on
// a poll (023).
var pollDriftTable = table.New(table.Metadata{
	Name:    "poll_drift",
	Columns: []string{"poll_id", "at", "ballots", "max_option", "repaired"},
	PartKey: []string{"poll_id"},
	SortKey: []string{"at"},
})

// pollLiveLagTable holds each worker process's live-lag histogram of a
// poll (023).
var pollLiveLagTable = table.New(table.Metadata{
	Name:    "poll_live_lag",
	Columns: []string{"poll_id", "source", "counts", "max_ms", "updated_at"},
	PartKey: []string{"poll_id"},
	SortKey: []string{"source"},
})

// allTables lists the metadata above; a test checks each against the
// migrated schema, so a migration that changes a table fails until its
// metadata here follows.
var allTables = []*table.Table{
	usersTable, usersByEmailTable, usersByUsernameTable,
	pollsTable, pollsByCreatorTable, pollIdempotencyTable,
	votesTable, votesByPollTable, voteCountsTable, talliesTable, finalTalliesTable,
	voteRequestFailuresTable, auditLogTable, pollInvitesTable, pendingFinalsTable, regionDrainsTable,
	unfinishedBallotsTable, auditChainTable, pollDriftTable, pollLiveLagTable, webhooksTable, webhookDeliveriesTable,
}
