// Package tally counts votes: the sharded live counters, the exact count
// from ballot rows, the results document, and reconciliation between them.
package tally

import (
	"crypto/sha1"
	"encoding/hex"
	"math"
	"time"

	"github.com/tally-vote/tally/pkg/apperr"
	"github.com/tally-vote/tally/pkg/count"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
)

// ErrResultsHidden: the poll's results_visibility hides its results from
// the caller. Visible answers one of the errors below, which are it with a
// message for the mode.
var ErrResultsHidden = apperr.New(apperr.CodeResultsHidden, "this poll's results are hidden from the caller")

var (
	errHiddenUntilVoted = hiddenError("this poll shows its results to its owner and to those who voted until it closes")
	errHiddenUntilClose = hiddenError("this poll shows its results to its owner alone until it closes")
	errHiddenOwnerOnly  = hiddenError("this poll shows its results to its owner alone")
)

// hidden is ErrResultsHidden with its own message: errors.Is matches
// ErrResultsHidden, and errors.As finds the coded error with the message.
type hidden struct{ e *apperr.Error }

func hiddenError(message string) error {
	return &hidden{apperr.New(apperr.CodeResultsHidden, message)}
}

func (h *hidden) Error() string        { return h.e.Message }
func (h *hidden) Unwrap() error        { return h.e }
func (h *hidden) Is(target error) bool { return target == ErrResultsHidden }

// BallotKey is the option id under which counter shards and tallies keep the
// ballot (voter) count, beside the per-option selection counts.
var BallotKey = id.ID{}

// Counts is a tally: ballots cast and selections per option.
type Counts struct {
	Ballots int64           `json:"ballots"`
	Options map[id.ID]int64 `json:"options"`
}

// NewCounts returns empty counts.
func NewCounts() Counts { return Counts{Options: map[id.ID]int64{}} }

// Add counts one ballot for the given options.
func (c *Counts) Add(options []id.ID) {
	c.Ballots++
	for _, o := range options {
		c.Options[o]++
	}
}

// Tallied is what a ballot adds to the per-option counts (the live
// counters, the rows' count, the frozen totals) under method m: on ranked
// and Schulze polls only its first preference, so options[].votes shows
// first preferences, the count instant-runoff's first round starts from;
// under the other methods every option it lists. The method's exact
// result (rounds, pairwise matrices) is counted from the rows instead.
func Tallied(m count.Method, options []id.ID) []id.ID {
	if m.Ordered() && len(options) > 1 {
		return options[:1]
	}
	return options
}

// AddBallot counts one ballot under method m: what Tallied says for most
// methods; on a score poll (scores[i] for options[i]) each scored option's
// count of ballots under its id and its score under ScoreSumKey, so the
// counters carry running means.
func (c *Counts) AddBallot(m count.Method, options []id.ID, scores []int) {
	if m != count.Score || len(scores) != len(options) {
		c.Add(Tallied(m, options))
		return
	}
	c.Ballots++
	for i, o := range options {
		c.Options[o]++
		c.Options[ScoreSumKey(o)] += int64(scores[i])
	}
}

// scoreSumNamespace seeds ScoreSumKey.
var scoreSumNamespace = [16]byte{0x3a, 0x8c, 0x51, 0x0e, 0x97, 0x22, 0x4f, 0x6d, 0xb1, 0x05, 0xc4, 0x7e, 0x19, 0xd8, 0x63, 0x20}

// ScoreSumKey is the key under which a score poll's counts (counter shards,
// row counts, frozen totals) keep the sum of option o's scores, beside o's
// own key, which counts the ballots that scored it: a name-based UUID
// (SHA-1 of a fixed namespace and o), so it is the same everywhere and no
// option id.
func ScoreSumKey(o id.ID) id.ID {
	h := sha1.New()
	h.Write(scoreSumNamespace[:])
	h.Write(o[:])
	var k id.ID
	copy(k[:], h.Sum(nil))
	k[6] = (k[6] & 0x0f) | 0x50
	k[8] = (k[8] & 0x3f) | 0x80
	return k
}

// Diff returns want minus c, per key; a zero result means they agree.
func (c Counts) Diff(want Counts) Counts {
	d := NewCounts()
	d.Ballots = want.Ballots - c.Ballots
	for k, v := range want.Options {
		if v-c.Options[k] != 0 {
			d.Options[k] = v - c.Options[k]
		}
	}
	for k, v := range c.Options {
		if _, ok := want.Options[k]; !ok && v != 0 {
			d.Options[k] = -v
		}
	}
	return d
}

// IsZero reports whether every count is zero.
func (c Counts) IsZero() bool {
	if c.Ballots != 0 {
		return false
	}
	for _, v := range c.Options {
		if v != 0 {
			return false
		}
	}
	return true
}

// Mode selects the source of a results document.
type Mode string

// Modes.
const (
	Live  Mode = "live"
	Final Mode = "final"
)

// State is where a poll's tally stands, in one vocabulary for REST results
// and the live stream's frames (the final frame included).
type State string

// States.
const (
	// StateLive: the poll is open; the counts are the live counters.
	StateLive State = "live"
	// StateReconciling: the poll is closed and its exact count from the
	// rows is not frozen yet (votes accepted before the close may still be
	// draining); tally=final counts the rows as they stand.
	StateReconciling State = "reconciling"
	// StateCertified: the final tally is frozen and carries its
	// Certificate. It never changes again.
	StateCertified State = "certified"
)

