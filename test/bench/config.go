package main

import (
	"fmt"
	"net/netip"
	"strings"
)

// The stream every system carries: what the source's application sends, and what the
// members' applications join.
var (
	group     = netip.MustParseAddr("224.1.2.3")
	groupPort = 65535
)

// The VXLAN reference: VNI, UDP port and the overlay subnet, whose host i has .<i+1>.
const (
	vxlanDev  = "vx0"
	vxlanVNI  = 42
	vxlanPort = 4789
)

var overlayNet = netip.MustParsePrefix("198.18.200.0/24")

// overlayAddr is host i's address on the VXLAN overlay, 198.18.200.<i+1>/24.
func overlayAddr(i int) netip.Prefix {
	b := overlayNet.Addr().As4()
	b[3] = byte(i + 1)
	return netip.PrefixFrom(netip.AddrFrom4(b), overlayNet.Bits())
}

// mctunGroup is one [[source.group]] of a source config.
type mctunGroup struct {
	Address netip.Addr
	Port    int // 0: every packet to the group
	Members []netip.Addr
}

// datapathLine is the top-level key that picks mctun's packet path: "user" or "kernel"; none
// for "", the base binary's config.
func datapathLine(datapath string) string {
	if datapath == "" {
		return ""
	}
	return fmt.Sprintf("datapath = %q\n\n", datapath)
}

// sourceConfig is the TOML of a source host that sends the given groups, on datapath.
func sourceConfig(datapath string, groups []mctunGroup) string {
	var b strings.Builder
	b.WriteString("# the source: its applications send; mctun unicasts each packet to every member\n")
	b.WriteString(datapathLine(datapath) + "[source]\n")
	for _, g := range groups {
		fmt.Fprintf(&b, "\n[[source.group]]\naddress = %q\n", g.Address)
		if g.Port != 0 {
			fmt.Fprintf(&b, "port    = %d\n", g.Port)
		}
		b.WriteString("members = [")
		for i, m := range g.Members {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%q", m)
		}
		b.WriteString("]\n")
	}
	return b.String()
}

// memberConfig is the TOML of a member host that accepts tunnel packets from sources, on
// datapath.
func memberConfig(datapath string, sources ...netip.Addr) string {
	var b strings.Builder
	b.WriteString("# a member: its applications receive what mctun writes into its TUN\n")
	b.WriteString(datapathLine(datapath) + "[member]\nsources = [")
	for i, s := range sources {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", s)
	}
	b.WriteString("]\n")
	return b.String()
}

// vxlanCommands are the commands that make host i (at self) one end of the VXLAN reference:
// a VXLAN device that replicates every frame it cannot place (all of them: no learning, and
// only all-zeros FDB entries) to each of peers, an overlay address, and the multicast route,
// so that applications send into the device and join groups on it.
func vxlanCommands(i int, self netip.Addr, peers []netip.Addr) [][]string {
	cmds := [][]string{{"ip", "link", "add", vxlanDev, "type", "vxlan", "id", fmt.Sprint(vxlanVNI),
		"dstport", fmt.Sprint(vxlanPort), "local", self.String(), "nolearning"}}
	for _, p := range peers {
		cmds = append(cmds, []string{"bridge", "fdb", "append", "00:00:00:00:00:00", "dev", vxlanDev, "dst", p.String()})
	}
	return append(cmds,
		[]string{"ip", "address", "add", overlayAddr(i).String(), "dev", vxlanDev},
		[]string{"ip", "link", "set", vxlanDev, "up"},
		[]string{"ip", "route", "add", "224.0.0.0/4", "dev", vxlanDev},
	)
}

// bigMember is the k-th made-up member address of a big config: 198.19.0.1 upward through
// 198.19.255.255, then 198.18.128.0 upward, all inside 198.18.0.0/15 and clear of the
// topology's 198.18.<i+1>.0/24 and the overlay. Nothing answers at them: the router drops
// what it cannot route. k must be below bigMemberMax.
func bigMember(k int) netip.Addr {
	if k < 0 || k >= bigMemberMax {
		panic(fmt.Sprintf("bigMember(%d): out of range", k))
	}
	var base uint32 = 198<<24 | 19<<16 | 1
	if k >= 1<<16-1 {
		base, k = 198<<24|18<<16|128<<8, k-(1<<16-1)
	}
	v := base + uint32(k)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// bigMemberMax is how many addresses bigMember has.
const bigMemberMax = 1<<16 - 1 + 1<<15

// bigGroups makes a big source config: groups groups (224.2.<g/256>.<g%256>, port 65535) of
// perGroup members each, all made up except the first member of group 0, which is real, so
// a stream to group 0 shows the config works.
func bigGroups(groups, perGroup int, real netip.Addr) ([]mctunGroup, error) {
	if groups < 1 || groups > 1<<16 || perGroup < 1 || groups*perGroup-1 > bigMemberMax {
		return nil, fmt.Errorf("big config %d groups x %d members: too big for the made-up addresses", groups, perGroup)
	}
	gs := make([]mctunGroup, groups)
	k := 0
	for g := range gs {
		gs[g] = mctunGroup{Address: netip.AddrFrom4([4]byte{224, 2, byte(g >> 8), byte(g)}), Port: groupPort}
		for j := range perGroup {
			if g == 0 && j == 0 {
				gs[g].Members = append(gs[g].Members, real)
				continue
			}
			gs[g].Members = append(gs[g].Members, bigMember(k))
			k++
		}
	}
	return gs, nil
}
