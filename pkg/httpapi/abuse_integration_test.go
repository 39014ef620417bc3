//go:build integration

package httpapi_test

import (
	"maps"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tally-vote/tally/pkg/abuse"
	"github.com/tally-vote/tally/pkg/app"
	"github.com/tally-vote/tally/pkg/config"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/ratelimit"
	"github.com/tally-vote/tally/pkg/testenv"
)

// botRig is a server with the bot rules on, trusting 127.0.0.1 as a proxy
// so every voter speaks from an address of its own (X-Forwarded-For), and
// with its worker draining the votes topic in-process.
type botRig struct {
	t *testing.T
	a *app.App
	c *testenv.Client
}

// botConfig: low thresholds, every rate limit off, accounts never "new"
// unless a test says so.
func botConfig(t *testing.T, mode string) config.Config {
	cfg := testenv.Config(t)
	cfg.Vote.Mode = mode
	cfg.TrustedProxies = []string{"127.0.0.1"}
	cfg.RateLimit = ratelimit.Config{}
	cfg.Bots = abuse.Config{
		IPBurst: 5, IPBurstWindow: time.Minute,
		DeviceReuse: 1, DeviceWindow: time.Hour,
		UserAgentBurst: 10, UserAgentWindow: time.Minute,
		NewAccountBurst: 5, NewAccountWindow: time.Minute, NewAccountAge: time.Nanosecond,
		AnonymousPerIP: 2, AnonymousWindow: time.Hour,
	}
	return cfg
}

func newBotRig(t *testing.T, cfg config.Config) *botRig {
	e := newWorkerEnv(t, cfg)
	return &botRig{t: t, a: e.app, c: e.c}
}

// voter is one voting identity and where it speaks from.
type voter struct {
	token, ip, device, ua string
}

// honestCrowd is n signed-in voters, each with an address, device and
// browser of its own.
func (r *botRig) honestCrowd(n int) []voter {
	out := make([]voter, n)
	for i := range out {
		tok, _ := r.c.Account()
		out[i] = voter{token: tok, ip: randomIP(), device: "honest-" + randomIP(), ua: "Browser/" + randomIP()}
	}
	return out
}

// vote casts v's vote for option and returns the status and error code.
func (r *botRig) vote(pollID, option string, v voter) (int, string) {
	h := []string{"X-Forwarded-For", v.ip}
	if v.device != "" {
		h = append(h, "X-Device-Fingerprint", v.device)
	}
	if v.ua != "" {
		h = append(h, "User-Agent", v.ua)
	}
	resp := r.c.Do("POST", "/v1/polls/"+pollID+"/votes", v.token, map[string]any{"option_id": option}, h...)
	return resp.Status, resp.Code()
}

// castAll sends the attack one vote at a time (so the order in which the
// thresholds are crossed is known) while the honest crowd votes
// concurrently, and returns the attack's statuses in order.
func (r *botRig) castAll(pollID, option string, attack, honest []voter) (attackStatus []int) {
	var wg sync.WaitGroup
	honestStatus := make([]int, len(honest))
	for i, v := range honest {
		wg.Add(1)
		go func() {
			defer wg.Done()
			honestStatus[i], _ = r.vote(pollID, option, v)
		}()
	}
	for _, v := range attack {
		st, code := r.vote(pollID, option, v)
		if st == http.StatusForbidden && code != "SUSPICIOUS_ACTIVITY" {
			r.t.Errorf("refused with %d %s, want SUSPICIOUS_ACTIVITY", st, code)
		}
		attackStatus = append(attackStatus, st)
	}
	wg.Wait()
	for i, st := range honestStatus {
		if st != http.StatusAccepted && st != http.StatusOK {
			r.t.Errorf("honest voter %d: status %d", i, st)
		}
	}
	return attackStatus
}

