// Package clientip maps a client's address to the subject that per-address
// limits count it under (rate limits, bot rules, live sockets).
package clientip

import "net/netip"

// IPv6Prefix is how many leading bits of an IPv6 address name one client.
// A /64 is the smallest network a provider hands out (RFC 6177), and a host
// picks addresses inside it at will (SLAAC privacy addresses), so counting
// each address alone would let one host rotate past every limit.
const IPv6Prefix = 64

// Key is the limiting subject of the client address ip: an IPv4 address as
// it is (also when written as IPv4-mapped IPv6), an IPv6 address as its /64
// (e.g. "2001:db8:1:2::/64", zone dropped). A value that is not an address
// is returned unchanged, so it still limits alone.
func Key(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	p, err := a.WithZone("").Prefix(IPv6Prefix)
	if err != nil {
		return ip
	}
	return p.String()
}
