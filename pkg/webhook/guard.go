package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/tally-vote/tally/pkg/apperr"
)

// ErrForbiddenTarget: the target resolves to an address webhooks may not
// reach.
var ErrForbiddenTarget = errors.New("webhook target address not allowed")

// Guard refuses loopback, link-local, private, unspecified and multicast
// targets unless AllowPrivate (an operator setting, for tests and private
// deployments).
type Guard struct {
	AllowPrivate bool
	Resolver     *net.Resolver
}

// Blocked reports whether ip is an address webhooks never reach by
// default.
func Blocked(ip net.IP) bool {
	return ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() ||
		ip.IsMulticast() || ip.IsPrivate() || ip.IsUnspecified() || cgnat.Contains(ip)
}

var cgnat = &net.IPNet{IP: net.IPv4(100, 64, 0, 0), Mask: net.CIDRMask(10, 32)}

// CheckURL validates a target at registration: its form, and every
// address its host resolves to.
func (g Guard) CheckURL(ctx context.Context, raw string) error {
	u, err := parseTarget(raw)
	if err != nil {
		return err
	}
	if g.AllowPrivate {
		return nil
	}
	host := u.Hostname()
	var ips []net.IP
	if ip := net.ParseIP(host); ip != nil {
		ips = []net.IP{ip}
	} else {
		r := g.Resolver
		if r == nil {
			r = net.DefaultResolver
		}
		rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		addrs, err := r.LookupIPAddr(rctx, host)
		if err != nil || len(addrs) == 0 {
			return apperr.Invalid("url", "host %q does not resolve", host)
		}
		for _, a := range addrs {
			ips = append(ips, a.IP)
		}
	}
	for _, ip := range ips {
		if Blocked(ip) {
			return apperr.Invalid("url", "resolves to %s: loopback, link-local, private and unspecified targets are refused", ip)
		}
	}
	return nil
}

// control is the dialer's check of the address actually dialled (after
// resolution, so a DNS answer that changed since registration is caught).
func (g Guard) control(_, address string, _ syscall.RawConn) error {
	if g.AllowPrivate {
		return nil
	}
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip := net.ParseIP(host)
	if ip == nil || Blocked(ip) {
		return fmt.Errorf("%w: %s", ErrForbiddenTarget, address)
	}
	return nil
}

// Client is an HTTP client for deliveries: the guard on every dial, no
// proxy, no redirects, and timeout on the whole exchange.
func (g Guard) Client(timeout time.Duration) *http.Client {
	d := &net.Dialer{Timeout: timeout, Control: g.control}
	t := &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 2, IdleConnTimeout: 30 * time.Second,
		TLSHandshakeTimeout: timeout, ResponseHeaderTimeout: timeout}
	return &http.Client{Transport: t, Timeout: timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}
