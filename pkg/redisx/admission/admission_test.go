package admission

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/abuse"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
	"github.com/tally-vote/tally/pkg/ratelimit"
	"github.com/tally-vote/tally/pkg/vote"
)

func TestScriptIsEmbedded(t *testing.T) {
	for _, want := range []string{`ARGV[1]`, `"TIME"`, `"p:" .. rid`, `string.sub(v, 3) ~= rid`, `local function bot_signals`} {
		if !strings.Contains(admitLua, want) {
			t.Errorf("admit.lua lacks %s", want)
		}
	}
	if admitScript.Hash() == "" {
		t.Fatal("no script")
	}
}

// The keys and arguments layout reads what admit.lua documents: limits,
// flag, bot counters, at the offsets the script computes from n (f = 2 +
// 3n, the bot arguments after f + 4, the bot keys after n + 2).
func TestLayoutMatchesTheScript(t *testing.T) {
	cfg := ratelimit.Config{VotesPerMinutePerUser: 60, VotesPerMinutePerIP: 10}
	l := ratelimit.New(cfg, nil, zap.NewNop(), time.Now, prometheus.NewRegistry())
	rules := l.Rules(ratelimit.Vote) // account, then IP
	bots := abuse.NewDetector(abuse.Config{IPBurst: 20, IPBurstWindow: time.Minute, DeviceReuse: 2, DeviceWindow: time.Hour},
		[]byte("k"), time.Now, prometheus.NewRegistry())
	p := &poll.Poll{ID: id.New(), Settings: poll.Settings{BotPolicy: poll.BotReject}}
	b := &vote.Ballot{PollID: p.ID, VoterID: id.New(), RequestID: id.New()}
	pid, vid, rid := b.PollID.String(), b.VoterID.String(), b.RequestID.String()
	flagKey, markerKey := "voted:"+pid+":"+vid, "req:"+pid+":"+vid+":"+rid
	acct := ratelimit.Hit{Rule: rules[0], Subject: vid}
	ip := ratelimit.Hit{Rule: rules[1], Subject: "10.0.0.1"}
	c := Config{PendingTTL: time.Minute, RequestTTL: time.Hour}
	flagArgs := []any{rid, int64(60000), pid, int64(3600000)}

	for _, tc := range []struct {
		name     string
		mode     string
		limits   *ratelimit.Deferred
		bots     *abuse.Check
		wantKeys []string
		wantArgs []any
	}{
		{"nothing to check", modeFlag, nil, nil,
			[]string{flagKey, markerKey},
			append(append([]any{"flag", 0}, flagArgs...), 0, 0)},
		{"two limits", modeFlag, l.Defer(ratelimit.Vote, acct, ip), nil,
			[]string{"rate:rl:vote_account:" + vid, "rate:rl:vote_ip:10.0.0.1", flagKey, markerKey},
			append(append([]any{"flag", 2, 60, 60, 60.0, 10, 10, 60.0}, flagArgs...), 0, 0)},
		{"limits and bots, check mode", modeCheck, l.Defer(ratelimit.Vote, ip),
			bots.For(p, abuse.Signals{IP: "10.0.0.1", Device: "d"}),
			[]string{"rate:rl:vote_ip:10.0.0.1", flagKey, markerKey,
				"bot:" + pid + ":ip_burst:10.0.0.1", "bot:" + pid + ":device_reuse:d"},
			append(append([]any{"check", 1, 10, 10, 60.0}, flagArgs...),
				2, 1, 20, int64(60000), abuse.RuleIPBurst, 2, int64(3600000), abuse.RuleDeviceReuse)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keys, args := layout(tc.mode, &vote.Admit{Ballot: b, Limits: tc.limits, Bots: tc.bots}, c)
			if !slices.Equal(keys, tc.wantKeys) {
				t.Errorf("keys\n%q\nwant\n%q", keys, tc.wantKeys)
			}
			if !slices.Equal(args, tc.wantArgs) {
				t.Errorf("args\n%v\nwant\n%v", args, tc.wantArgs)
			}
			// The offsets admit.lua computes land where the builder put
			// each part.
			n := args[1].(int)
			f := 2 + 3*n
			if keys[n] != flagKey || keys[n+1] != markerKey {
				t.Errorf("flag keys not at n+1, n+2 (1-based)")
			}
			if args[f] != rid || args[f+2] != pid {
				t.Errorf("flag arguments not after f = 2 + 3n")
			}
			m := args[f+4].(int)
			if len(keys) != n+2+m || len(args) != f+6+3*m {
				t.Errorf("%d keys, %d args for n=%d m=%d", len(keys), len(args), n, m)
			}
		})
	}
}

func TestParse(t *testing.T) {
	v, body, err := parse([]any{int64(0), int64(2), "1.5", "30", int64(0), int64(0)})
	if err != nil || v.Allowed || v.Rule != 2 || v.RetryAfter != 1500*time.Millisecond || v.Reset != 30*time.Second || body != int64(0) {
		t.Fatalf("refused: %+v %v %v", v, body, err)
	}
	v, body, err = parse([]any{int64(1), int64(1), "-1", "6", int64(9), []any{int64(1), []any{"ip_burst", int64(3)}}})
	if err != nil || !v.Allowed || v.RetryAfter != 0 || v.Remaining != 9 {
		t.Fatalf("allowed: %+v %v %v", v, body, err)
	}
	if got := names(body.([]any)[1]); !slices.Equal(got, []string{"ip_burst"}) {
		t.Fatalf("names %v", got)
	}
	if _, _, err := parse("OK"); err == nil {
		t.Fatal("a malformed reply parsed")
	}
}