// ballots waits until the poll has want ballot rows and returns each
// voter's stored flags.
func (r *botRig) ballots(pollID string, want int) map[id.ID][]string {
	r.t.Helper()
	pid, _ := id.Parse(pollID)
	deadline := time.Now().Add(30 * time.Second)
	for {
		out := map[id.ID][]string{}
		iter := r.a.CQL.Session.Query(`SELECT poll_id, voter_id, flags FROM votes`).Iter()
		var (
			p, v  id.ID
			flags []string
		)
		for iter.Scan(&p, &v, &flags) {
			if p == pid {
				out[v] = flags
			}
			flags = nil
		}
		if err := iter.Close(); err != nil {
			r.t.Fatalf("scan votes: %v", err)
		}
		if len(out) >= want || time.Now().After(deadline) {
			if len(out) != want {
				r.t.Fatalf("poll has %d ballots, want %d", len(out), want)
			}
			return out
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// flagged counts ballots by their flags (joined with "+"; "" unflagged).
func flagged(rows map[id.ID][]string) map[string]int {
	out := map[string]int{}
	for _, f := range rows {
		sort.Strings(f)
		out[strings.Join(f, "+")]++
	}
	return out
}

func count(statuses []int, want int) int {
	n := 0
	for _, s := range statuses {
		if s == want {
			n++
		}
	}
	return n
}

// liveTotal waits for the live tally to reach want.
func (r *botRig) liveTotal(owner, pollID string, want int64) {
	r.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		total, _ := r.c.Results(owner, pollID, "live")
		if total == want {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("live total %d, want %d", total, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestBotSignals drives each rule with a scripted attack on a poll that
// flags and on one that rejects, beside an honest crowd voting at the same
// time: flagged votes are recorded and counted with their reasons,
// rejected ones get 403 SUSPICIOUS_ACTIVITY and leave no row, and every
// honest vote is counted unflagged.
func TestBotSignals(t *testing.T) {
	r := newBotRig(t, botConfig(t, "async"))
	owner, _ := r.c.Account()

	type attack struct {
		name     string
		settings map[string]any
		voters   func() []voter
		// pass is how many attack votes stay under the thresholds; the
		// others trip flags (sorted, joined with "+") in these numbers.
		pass  int
		flags map[string]int
	}
	sameIP := randomIP()
	anonIP := randomIP()
	attacks := []attack{
		{name: "one IP, many accounts", voters: func() []voter {
			v := make([]voter, 12)
			for i := range v {
				tok, _ := r.c.Account()
				v[i] = voter{token: tok, ip: sameIP, ua: "Browser/" + randomIP()}
			}
			return v
		}, pass: 5, flags: map[string]int{abuse.RuleIPBurst: 7}},
		{name: "a device fingerprint reused", voters: func() []voter {
			v := make([]voter, 6)
			for i := range v {
				tok, _ := r.c.Account()
				v[i] = voter{token: tok, ip: randomIP(), device: "farm-phone-1", ua: "Browser/" + randomIP()}
			}
			return v
		}, pass: 1, flags: map[string]int{abuse.RuleDeviceReuse: 5}},
		{name: "one user agent in a burst", voters: func() []voter {
			v := make([]voter, 14)
			for i := range v {
				tok, _ := r.c.Account()
				v[i] = voter{token: tok, ip: randomIP(), ua: "votebot/0.1"}
			}
			return v
		}, pass: 10, flags: map[string]int{abuse.RuleUserAgentBurst: 4}},
		{name: "anonymous token farming", settings: map[string]any{"allow_anonymous": true}, voters: func() []voter {
			v := make([]voter, 7)
			for i := range v {
				tok := r.c.Do("POST", "/v1/auth/anonymous", "", nil, "X-Forwarded-For", anonIP).Must(t, http.StatusOK).
					Str("access_token")
				v[i] = voter{token: tok, ip: anonIP, ua: "Browser/" + randomIP()}
			}
			return v
		}, pass: 2, flags: map[string]int{abuse.RuleAnonymousIP: 3, abuse.RuleAnonymousIP + "+" + abuse.RuleIPBurst: 2}},
	}
	for _, at := range attacks {
		for _, policy := range []string{"flag", "reject"} {
			t.Run(at.name+"/"+policy, func(t *testing.T) {
				r.t = t
				settings := map[string]any{"bot_policy": policy}
				for k, v := range at.settings {
					settings[k] = v
				}
				pollID, opts := r.c.Poll(owner, settings)
				attackers, honest := at.voters(), r.honestCrowd(10)
				if at.name == "anonymous token farming" {
					// The crowd votes anonymously too, each from its own
					// address.
					for i := range honest {
						honest[i].token = r.c.Do("POST", "/v1/auth/anonymous", "", nil, "X-Forwarded-For", honest[i].ip).
							Must(t, http.StatusOK).Str("access_token")
					}
				}
				statuses := r.castAll(pollID, opts[0], attackers, honest)
				tripped := 0
				for _, n := range at.flags {
					tripped += n
				}
				if len(attackers) != at.pass+tripped {
					t.Fatalf("scenario arithmetic: %d attackers, %d pass, %d tripped", len(attackers), at.pass, tripped)
				}
				want := map[string]int{"": len(honest)}
				switch policy {
				case "flag":
					if n := count(statuses, http.StatusAccepted); n != len(attackers) {
						t.Fatalf("flag policy: %d of %d attack votes accepted: %v", n, len(attackers), statuses)
					}
					want[""] += at.pass
					for k, n := range at.flags {
						want[k] += n
					}
				case "reject":
					if !slices.Equal(statuses[:at.pass], slices.Repeat([]int{http.StatusAccepted}, at.pass)) ||
						count(statuses, http.StatusForbidden) != tripped {
						t.Fatalf("reject policy: the first %d accepted, the other %d refused; got %v", at.pass, tripped, statuses)
					}
					want[""] += at.pass
				}
				total := 0
				for _, n := range want {
					total += n
				}
				rows := r.ballots(pollID, total)
				if got := flagged(rows); !maps.Equal(got, want) {
					t.Fatalf("ballots by flags %v, want %v", got, want)
				}
				// Flagged or not, every recorded ballot is counted.
				r.liveTotal(owner, pollID, int64(total))
				r.ownerSeesFlags(owner, pollID, int64(total), want)
			})
		}
	}
}

// A burst of brand-new accounts is flagged past its threshold, while
// accounts registered before the burst (older than NewAccountAge) vote
// unflagged beside it.
func TestBotSignalsNewAccountBurst(t *testing.T) {
	cfg := botConfig(t, "async")
	cfg.Bots.NewAccountAge = 4 * time.Second
	r := newBotRig(t, cfg)
	owner, _ := r.c.Account()
	honest := r.honestCrowd(8)
	time.Sleep(cfg.Bots.NewAccountAge) // the crowd's accounts are no longer new
	for _, policy := range []string{"flag", "reject"} {
		t.Run(policy, func(t *testing.T) {
			r.t = t
			pollID, opts := r.c.Poll(owner, map[string]any{"bot_policy": policy})
			bots := make([]voter, 9)
			for i := range bots {
				tok, _ := r.c.Account()
				bots[i] = voter{token: tok, ip: randomIP(), ua: "Browser/" + randomIP()}
			}
			statuses := r.castAll(pollID, opts[0], bots, honest)
			want := map[string]int{"": len(honest) + 5}
			if policy == "flag" {
				want[abuse.RuleNewAccountBurst] = 4
			} else if count(statuses, http.StatusForbidden) != 4 {
				t.Fatalf("statuses %v, want 4 refused", statuses)
			}
			total := 0
			for _, n := range want {
				total += n
			}
			if got := flagged(r.ballots(pollID, total)); !maps.Equal(got, want) {
				t.Fatalf("ballots by flags %v, want %v", got, want)
			}
		})
	}
}

// One account voting from many addresses at once is one ballot: the
// per-(poll, voter) conditional write, not a bot rule, decides it.
func TestOneAccountManyIPsCountsOnce(t *testing.T) {
	r := newBotRig(t, botConfig(t, "async"))
	owner, _ := r.c.Account()
	pollID, opts := r.c.Poll(owner, map[string]any{"bot_policy": "reject"})
	tok, _ := r.c.Account()
	var wg sync.WaitGroup
	statuses := make([]int, 20)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i], _ = r.vote(pollID, opts[i%len(opts)], voter{token: tok, ip: randomIP()})
		}()
	}
	wg.Wait()
	for _, st := range statuses {
		if st != http.StatusAccepted && st != http.StatusConflict {
			t.Fatalf("statuses %v", statuses)
		}
	}
	if got := flagged(r.ballots(pollID, 1)); !maps.Equal(got, map[string]int{"": 1}) {
		t.Fatalf("ballots %v", got)
	}
	r.liveTotal(owner, pollID, 1)
}

// In sync mode (and when the queue is down) the rules run in a round trip
// of their own before the write, with the same outcome.
func TestBotSignalsSyncMode(t *testing.T) {
	r := newBotRig(t, botConfig(t, "sync"))
	owner, _ := r.c.Account()
	for _, policy := range []string{"flag", "reject"} {
		t.Run(policy, func(t *testing.T) {
			r.t = t
			pollID, opts := r.c.Poll(owner, map[string]any{"bot_policy": policy})
			ip := randomIP()
			var statuses []int
			for range 8 {
				tok, _ := r.c.Account()
				st, _ := r.vote(pollID, opts[1], voter{token: tok, ip: ip})
				statuses = append(statuses, st)
			}
			want := map[string]int{"": 5}
			if policy == "flag" {
				want[abuse.RuleIPBurst] = 3
				if count(statuses, http.StatusOK) != 8 {
					t.Fatalf("statuses %v", statuses)
				}
			} else if count(statuses, http.StatusForbidden) != 3 {
				t.Fatalf("statuses %v", statuses)
			}
			if got := flagged(r.ballots(pollID, 5+want[abuse.RuleIPBurst])); !maps.Equal(got, want) {
				t.Fatalf("ballots by flags %v, want %v", got, want)
			}
		})
	}
}

// A poll whose policy is off checks nothing, and the policy can change
// while the poll runs.
func TestBotPolicyOffAndChanged(t *testing.T) {
	r := newBotRig(t, botConfig(t, "async"))
	owner, _ := r.c.Account()
	pollID, opts := r.c.Poll(owner, map[string]any{"bot_policy": "off"})
	ip := randomIP()
	for range 7 {
		tok, _ := r.c.Account()
		if st, _ := r.vote(pollID, opts[0], voter{token: tok, ip: ip}); st != http.StatusAccepted {
			t.Fatalf("status %d", st)
		}
	}
	if got := flagged(r.ballots(pollID, 7)); !maps.Equal(got, map[string]int{"": 7}) {
		t.Fatalf("policy off: %v", got)
	}
	got := r.c.Do("PATCH", "/v1/polls/"+pollID, owner, map[string]any{"settings": map[string]any{"bot_policy": "reject"}}).
		Must(t, http.StatusOK)
	if s, _ := got.Body["settings"].(map[string]any); s["bot_policy"] != "reject" {
		t.Fatalf("settings after patch: %s", got.Raw)
	}
	// The counters start with the policy: 5 more pass, the next is refused.
	time.Sleep(300 * time.Millisecond) // the poll cache's TTL in tests is 200 ms
	var statuses []int
	for range 6 {
		tok, _ := r.c.Account()
		st, _ := r.vote(pollID, opts[0], voter{token: tok, ip: ip})
		statuses = append(statuses, st)
	}
	if count(statuses, http.StatusAccepted) != 5 || statuses[5] != http.StatusForbidden {
		t.Fatalf("after switching to reject: %v", statuses)
	}
	bad := r.c.Do("PATCH", "/v1/polls/"+pollID, owner, map[string]any{"settings": map[string]any{"bot_policy": "maybe"}})
	if bad.Status != http.StatusBadRequest || !strings.Contains(string(bad.Raw), "settings.bot_policy") {
		t.Fatalf("bad policy: %d %s", bad.Status, bad.Raw)
	}
}

// ownerSeesFlags checks the owner's flag report against the ballots: the
// total, the flagged count, the count per reason (a ballot with two
// reasons counts under each) and the tally without the flagged ones.
func (r *botRig) ownerSeesFlags(owner, pollID string, total int64, byFlags map[string]int) {
	r.t.Helper()
	var flaggedVotes int64
	reasons := map[string]float64{}
	for k, n := range byFlags {
		if k == "" {
			continue
		}
		flaggedVotes += int64(n)
		for _, reason := range strings.Split(k, "+") {
			reasons[reason] += float64(n)
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp := r.c.Do("GET", "/v1/polls/"+pollID+"/flags", owner, nil).Must(r.t, http.StatusOK)
		got, _ := resp.Body["by_reason"].(map[string]any)
		same := len(got) == len(reasons)
		for k, v := range reasons {
			same = same && got[k] == v
		}
		excl, _ := resp.Body["results_excluding_flagged"].(map[string]any)
		if resp.Body["total_votes"] == float64(total) && resp.Body["flagged_votes"] == float64(flaggedVotes) && same &&
			excl["total_votes"] == float64(total-flaggedVotes) {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("flag report %s, want total %d, flagged %d, by reason %v", resp.Raw, total, flaggedVotes, reasons)
		}
		time.Sleep(300 * time.Millisecond)
	}
}
