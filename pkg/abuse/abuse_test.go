package abuse

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/poll"
)

var testCfg = Config{
	IPBurst: 20, IPBurstWindow: time.Minute,
	DeviceReuse: 2, DeviceWindow: time.Hour,
	UserAgentBurst: 300, UserAgentWindow: time.Minute,
	NewAccountBurst: 10, NewAccountWindow: time.Minute, NewAccountAge: time.Hour,
	AnonymousPerIP: 3, AnonymousWindow: time.Hour,
}

func TestForBuildsTheRulesASignalAllows(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	d := NewDetector(testCfg, []byte("k"), func() time.Time { return now }, prometheus.NewRegistry())
	p := &poll.Poll{ID: id.New()}
	for _, tc := range []struct {
		name   string
		policy poll.BotPolicy
		sig    Signals
		want   []string
		reject bool
	}{
		{"policy off checks nothing", poll.BotOff, Signals{IP: "1.2.3.4", UserAgent: "ua"}, nil, false},
		{"empty policy is flag", "", Signals{IP: "1.2.3.4"}, []string{RuleIPBurst}, false},
		{"account voter", poll.BotFlag, Signals{IP: "1.2.3.4", UserAgent: "ua", AccountCreated: now.Add(-48 * time.Hour)},
			[]string{RuleIPBurst, RuleUserAgentBurst}, false},
		{"brand-new account", poll.BotFlag, Signals{IP: "1.2.3.4", AccountCreated: now.Add(-time.Minute)},
			[]string{RuleIPBurst, RuleNewAccountBurst}, false},
		{"unknown account age is not new", poll.BotFlag, Signals{IP: "1.2.3.4"}, []string{RuleIPBurst}, false},
		{"anonymous voter", poll.BotReject, Signals{IP: "1.2.3.4", Anonymous: true, AccountCreated: now},
			[]string{RuleIPBurst, RuleAnonymousIP}, true},
		{"device", poll.BotFlag, Signals{IP: "1.2.3.4", Device: "fp"}, []string{RuleIPBurst, RuleDeviceReuse}, false},
		{"anonymous voter on an invite poll", poll.BotFlag, Signals{IP: "1.2.3.4", Anonymous: true},
			[]string{RuleIPBurst}, false},
		{"no signals", poll.BotFlag, Signals{}, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p.Settings.BotPolicy = tc.policy
			p.Settings.AnonymousAccess = poll.AnonymousOpen
			if strings.Contains(tc.name, "invite") {
				p.Settings.AnonymousAccess = poll.AnonymousInvite
			}
			c := d.For(p, tc.sig)
			var got []string
			if c != nil {
				for _, r := range c.rules {
					got = append(got, r.name)
				}
				if c.reject != tc.reject {
					t.Errorf("reject %v, want %v", c.reject, tc.reject)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("rules %v, want %v", got, tc.want)
			}
			if len(c.Keys()) != len(tc.want) || len(c.Args()) != 2+3*len(tc.want) {
				t.Errorf("keys %v args %v", c.Keys(), c.Args())
			}
		})
	}
}

func TestArgsLayout(t *testing.T) {
	d := NewDetector(testCfg, []byte("k"), time.Now, prometheus.NewRegistry())
	p := &poll.Poll{ID: id.New(), Settings: poll.Settings{BotPolicy: poll.BotReject}}
	c := d.For(p, Signals{IP: "10.0.0.1", Anonymous: true})
	// The admission script (pkg/redisx/admission/admit.lua) reads, from
	// the bot arguments' start: rules, reject, then limit, window and name
	// of each rule.
	want := []any{2, 1, 20, int64(60000), RuleIPBurst, 3, int64(3600000), RuleAnonymousIP}
	if got := c.Args(); !slices.Equal(got, want) {
		t.Fatalf("args %v, want %v", got, want)
	}
	if c.Keys()[0] != "bot:"+p.ID.String()+":ip_burst:10.0.0.1" {
		t.Fatalf("key %q", c.Keys()[0])
	}
	// Counted once: afterwards it passes nothing to a script.
	if _, err := c.Settle([]string{RuleIPBurst}, true); err != ErrSuspicious {
		t.Fatalf("settle: %v", err)
	}
	if c.Pending() || c.Keys() != nil || !slices.Equal(c.Args(), []any{0, 0}) {
		t.Fatal("a settled check is still pending")
	}
	var none *Check
	if none.Pending() || !slices.Equal(none.Args(), []any{0, 0}) {
		t.Fatal("nil check")
	}
}

// Two addresses of one IPv6 /64 are one client to the per-address rules.
func TestIPRulesCountAnIPv6ClientPerSlash64(t *testing.T) {
	d := NewDetector(testCfg, []byte("k"), time.Now, prometheus.NewRegistry())
	p := &poll.Poll{ID: id.New(), Settings: poll.Settings{BotPolicy: poll.BotFlag}}
	a := d.For(p, Signals{IP: "2001:db8:1:2::1", Anonymous: true}).Keys()
	b := d.For(p, Signals{IP: "2001:db8:1:2:ffff:eeee:dddd:cccc", Anonymous: true}).Keys()
	if !slices.Equal(a, b) || a[0] != "bot:"+p.ID.String()+":ip_burst:2001:db8:1:2::/64" {
		t.Fatalf("keys %v and %v, want the /64's", a, b)
	}
}

func TestDeviceHashIsKeyedAndStable(t *testing.T) {
	a := NewDetector(testCfg, []byte("key-a"), time.Now, prometheus.NewRegistry())
	b := NewDetector(testCfg, []byte("key-b"), time.Now, prometheus.NewRegistry())
	if a.DeviceHash("fp-1") != a.DeviceHash("fp-1") || a.DeviceHash("fp-1") == a.DeviceHash("fp-2") {
		t.Fatal("not a stable hash")
	}
	if a.DeviceHash("fp-1") == b.DeviceHash("fp-1") {
		t.Fatal("the hash does not depend on the key")
	}
	if a.DeviceHash("") != "" {
		t.Fatal("no fingerprint hashes to something")
	}
	long := string(make([]byte, 4*MaxDevice))
	if a.DeviceHash(long) != a.DeviceHash(long[:MaxDevice]) {
		t.Fatal("an over-long fingerprint is not cut")
	}
	var none *Detector
	if none.DeviceHash("fp") != "" || none.For(&poll.Poll{}, Signals{IP: "x"}) != nil {
		t.Fatal("a nil detector checks something")
	}
}

func TestSettleSortsAndDedupes(t *testing.T) {
	d := NewDetector(testCfg, []byte("k"), time.Now, prometheus.NewRegistry())
	p := &poll.Poll{ID: id.New(), Settings: poll.Settings{BotPolicy: poll.BotFlag}}
	c := d.For(p, Signals{IP: "10.0.0.1", UserAgent: "ua"})
	got, err := c.Settle([]string{RuleUserAgentBurst, RuleIPBurst, RuleIPBurst}, false)
	if err != nil || !slices.Equal(got, []string{RuleIPBurst, RuleUserAgentBurst}) {
		t.Fatalf("%v %v", got, err)
	}
	if got, err := d.For(p, Signals{IP: "10.0.0.1"}).Settle(nil, false); got != nil || err != nil {
		t.Fatalf("nothing tripped: %v %v", got, err)
	}
}
