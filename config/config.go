// Package config loads and validates mctun's TOML configuration.
//
// The configuration is two files. The config file (default /etc/mctun/mctun.toml) is the
// operator's, and mctun never writes it. The managed file next to it (mctun.managed.toml, see
// ManagedPath) belongs to mctun's group, member and source commands: it holds only groups and
// sources, and may be missing. The effective configuration is their union.
//
// Decoding is strict (an unknown key is an error) and validation reports every problem at once,
// each naming the file, the line where known, the key and the value:
//
//	mctun.toml:9: source.group[0].address: 10.1.1.1 is not a multicast address
package config

import (
	"net/netip"
	"strconv"
)

// Defaults for the keys a config may leave out.
const (
	DefaultPath      = "/etc/mctun/mctun.toml"
	DefaultPort      = 4754 // IANA's GRE-in-UDP port (RFC 8086)
	DefaultTUN       = "mctun0"
	DefaultMTU       = 1500
	DefaultDatapath  = DatapathAuto
	DefaultLogFormat = "text"
	DefaultLogLevel  = "info"
)

// Config is a validated configuration with every default filled in: the effective
// configuration, the config file and its managed file together.
type Config struct {
	Path        string // the config file it was loaded from, as given
	ManagedPath string // the managed file, ManagedPath(Path), whether or not it exists

	Key  uint32 // GRE key: the mctun network id; both sides must agree
	Port uint16 // UDP port of the tunnel

	// SecretFile, when set, turns on the authenticated tunnel: the pre-shared secret every
	// tunnel packet is authenticated with (read with ReadSecret). Encrypt encrypts the inner
	// packets too, and refuses ones that are not.
	SecretFile string
	Encrypt    bool
	// Datapath is where the plain tunnel's packets are forwarded: DatapathAuto, DatapathKernel
	// or DatapathUser.
	Datapath string
	Log      Log
	Metrics  Metrics

	Source *Source // nil when the host has no [source] table
	Member *Member // nil when the host has no [member] table
}

// The values of the datapath key.
const (
	// DatapathAuto forwards the plain tunnel in the kernel where the host allows it, and in
	// user space otherwise (and always with a secret).
	DatapathAuto = "auto"
	// DatapathKernel requires the kernel path: mctun does not start without it.
	DatapathKernel = "kernel"
	// DatapathUser forwards every packet in user space.
	DatapathUser = "user"
)

// Log is the [log] table: how the daemon logs.
type Log struct {
	Format string // "text" or "json"
	File   string // an absolute path to append to; "" means stderr
	Level  string // "debug", "info", "warn" or "error"
}

// Metrics is the [metrics] table: the Prometheus endpoint.
type Metrics struct {
	// Listen is where the HTTP endpoint that serves /metrics listens, "ip:port". The zero
	// value, the default, turns the endpoint off.
	Listen netip.AddrPort
	// PerMember adds series for each member of each group on the sender side: three per
	// member. Off by default, so that the number of series follows the groups, not the
	// members (a source may have 65,536 of them).
	PerMember bool
}

// Enabled reports whether the endpoint is on.
func (m Metrics) Enabled() bool { return m.Listen.IsValid() }

// Source is the sender side's configuration.
type Source struct {
	// Interface to capture on. Empty means: the interface that carries 224.0.0.0/4, else the
	// default route's interface, chosen when mctun starts.
	Interface string
	// JoinFrom are the prefixes whose hosts may join groups themselves, by reporting what
	// their applications joined (dynamic membership). Empty: members are the static ones only.
	JoinFrom []netip.Prefix
	// Groups, the config file's in file order, then the managed file's. May be empty: the
	// commands can remove every group.
	Groups []Group
}

// MayJoin reports whether the host at a may join groups: whether one of joinFrom (a source's
// JoinFrom) holds it.
func MayJoin(joinFrom []netip.Prefix, a netip.Addr) bool {
	for _, p := range joinFrom {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Group is one [[source.group]] entry.
type Group struct {
	Address netip.Addr // a multicast address, 224.0.0.0/4
	Port    uint16     // the applications' UDP destination port; 0 means every packet to Address
	// Members, deduplicated, in file order; an entry without a port gets Config.Port. Empty
	// only with Source.JoinFrom: a group declared for the members that join it to use.
	Members []netip.AddrPort
	Origin  Origin // where the group is defined: its [[source.group]] line
}

// Member is the receiver side's configuration.
type Member struct {
	TUN string // TUN device name
	MTU int    // TUN MTU; larger inner packets are dropped
	// Sources: tunnel packets are accepted only from these addresses. The config file's in file
	// order, then the managed file's. May be empty: the commands can remove every source.
	Sources []netip.Addr
	// SourceOrigins[i] is where Sources[i] is listed. Load and Merge set one for each source;
	// a Member built by hand may leave it nil.
	SourceOrigins []Origin
	Groups        []netip.Addr // groups that may be delivered; empty means any multicast group
}

// Origin is where a group or source is defined.
type Origin struct {
	File    string // the file's name as given to Load or Merge
	Line    int    // 1-based; 0 when not known
	Managed bool   // File is the managed file, which mctun's commands may change
}

// String returns "FILE:LINE", or "FILE" when the line is not known.
func (o Origin) String() string {
	if o.Line <= 0 {
		return o.File
	}
	return o.File + ":" + strconv.Itoa(o.Line)
}
