package config

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
)

// The single-value parsers: the rules the file's values follow, for the command line to check
// its arguments by. File validation uses the same functions, so a value has the same problem,
// in the same words, on the command line as in a file:
//
//	mctun.toml:9: source.group[0].address: 10.1.1.1 is not a multicast address
//	ParseGroup("10.1.1.1"):                10.1.1.1 is not a multicast address

// ParseGroup parses a group address as source.group.address and member.groups have it: an
// IPv4 multicast address, 224.0.0.0/4.
func ParseGroup(s string) (netip.Addr, error) {
	a, msg := parseMulticast(s)
	if msg != "" {
		return netip.Addr{}, errors.New(msg)
	}
	return a, nil
}

// ParseGroupPort parses a group's port, source.group.port: a decimal integer, 1..65535.
func ParseGroupPort(s string) (uint16, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if errors.Is(err, strconv.ErrRange) {
		return 0, fmt.Errorf("%s is out of range 1..%d", s, math.MaxUint16)
	}
	if err != nil {
		return 0, fmt.Errorf("%q is not an integer", s)
	}
	if msg := rangeProblem(n, 1, math.MaxUint16); msg != "" {
		return 0, errors.New(msg)
	}
	return uint16(n), nil
}

// ParseMember parses a member as source.group.members has it: "ip" or "ip:port", the IPv4
// address of a host. A member without a port gets tunnelPort, the config's Port.
func ParseMember(s string, tunnelPort uint16) (netip.AddrPort, error) {
	m, msg := parseMember(s, tunnelPort)
	if msg != "" {
		return netip.AddrPort{}, errors.New(msg)
	}
	return m, nil
}

// ParseSource parses a source as member.sources has it: the IPv4 address of a host, no port.
func ParseSource(s string) (netip.Addr, error) {
	a, msg := parseSource(s)
	if msg != "" {
		return netip.Addr{}, errors.New(msg)
	}
	return a, nil
}

// parseJoinFrom parses an element of source.join_from: an IPv4 prefix, "192.168.0.0/16", or
// one address, which is a /32; or says what is wrong with it.
func parseJoinFrom(s string) (netip.Prefix, string) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		a, aerr := netip.ParseAddr(s)
		if aerr != nil {
			return netip.Prefix{}, fmt.Sprintf("%q is not an IPv4 prefix (such as 192.168.0.0/16) or address", s)
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	a := p.Addr()
	switch {
	case !a.Is4():
		return netip.Prefix{}, s + " is IPv6; IPv6 is not supported"
	case p != p.Masked():
		return netip.Prefix{}, fmt.Sprintf("%s has bits set past its length; write %s", s, p.Masked())
	case a.IsMulticast() || a.IsLoopback() || p.Bits() > 0 && a.IsUnspecified():
		return netip.Prefix{}, s + " holds no host that could join: members are unicast host addresses"
	}
	return p, ""
}

// parseMulticast parses s as an IPv4 multicast address, or says what is wrong with it.
func parseMulticast(s string) (netip.Addr, string) {
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil:
		return netip.Addr{}, fmt.Sprintf("%q is not an IP address", s)
	case !a.Is4():
		return netip.Addr{}, s + " is an IPv6 address; IPv6 is not supported"
	case !a.IsMulticast():
		return netip.Addr{}, s + " is not a multicast address"
	}
	return a, ""
}

// parseMember parses s as a member, "ip" or "ip:port", or says what is wrong with it.
func parseMember(s string, tunnelPort uint16) (netip.AddrPort, string) {
	a, port, msg := parseEndpoint(s)
	if msg == "" {
		msg = unicastProblem(s, a)
	}
	if msg != "" {
		return netip.AddrPort{}, msg
	}
	if port == 0 {
		port = tunnelPort
	}
	return netip.AddrPortFrom(a, port), ""
}

