// Package config loads and validates mctun's TOML configuration.
//
// Decoding is strict (an unknown key is an error) and validation reports every problem at once,
// each naming the file, the line where known, the key and the value:
//
//	mctun.toml:9: source.group[0].address: 10.1.1.1 is not a multicast address
package config

import "net/netip"

// Defaults for the keys a config may leave out.
const (
	DefaultPath = "/etc/mctun/mctun.toml"
	DefaultPort = 4754 // IANA's GRE-in-UDP port (RFC 8086)
	DefaultTUN  = "mctun0"
	DefaultMTU  = 1500
)

// Config is a validated configuration with every default filled in.
type Config struct {
	Path string // the file it was loaded from, as given

	Key  uint32 // GRE key: the mctun network id; both sides must agree
	Port uint16 // UDP port of the tunnel

	Source *Source // nil when the host has no [source] table
	Member *Member // nil when the host has no [member] table
}

// Source is the sender side's configuration.
type Source struct {
	// Interface to capture on. Empty means: the interface that carries 224.0.0.0/4, else the
	// default route's interface, chosen when mctun starts.
	Interface string
	Groups    []Group
}

// Group is one [[source.group]] entry.
type Group struct {
	Address netip.Addr // a multicast address, 224.0.0.0/4
	Port    uint16     // the applications' UDP destination port; 0 means every packet to Address
	// Members, deduplicated, in file order; an entry without a port gets Config.Port.
	Members []netip.AddrPort
}

// Member is the receiver side's configuration.
type Member struct {
	TUN     string       // TUN device name
	MTU     int          // TUN MTU; larger inner packets are dropped
	Sources []netip.Addr // tunnel packets are accepted only from these addresses
	Groups  []netip.Addr // groups that may be delivered; empty means any multicast group
}