// Certificate is what a certified tally carries: how many ballot rows it
// counted, when it was frozen, and the head of the poll's owner-action
// audit chain at that moment (the anchor against which an edited or
// deleted entry, the last one included, is detected).
type Certificate struct {
	Ballots   int64      `json:"ballots"`
	FrozenAt  time.Time  `json:"frozen_at"`
	AuditHead *AuditHead `json:"audit_head,omitempty"`
	// DriftHistory is how far the live figures were from the truth
	// before the freeze.
	DriftHistory *DriftHistory `json:"drift_history,omitempty"`
	// Ledger is the signed root over the poll's ballots' commitments.
	Ledger *CertLedger `json:"ledger,omitempty"`
}

// AuditHead is an anchored audit chain head: the last entry's seq and
// hash (hex).
type AuditHead struct {
	Seq  int64  `json:"seq"`
	Hash string `json:"hash"`
}

// CertificateOf is the certificate of a frozen tally.
func CertificateOf(f Frozen) *Certificate {
	c := &Certificate{Ballots: f.Counts.Ballots, FrozenAt: f.AsOf.UTC(), DriftHistory: f.Drift, Ledger: certLedgerOf(f.Ledger)}
	if f.Audit != nil {
		c.AuditHead = &AuditHead{Seq: f.Audit.Seq, Hash: hex.EncodeToString(f.Audit.Hash)}
	}
	return c
}

// OptionResult is one option's line in the results.
type OptionResult struct {
	OptionID   id.ID   `json:"option_id"`
	Label      string  `json:"label"`
	Votes      int64   `json:"votes"`
	Percentage float64 `json:"percentage"`
	// Mean is, on score polls, the mean score of the ballots that scored
	// the option (Votes counts them), to two decimals; absent when none
	// did and on every other method.
	Mean *float64 `json:"mean,omitempty"`
}

// Results is the document GET .../results and the live socket serve.
type Results struct {
	PollID     id.ID          `json:"poll_id"`
	Status     poll.Status    `json:"status"`
	Tally      Mode           `json:"tally"`
	TotalVotes int64          `json:"total_votes"`
	AsOf       time.Time      `json:"as_of"`
	Options    []OptionResult `json:"options"`
	// Method is the poll's counting method. On ranked and Schulze polls
	// options[].votes counts first preferences (Tallied), on score polls
	// the ballots that scored each option (with Mean), and tally=final
	// adds Count, the method's exact count from the rows.
	Method count.Method  `json:"method,omitempty"`
	Count  *count.Result `json:"count,omitempty"`
	// TallyState is live, reconciling or certified; Certificate is set
	// when certified.
	TallyState  State        `json:"tally_state"`
	Certificate *Certificate `json:"certificate,omitempty"`
}

// Certify marks r as the certified tally c.
func (r *Results) Certify(c *Certificate) {
	if c == nil {
		return
	}
	r.TallyState, r.Certificate = StateCertified, c
}

// BuildResults shapes counts into the SPEC's results document. Percentages
// are each option's share of ballots, rounded to two decimals, so on
// multi-option polls they may add up to more than 100.
func BuildResults(p *poll.Poll, c Counts, mode Mode, asOf, now time.Time) *Results {
	r := &Results{
		PollID:     p.ID,
		Status:     p.StatusAt(now),
		Tally:      mode,
		TallyState: StateLive,
		TotalVotes: c.Ballots,
		AsOf:       asOf.UTC(),
		Options:    make([]OptionResult, 0, len(p.Options)),
	}
	if r.Status == poll.Closed {
		r.TallyState = StateReconciling
	}
	for _, o := range p.Options {
		v := c.Options[o.ID]
		pct := 0.0
		if c.Ballots > 0 {
			pct = math.Round(float64(v)*10000/float64(c.Ballots)) / 100
		}
		or := OptionResult{OptionID: o.ID, Label: o.Text, Votes: v, Percentage: pct}
		if v > 0 && p.Settings.CountingMethod() == count.Score {
			mean := math.Round(float64(c.Options[ScoreSumKey(o.ID)])*100/float64(v)) / 100
			or.Mean = &mean
		}
		r.Options = append(r.Options, or)
	}
	return r
}

// Visible is the results-visibility rule, the one place that applies a
// poll's settings.results_visibility. REST results and the live socket (at
// the handshake and at each recheck) ask it, and so must anything else that
// shows results: nothing else decides. It answers nil when the caller may see the results at now, or an
// error that errors.Is ErrResultsHidden (with a message for the mode).
//
//   - always: everyone.
//   - after_vote: the owner, and signed-in callers who voted, until the
//     poll closes; everyone after.
//   - after_close: the owner alone until the poll closes; everyone after.
//   - owner_only: the owner alone, also after close.
//
// The owner is the poll's creator, signed in. A draft poll is not closed.
// voted is asked only when the answer depends on it (after_vote, a
// signed-in caller other than the owner, before close), so the other modes
// cost no lookup; its error is returned as it is.
func Visible(p *poll.Poll, caller id.ID, signedIn bool, now time.Time, voted func() (bool, error)) error {
	mode := p.Settings.Visibility()
	if mode == poll.ResultsAlways || (signedIn && caller == p.CreatorID) {
		return nil
	}
	closed := p.StatusAt(now) == poll.Closed
	switch mode {
	case poll.ResultsAfterClose:
		if closed {
			return nil
		}
		return errHiddenUntilClose
	case poll.ResultsAfterVote:
		if closed {
			return nil
		}
		if !signedIn {
			return errHiddenUntilVoted
		}
		ok, err := voted()
		if err != nil {
			return err
		}
		if !ok {
			return errHiddenUntilVoted
		}
		return nil
	}
	return errHiddenOwnerOnly
}