// parseSource parses s as a source, an address without a port, or says what is wrong with it.
func parseSource(s string) (netip.Addr, string) {
	a, port, msg := parseEndpoint(s)
	switch {
	case msg != "":
	case port != 0:
		msg = s + " has a port; a source is an address only"
	default:
		msg = unicastProblem(s, a)
	}
	if msg != "" {
		return netip.Addr{}, msg
	}
	return a, ""
}

// parseEndpoint parses "ip" or "ip:port". port is 0 when s has none; msg says what is wrong
// with s, or is empty.
func parseEndpoint(s string) (a netip.Addr, port uint16, msg string) {
	// An IPv6 address has two colons or more, an IPv4 one none, so "ip:port" with an IPv4
	// address, the common member, is not an address: do not try, as a failed ParseAddr
	// allocates its error, millions of times in a large config.
	if strings.Count(s, ":") != 1 {
		if a, err := netip.ParseAddr(s); err == nil {
			return a, 0, ""
		}
	}
	i := strings.LastIndexByte(s, ':')
	if i < 0 || !isDigits(s[i+1:]) {
		return netip.Addr{}, 0, fmt.Sprintf("%q is not \"ip\" or \"ip:port\"", s)
	}
	a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s[:i], "["), "]"))
	if err != nil {
		return netip.Addr{}, 0, fmt.Sprintf("%q is not \"ip\" or \"ip:port\"", s)
	}
	n, err := strconv.ParseUint(s[i+1:], 10, 16)
	if err != nil || n == 0 {
		return netip.Addr{}, 0, fmt.Sprintf("%s has port %s, out of range 1..65535", s, s[i+1:])
	}
	return a, uint16(n), ""
}

// parseListen parses s as metrics.listen has it, "ip:port" with both given, or says what is
// wrong with it. The address must be written out: Go's ":port" means every address, which
// should be a choice, not an accident.
func parseListen(s string) (netip.AddrPort, string) {
	if _, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPort{}, fmt.Sprintf("%s has no port; write \"ip:port\"", s)
	}
	i := strings.LastIndexByte(s, ':')
	if i < 0 || !isDigits(s[i+1:]) {
		return netip.AddrPort{}, fmt.Sprintf("%q is not \"ip:port\"", s)
	}
	if i == 0 {
		return netip.AddrPort{}, fmt.Sprintf("%q has no address: write \"127.0.0.1%s\" for this host alone, or \"0.0.0.0%s\" for every address", s, s, s)
	}
	a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s[:i], "["), "]"))
	if err != nil {
		return netip.AddrPort{}, fmt.Sprintf("%q is not \"ip:port\"", s)
	}
	n, err := strconv.ParseUint(s[i+1:], 10, 16)
	switch {
	case err != nil || n == 0:
		return netip.AddrPort{}, fmt.Sprintf("%s has port %s, out of range 1..65535", s, s[i+1:])
	case a.IsMulticast():
		return netip.AddrPort{}, s + " is a multicast address; listen on an address of this host"
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return netip.AddrPort{}, s + " is the broadcast address; listen on an address of this host"
	}
	return netip.AddrPortFrom(a, uint16(n)), ""
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

// unicastProblem says what makes a, written s, unusable as the address of a member or source,
// or returns "": it must be the IPv4 address of one host.
func unicastProblem(s string, a netip.Addr) string {
	switch {
	case !a.Is4():
		return s + " is an IPv6 address; IPv6 is not supported"
	case a.IsUnspecified():
		return s + " is the unspecified address, not a host"
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return s + " is the broadcast address, not a host"
	case a.IsLoopback():
		return s + " is a loopback address, not a remote host"
	case a.IsMulticast():
		return s + " is a multicast address, not a host"
	}
	return ""
}

// rangeProblem says that n is not in lo..hi, or returns "".
func rangeProblem(n, lo, hi int64) string {
	if n < lo || n > hi {
		return fmt.Sprintf("%d is out of range %d..%d", n, lo, hi)
	}
	return ""
}
