package clientip

import "testing"

func TestKey(t *testing.T) {
	for _, tc := range []struct{ name, ip, want string }{
		{"ipv4 as is", "203.0.113.7", "203.0.113.7"},
		{"ipv4-mapped ipv6 is ipv4", "::ffff:203.0.113.7", "203.0.113.7"},
		{"ipv4-mapped ipv6 in hex", "::ffff:cb00:7107", "203.0.113.7"},
		{"ipv6 masked to /64", "2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"},
		{"another address of the same /64", "2001:db8:1:2::1", "2001:db8:1:2::/64"},
		{"the next /64 is another client", "2001:db8:1:3::1", "2001:db8:1:3::/64"},
		{"long form equals short form", "2001:0db8:0001:0002:0000:0000:0000:0001", "2001:db8:1:2::/64"},
		{"zone dropped", "fe80::1%eth0", "fe80::/64"},
		{"loopback v6", "::1", "::/64"},
		{"loopback v4", "127.0.0.1", "127.0.0.1"},
		{"not an address kept", "not-an-ip", "not-an-ip"},
		{"empty kept", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Key(tc.ip); got != tc.want {
				t.Fatalf("Key(%q) = %q, want %q", tc.ip, got, tc.want)
			}
		})
	}
}
