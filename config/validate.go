package config

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// checker validates a rawConfig in one pass, collecting every problem it finds.
type checker struct {
	errs  []Problem
	warns []Problem
}

// errorf records an error about key; key "" means the file as a whole.
func (c *checker) errorf(key, format string, args ...any) {
	c.errs = append(c.errs, Problem{Key: key, Msg: fmt.Sprintf(format, args...)})
}

// warnf records a warning about key.
func (c *checker) warnf(key, format string, args ...any) {
	c.warns = append(c.warns, Problem{Key: key, Msg: fmt.Sprintf(format, args...)})
}

// config validates r and returns it with the defaults filled in. The result is only meaningful
// when no errors were found.
func (c *checker) config(r *rawConfig) *Config {
	cfg := &Config{Port: DefaultPort}
	if n, ok := c.integer("key", r.Key.v, 0, math.MaxUint32); ok {
		cfg.Key = uint32(n)
	}
	if n, ok := c.integer("port", r.Port.v, 1, math.MaxUint16); ok {
		cfg.Port = uint16(n)
	}
	if r.Source == nil && r.Member == nil {
		c.errorf("", "no [source] or [member] table; a host needs at least one")
	}
	if r.Source != nil {
		cfg.Source = c.source(r.Source, cfg.Port)
	}
	if r.Member != nil {
		cfg.Member = c.member(r.Member)
	}
	return cfg
}

// source validates [source]. A member without a port gets tunnelPort.
func (c *checker) source(r *rawSource, tunnelPort uint16) *Source {
	s := &Source{}
	if name, ok := c.text("source.interface", r.Interface.v); ok {
		if msg := ifNameProblem(name); msg != "" {
			c.errorf("source.interface", "%s", msg)
		}
		s.Interface = name
	}
	if len(r.Group) == 0 {
		c.errorf("source.group", "no groups; [source] needs at least one [[source.group]]")
	}

	type entry struct {
		addr netip.Addr
		port uint16 // 0: no port
	}
	entries := make(map[entry]int, len(r.Group)) // entry -> index of its first [[source.group]]
	perAddress := make(map[netip.Addr]int, len(r.Group))
	groups := make([]checkedGroup, len(r.Group))
	seen := map[netip.AddrPort]bool{} // reused by each group
	for i := range r.Group {
		g := c.group(i, &r.Group[i], tunnelPort, seen)
		s.Groups = append(s.Groups, g.Group)
		if g.ok {
			e := entry{g.Address, g.Port}
			if first, dup := entries[e]; dup {
				port := "with no port"
				if g.Port != 0 {
					port = fmt.Sprintf("port %d", g.Port)
				}
				c.errorf(groupKey(i), "%s %s is already source.group[%d]", g.Address, port, first)
				g.ok = false // one problem is enough for this entry
			} else {
				entries[e] = i
				perAddress[g.Address]++
			}
		}
		groups[i] = g
	}
	c.oneEntryPerAddress(groups, perAddress)
	return s
}

// checkedGroup is a validated [[source.group]] with what the checks across groups need.
type checkedGroup struct {
	Group
	ok      bool  // address and port are valid, and no earlier entry has both
	indices []int // index in the file of each of Group.Members
}

// groupKey is the key path of [[source.group]] number i: "source.group[2]".
func groupKey(i int) string { return elemKey("source.group", i) }

// elemKey is the key path of element i of the array at key: "member.sources[1]".
func elemKey(key string, i int) string { return key + "[" + strconv.Itoa(i) + "]" }

// group validates one [[source.group]]. seen is scratch space for finding members listed twice.
func (c *checker) group(i int, r *rawGroup, tunnelPort uint16, seen map[netip.AddrPort]bool) checkedGroup {
	key := groupKey(i)
	g := checkedGroup{ok: true}
	if r.Address.v == nil {
		c.errorf(key+".address", "missing; each group needs a multicast address")
		g.ok = false
	} else if a, ok := c.multicast(key+".address", r.Address.v); ok {
		g.Address = a
	} else {
		g.ok = false
	}
	if r.Port.v != nil {
		if n, ok := c.integer(key+".port", r.Port.v, 1, math.MaxUint16); ok {
			g.Port = uint16(n)
		} else {
			g.ok = false
		}
	}

	key += ".members"
	list, ok := c.array(key, r.Members.v)
	if r.Members.v == nil || ok && len(list) == 0 {
		c.errorf(key, "no members")
	}
	clear(seen)
	g.Members = make([]netip.AddrPort, 0, len(list))
	g.indices = make([]int, 0, len(list))
	for j, x := range list {
		// There may be millions of members: build an element's key only for a problem.
		s, ok := x.(string)
		if !ok {
			c.errorf(elemKey(key, j), "want a string, got %s", describe(x))
			continue
		}
		a, port, msg := parseEndpoint(s)
		if msg == "" {
			msg = unicastProblem(s, a)
		}
		if msg != "" {
			c.errorf(elemKey(key, j), "%s", msg)
			continue
		}
		if port == 0 {
			port = tunnelPort
		}
		m := netip.AddrPortFrom(a, port)
		if seen[m] {
			c.warnf(elemKey(key, j), "%s is listed twice; using it once", s)
			continue
		}
		seen[m] = true
		g.Members = append(g.Members, m)
		g.indices = append(g.indices, j)
	}
	return g
}

