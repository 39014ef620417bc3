package ratelimit

import (
	"testing"
	"time"
)

func TestRules(t *testing.T) {
	cfg := Config{PollCreatePerHour: 5, PollCreatePerHourPerIP: 30, VotesPerMinutePerIP: 10, VotesPerMinutePerUser: 60,
		AuthPerMinutePerIP: 30, LoginPerMinutePerName: 10, AnonymousPerHourPerIP: 60, ResultsPerMinutePerIP: 600}
	names := func(rs []Rule) (out []string) {
		for _, r := range rs {
			out = append(out, r.Name())
		}
		return out
	}
	for _, tc := range []struct {
		class        string
		disablePerIP bool
		want         []string
	}{
		{Vote, false, []string{"vote_account", "vote_ip"}},
		{Vote, true, []string{"vote_account"}},
		{PollCreate, false, []string{"poll_create_account", "poll_create_ip"}},
		{Login, false, []string{"login_login", "login_ip"}},
		{Login, true, []string{"login_login"}},
		{Register, true, nil},
		{Anonymous, false, []string{"anonymous_ip", "anonymous_ip_hour"}},
		{Anonymous, true, nil},
		{Results, false, []string{"results_ip"}}, // per-user results limit 0: off
	} {
		c := cfg
		c.DisablePerIP = tc.disablePerIP
		l := &Limiter{cfg: c}
		got := names(l.Rules(tc.class))
		if len(got) != len(tc.want) {
			t.Fatalf("%s (per-IP off %v): %v, want %v", tc.class, tc.disablePerIP, got, tc.want)
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Fatalf("%s: %v, want %v", tc.class, got, tc.want)
			}
		}
	}
}

func TestLoginSubjectNormalises(t *testing.T) {
	if LoginSubject(" Alice@Example.test ") != LoginSubject("alice@example.test") {
		t.Fatal("case and spaces must not make another subject")
	}
	if LoginSubject("alice") == LoginSubject("bob") {
		t.Fatal("distinct logins share a subject")
	}
	if len(LoginSubject("alice")) != 32 {
		t.Fatal("want 16 bytes of hex")
	}
}

func TestConfigCheck(t *testing.T) {
	if err := (Config{FailClosed: []string{"login", " vote"}}).Check(); err != nil {
		t.Fatal(err)
	}
	if err := (Config{FailClosed: []string{"logins"}}).Check(); err == nil {
		t.Fatal("unknown class accepted")
	}
}

func TestSeconds(t *testing.T) {
	for d, want := range map[time.Duration]int{0: 0, -time.Second: 0, time.Millisecond: 1, time.Second: 1, 1500 * time.Millisecond: 2} {
		if got := Seconds(d); got != want {
			t.Fatalf("Seconds(%v) = %d, want %d", d, got, want)
		}
	}
}
