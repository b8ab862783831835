package webhooks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/tagihan/billing"
)

// Guard applies the outbound-safety rules (SSRF) to endpoint URLs: at
// creation, and again at every connection, on the address actually dialed,
// so that a name that later resolves elsewhere (DNS rebinding) is refused.
//
// A live business's endpoint must be https:// and reach only public
// addresses. A sandbox business may also use http://; it may reach
// loopback, private and link-local addresses only when AllowPrivateSandbox
// is set (WEBHOOK_PRIVATE_URLS=sandbox).
type Guard struct {
	// AllowPrivateSandbox lets sandbox businesses reach non-public
	// addresses (a receiver on the developer's machine or network).
	AllowPrivateSandbox bool
	// LookupFunc resolves a host name. Defaults to net.DefaultResolver.
	LookupFunc func(ctx context.Context, host string) ([]netip.Addr, error)
}

func (g *Guard) lookup(ctx context.Context, host string) ([]netip.Addr, error) {
	if g.LookupFunc != nil {
		return g.LookupFunc(ctx, host)
	}
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

// private reports whether a sandbox business (sandbox true) or a live one
// may reach non-public addresses.
func (g *Guard) private(sandbox bool) bool { return sandbox && g.AllowPrivateSandbox }

// maxURLLength bounds an endpoint URL.
const maxURLLength = 2048

// CheckURL validates raw as the URL of an endpoint of a sandbox or live
// business and returns it normalized, or an API_VALIDATION_ERROR naming
// field. It resolves the host name to check where it leads.
func (g *Guard) CheckURL(ctx context.Context, field, raw string, sandbox bool) (string, error) {
	if raw == "" || len(raw) > maxURLLength {
		return "", billing.Invalid(field, "must be a URL of 1 to 2048 characters")
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		return "", billing.Invalid(field, "must be an absolute URL such as https://example.com/webhooks")
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && sandbox:
	case u.Scheme == "http":
		return "", billing.Invalid(field, "must use https in live mode")
	default:
		return "", billing.Invalid(field, "must be an https URL")
	}
	if u.User != nil {
		return "", billing.Invalid(field, "must not carry a user name or password; check the x-callback-token header or the signature instead")
	}
	if u.Fragment != "" || strings.HasSuffix(raw, "#") {
		return "", billing.Invalid(field, "must not have a #fragment")
	}
	host := u.Hostname()
	if port := u.Port(); port != "" {
		if n, err := parsePort(port); err != nil || n == 0 {
			return "", billing.Invalid(field, "has an invalid port")
		}
	}
	if g.private(sandbox) {
		return u.String(), nil
	}
	if addr, err := netip.ParseAddr(host); err == nil {
		if !Public(addr) {
			return "", billing.Invalid(field, nonPublicMessage(sandbox))
		}
		return u.String(), nil
	}
	lower := strings.ToLower(strings.TrimSuffix(host, "."))
	if lower == "localhost" || strings.HasSuffix(lower, ".localhost") || !strings.Contains(lower, ".") {
		return "", billing.Invalid(field, nonPublicMessage(sandbox))
	}
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := g.lookup(lctx, host)
	if err != nil || len(addrs) == 0 {
		return "", billing.Invalid(field, fmt.Sprintf("has a host name %q that could not be resolved", host))
	}
	for _, a := range addrs {
		if !Public(a) {
			return "", billing.Invalid(field, nonPublicMessage(sandbox))
		}
	}
	return u.String(), nil
}

func nonPublicMessage(sandbox bool) string {
	if sandbox {
		return "must reach a public address; this engine lets sandbox businesses use loopback, private or link-local addresses only with WEBHOOK_PRIVATE_URLS=sandbox"
	}
	return "must reach a public address in live mode, not a loopback, private, link-local or other reserved one"
}

func parsePort(s string) (int, error) {
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, errors.New("not a number")
		}
		n = n*10 + int(c-'0')
		if n > 65535 {
			return 0, errors.New("out of range")
		}
	}
	return n, nil
}

// reserved lists the ranges that are not public beyond what netip's
// predicates cover: shared address space, IETF protocol assignments,
// documentation and benchmarking ranges, reserved space, and IPv6 prefixes
// that embed or translate to IPv4 addresses (NAT64, 6to4, Teredo), which
// could lead anywhere.
var reserved = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8", "100.64.0.0/10", "192.0.0.0/24", "192.0.2.0/24", "198.18.0.0/15",
		"198.51.100.0/24", "203.0.113.0/24", "240.0.0.0/4",
		"64:ff9b::/96", "64:ff9b:1::/48", "100::/64", "2001::/32", "2001:db8::/32", "2002::/16",
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

// Public reports whether a is a public unicast address: not loopback,
// private (RFC 1918, fc00::/7), link-local, unspecified, multicast,
// broadcast, or any reserved range. An IPv4 address written as IPv6
// (::ffff:10.0.0.1) is judged as the IPv4 address.
func Public(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() || a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() || !a.IsGlobalUnicast() {
		return false
	}
	for _, p := range reserved {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// errNonPublic is the error of a connection refused by the guard.
var errNonPublic = errors.New("refused: the address is not public (loopback, private, link-local or reserved)")

// dialer returns a DialContext for an HTTP transport of a sandbox or live
// business. It resolves the host itself, refuses names that lead only to
// non-public addresses, and checks the address of every connection again
// just before it is made (the Control hook), whatever resolved it.
func (g *Guard) dialer(sandbox bool, timeout time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	allowPrivate := g.private(sandbox)
	d := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	if !allowPrivate {
		d.Control = func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("dial %s: %w", address, errNonPublic)
			}
			if !Public(ap.Addr()) {
				return fmt.Errorf("dial %s: %w", ap.Addr(), errNonPublic)
			}
			return nil
		}
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		if _, err := netip.ParseAddr(host); err == nil {
			return d.DialContext(ctx, network, addr)
		}
		addrs, err := g.lookup(ctx, host)
		if err != nil {
			return nil, fmt.Errorf("resolve %s: %w", host, err)
		}
		var lastErr error = fmt.Errorf("resolve %s: no addresses", host)
		for _, a := range addrs {
			if !allowPrivate && !Public(a) {
				lastErr = fmt.Errorf("%s resolves to %s: %w", host, a, errNonPublic)
				continue
			}
			conn, err := d.DialContext(ctx, network, net.JoinHostPort(a.Unmap().String(), port))
			if err == nil {
				return conn, nil
			}
			lastErr = err
		}
		return nil, lastErr
	}
}