// oneEntryPerAddress reports a member that is in two groups with the same address. A member
// keeps one sequence space per source and group address, so two entries for one address, each
// numbering its own packets, would look to it like loss and reordering.
func (c *checker) oneEntryPerAddress(groups []checkedGroup, perAddress map[netip.Addr]int) {
	type membership struct {
		group  netip.Addr
		member netip.AddrPort
	}
	var first map[membership]int // -> index of the group that has it first
	for i, g := range groups {
		if !g.ok || perAddress[g.Address] < 2 {
			continue
		}
		if first == nil {
			first = map[membership]int{}
		}
		for j, m := range g.Members {
			k := membership{g.Address, m}
			if f, ok := first[k]; ok {
				c.errorf(elemKey(groupKey(i)+".members", g.indices[j]),
					"%s is also a member of source.group[%d], which has the same address %s; a member may be in one group per address",
					m, f, g.Address)
				continue
			}
			first[k] = i
		}
	}
}

// member validates [member].
func (c *checker) member(r *rawMember) *Member {
	m := &Member{TUN: DefaultTUN, MTU: DefaultMTU}
	if name, ok := c.text("member.tun", r.TUN.v); ok {
		if name == "" {
			c.errorf("member.tun", "empty; leave it out for the default %s", DefaultTUN)
		} else if msg := ifNameProblem(name); msg != "" {
			c.errorf("member.tun", "%s", msg)
		}
		m.TUN = name
	}
	if n, ok := c.integer("member.mtu", r.MTU.v, 576, math.MaxUint16); ok {
		m.MTU = int(n)
	}

	list, ok := c.array("member.sources", r.Sources.v)
	switch {
	case r.Sources.v == nil:
		c.errorf("member.sources", "missing; tunnel packets are accepted only from the sources listed here")
	case ok && len(list) == 0:
		c.errorf("member.sources", "no sources; tunnel packets are accepted only from the sources listed here")
	}
	seen := map[netip.Addr]bool{}
	for j, x := range list {
		key := elemKey("member.sources", j)
		s, ok := c.text(key, x)
		if !ok {
			continue
		}
		a, port, msg := parseEndpoint(s)
		switch {
		case msg != "":
		case port != 0:
			msg = s + " has a port; a source is an address only"
		default:
			msg = unicastProblem(s, a)
		}
		if msg != "" {
			c.errorf(key, "%s", msg)
			continue
		}
		if seen[a] {
			c.warnf(key, "%s is listed twice; using it once", s)
			continue
		}
		seen[a] = true
		m.Sources = append(m.Sources, a)
	}

	list, _ = c.array("member.groups", r.Groups.v)
	clear(seen)
	for j, x := range list {
		key := elemKey("member.groups", j)
		a, ok := c.multicast(key, x)
		if !ok {
			continue
		}
		if seen[a] {
			c.warnf(key, "%s is listed twice; using it once", a)
			continue
		}
		seen[a] = true
		m.Groups = append(m.Groups, a)
	}
	return m
}

// integer checks that v, when present, is an integer in lo..hi. ok is false when v is absent or
// wrong.
func (c *checker) integer(key string, v any, lo, hi int64) (n int64, ok bool) {
	if v == nil {
		return 0, false
	}
	n, ok = v.(int64)
	if !ok {
		c.errorf(key, "want an integer, got %s", describe(v))
		return 0, false
	}
	if n < lo || n > hi {
		c.errorf(key, "%d is out of range %d..%d", n, lo, hi)
		return 0, false
	}
	return n, true
}

// text checks that v, when present, is a string. ok is false when v is absent or not a string.
func (c *checker) text(key string, v any) (s string, ok bool) {
	if v == nil {
		return "", false
	}
	s, ok = v.(string)
	if !ok {
		c.errorf(key, "want a string, got %s", describe(v))
	}
	return s, ok
}

// array checks that v, when present, is an array. ok is false when v is absent or not an array.
func (c *checker) array(key string, v any) (list []any, ok bool) {
	if v == nil {
		return nil, false
	}
	list, ok = v.([]any)
	if !ok {
		c.errorf(key, "want an array of strings, got %s", describe(v))
	}
	return list, ok
}

// multicast checks that v is a string holding an IPv4 multicast address, 224.0.0.0/4.
func (c *checker) multicast(key string, v any) (netip.Addr, bool) {
	s, ok := c.text(key, v)
	if !ok {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil:
		c.errorf(key, "%q is not an IP address", s)
	case !a.Is4():
		c.errorf(key, "%s is an IPv6 address; IPv6 is not supported", s)
	case !a.IsMulticast():
		c.errorf(key, "%s is not a multicast address", s)
	default:
		return a, true
	}
	return netip.Addr{}, false
}

// parseEndpoint parses "ip" or "ip:port". port is 0 when s has none; msg says what is wrong
// with s, or is empty.
func parseEndpoint(s string) (a netip.Addr, port uint16, msg string) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a, 0, ""
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

// ifNameProblem says what makes name unusable as a Linux interface name, or returns "". These
// are the kernel's dev_valid_name rules, plus no control characters; "" is left to the caller.
func ifNameProblem(name string) string {
	switch {
	case len(name) > 15:
		return fmt.Sprintf("%q is longer than 15 bytes", name)
	case name == "." || name == "..":
		return fmt.Sprintf("%q is not a valid interface name", name)
	}
	for _, r := range name {
		switch {
		case r == '/' || r == ':':
			return fmt.Sprintf("%q contains %q", name, r)
		case unicode.IsSpace(r):
			return fmt.Sprintf("%q contains whitespace", name)
		case unicode.IsControl(r):
			return fmt.Sprintf("%q contains a control character", name)
		}
	}
	return ""
}

// describe names the TOML type of a decoded value, and the value itself when it is short.
func describe(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("a string (%q)", v)
	case int64:
		return fmt.Sprintf("an integer (%d)", v)
	case float64:
		return fmt.Sprintf("a float (%v)", v)
	case bool:
		return fmt.Sprintf("a boolean (%v)", v)
	case time.Time:
		return "a date-time"
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	}
	return fmt.Sprintf("%T", v)
}
