package igmp

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Mode is a group's filter mode (RFC 3376 section 3.2).
type Mode uint8

// The filter modes. Exclude with no sources is an ordinary join (IP_ADD_MEMBERSHIP): every
// source; Include names the only sources wanted (IP_ADD_SOURCE_MEMBERSHIP, as SSM uses).
const (
	Exclude Mode = iota
	Include
)

func (m Mode) String() string {
	if m == Include {
		return "include"
	}
	return "exclude"
}

// Membership is a group the host joined on an interface, with the source filter the
// host's sockets together ask for.
type Membership struct {
	Group   netip.Addr
	Mode    Mode
	Sources []netip.Addr // sorted
}

// Wants reports whether a member in this state wants the packets of source src.
func (m Membership) Wants(src netip.Addr) bool {
	_, found := slices.BinarySearchFunc(m.Sources, src, netip.Addr.Compare)
	return found == (m.Mode == Include)
}

// Equal reports whether two memberships are the same state.
func (m Membership) Equal(o Membership) bool {
	return m.Group == o.Group && m.Mode == o.Mode && slices.Equal(m.Sources, o.Sources)
}

// Joined reads the groups the host joined on the interface with index ifindex from the
// kernel's tables, /proc/net/igmp (groups and how many sockets joined each) and
// /proc/net/mcfilter (source filters: per source, how many sockets include and exclude it),
// sorted by group. AllHosts, which the kernel joins itself, is left out.
//
// The tables say how many sockets include or exclude each source, not the mode of each
// socket, so the group's filter (RFC 3376 section 3.2: excluded only by sources every
// exclude-mode socket excludes and no include-mode socket includes) is derived exactly when
// the host's sockets of a group use one mode, and otherwise wider, never narrower: a member
// that asks for a source too many costs the source some traffic that the host's own socket
// filters then drop; one too few would lose what an application asked for.
func Joined(procIGMP, procMcfilter io.Reader, ifindex int) ([]Membership, error) {
	users, err := parseIGMP(procIGMP, ifindex)
	if err != nil {
		return nil, fmt.Errorf("/proc/net/igmp: %w", err)
	}
	filters, err := parseMcfilter(procMcfilter, ifindex)
	if err != nil {
		return nil, fmt.Errorf("/proc/net/mcfilter: %w", err)
	}
	var out []Membership
	for g, u := range users {
		if g == AllHosts {
			continue
		}
		out = append(out, derive(g, u, filters[g]))
	}
	slices.SortFunc(out, func(a, b Membership) int { return a.Group.Compare(b.Group) })
	return out, nil
}

// sourceCount is one line of /proc/net/mcfilter: how many sockets include and exclude a
// source of a group.
type sourceCount struct {
	src      netip.Addr
	inc, exc int
}

// derive works out a group's filter from the number of sockets that joined it and the
// per-source counts. With no source listed every socket is in exclude mode with no sources.
// Otherwise the sockets in include mode number at least the most that include one source
// (each includes at least one), so those in exclude mode number at most users minus that;
// taking that most (the widest filter the counts allow) a source is excluded when that many
// sockets exclude it and none includes it. With no socket left in exclude mode the group is
// in include mode, with every source some socket includes.
func derive(g netip.Addr, users int, srcs []sourceCount) Membership {
	maxInc := 0
	for _, s := range srcs {
		maxInc = max(maxInc, s.inc)
	}
	m := Membership{Group: g}
	excluders := users - maxInc
	if excluders <= 0 && len(srcs) > 0 {
		m.Mode = Include
		for _, s := range srcs {
			if s.inc > 0 {
				m.Sources = append(m.Sources, s.src)
			}
		}
	} else {
		for _, s := range srcs {
			if s.exc >= excluders && s.inc == 0 {
				m.Sources = append(m.Sources, s.src)
			}
		}
	}
	slices.SortFunc(m.Sources, netip.Addr.Compare)
	m.Sources = slices.Compact(m.Sources)
	return m
}

// parseIGMP reads /proc/net/igmp: a line per interface ("IDX\tNAME: COUNT QUERIER"), then a
// line per group joined on it ("\t\t\t\tGROUP USERS TIMER REPORTER"), GROUP being the
// address as the kernel holds it (network order) printed as a native integer in hex.
func parseIGMP(r io.Reader, ifindex int) (map[netip.Addr]int, error) {
	users := map[netip.Addr]int{}
	sc := bufio.NewScanner(r)
	cur := -1
	for line := 0; sc.Scan(); line++ {
		text := sc.Text()
		if line == 0 || strings.TrimSpace(text) == "" {
			continue // the header
		}
		f := strings.Fields(text)
		if !strings.HasPrefix(text, "\t") {
			idx, err := strconv.Atoi(f[0])
			if err != nil {
				return nil, fmt.Errorf("line %d: interface index %q", line+1, f[0])
			}
			cur = idx
			continue
		}
		if cur != ifindex {
			continue
		}
		if len(f) < 2 {
			return nil, fmt.Errorf("line %d: %q", line+1, text)
		}
		v, err := strconv.ParseUint(f[0], 16, 32)
		n, err2 := strconv.Atoi(f[1])
		if err != nil || err2 != nil {
			return nil, fmt.Errorf("line %d: %q", line+1, text)
		}
		var a [4]byte
		binary.NativeEndian.PutUint32(a[:], uint32(v))
		users[netip.AddrFrom4(a)] = n
	}
	return users, sc.Err()
}

// parseMcfilter reads /proc/net/mcfilter: after a header, a line per source of a group
// ("IDX NAME 0xGROUP 0xSOURCE INC EXC", the addresses in hex in host order of the numbers:
// 0xe0010203 is 224.1.2.3). NAME is cut to 6 bytes, so lines are matched by index.
func parseMcfilter(r io.Reader, ifindex int) (map[netip.Addr][]sourceCount, error) {
	out := map[netip.Addr][]sourceCount{}
	sc := bufio.NewScanner(r)
	for line := 0; sc.Scan(); line++ {
		f := strings.Fields(sc.Text())
		if line == 0 || len(f) == 0 {
			continue
		}
		if len(f) != 6 {
			return nil, fmt.Errorf("line %d: %q", line+1, sc.Text())
		}
		if idx, err := strconv.Atoi(f[0]); err != nil || idx != ifindex {
			continue
		}
		g, err1 := hexAddr(f[2])
		s, err2 := hexAddr(f[3])
		inc, err3 := strconv.Atoi(f[4])
		exc, err4 := strconv.Atoi(f[5])
		if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
			return nil, fmt.Errorf("line %d: %q", line+1, sc.Text())
		}
		out[g] = append(out[g], sourceCount{src: s, inc: inc, exc: exc})
	}
	return out, sc.Err()
}

func hexAddr(s string) (netip.Addr, error) {
	v, err := strconv.ParseUint(strings.TrimPrefix(s, "0x"), 16, 32)
	if err != nil {
		return netip.Addr{}, err
	}
	var a [4]byte
	binary.BigEndian.PutUint32(a[:], uint32(v))
	return netip.AddrFrom4(a), nil
}
