package redisx

import "github.com/tally-vote/tally/pkg/id"

// Every Redis key Tally uses is named here. Redis holds only accelerators
// and coordination with a TTL; losing all of it loses no vote.

// VoterFlag is voted:{poll}:{voter}: the fast duplicate check. Its value is
// the request that holds it, prefixed with its state (FlagPending,
// FlagQueued).
func VoterFlag(pollID, voterID id.ID) string {
	return "voted:" + pollID.String() + ":" + voterID.String()
}

// The voter flag's states, prefixed to the request id it holds: pending
// while the ballot is being produced (a crash there must not lock the voter
// out, so it expires quickly and does not make other requests fail fast),
// queued once Kafka acknowledged it (or it was recorded directly).
const (
	FlagPending = "p:"
	FlagQueued  = "q:"
)

// AcceptedRequest is req:{poll}:{voter}:{request}: the request was accepted
// (for request status and retries after the poll closed). A request
// answered with an error whose ballot may still land keeps it as "?"
// (admission.Flags.Forget): not accepted, but an attempt was admitted.
func AcceptedRequest(pollID, voterID, requestID id.ID) string {
	return "req:" + pollID.String() + ":" + voterID.String() + ":" + requestID.String()
}

// Results is tally:{mode}:{poll}: cached results.
func Results(mode string, pollID id.ID) string {
	return "tally:" + mode + ":" + pollID.String()
}

// EventsResults is events:results:{poll}: held for one window after a
// process emitted the poll's results.changed, so all processes together
// emit at most one per window.
func EventsResults(pollID id.ID) string {
	return "events:results:" + pollID.String()
}

// ReconcileFence is recon:fence:{poll}: held by the reconciliation that is
// measuring the poll; follow-up writes wait while it exists.
func ReconcileFence(pollID id.ID) string {
	return "recon:fence:" + pollID.String()
}

// FollowUpsBusy is recon:busy:{poll}: how many follow-up writers are
// writing the poll's counters and index rows right now.
func FollowUpsBusy(pollID id.ID) string {
	return "recon:busy:" + pollID.String()
}

// RateLimit is rl:{rule}:{subject}: one GCRA limit's state (its
// theoretical arrival time). redis_rate, and the vote path's script that
// shares its state, store it under the "rate:" prefix: rate:rl:….
func RateLimit(rule, subject string) string {
	return "rl:" + rule + ":" + subject
}

// BotSignal is bot:{poll}:{rule}:{subject}: how many votes on the poll one
// subject (an IP, a device hash, a user agent hash) cast in the rule's
// current window (pkg/abuse).
func BotSignal(pollID id.ID, rule, subject string) string {
	return "bot:" + pollID.String() + ":" + rule + ":" + subject
}

// PollChanged is the pub/sub channel of poll change notices: the payload is
// the poll id (see PollChanges).
const PollChanged = "poll:changed"

// CountsChanged is the pub/sub channel of "a poll's counts changed"
// notices for the live hubs: the payload is "<poll id> <unix ms>" (see
// PollChanges.PublishCounted). It shares PollChanged's subscription.
const CountsChanged = "poll:counted"

// ActivePolls is polls:active: a sorted set of the polls that received a
// counted vote, scored by the last one's time (unix ms), shared by every
// process so tally_polls_active is a deployment-wide distinct count
// (pkg/observe). Trimmed to the window at each scrape, and expiring when
// nothing votes.
func ActivePolls() string { return "polls:active" }
