// Package igmp is how a member tells its sources which groups its applications joined: IGMPv3
// membership reports (RFC 3376), built and parsed as whole IPv4 packets, and the kernel's
// own membership table (/proc/net/igmp and /proc/net/mcfilter) read into the groups to
// report.
//
// A report travels as the inner packet of a tunnel packet, like any other (see encap), so
// that tshark decodes it as IGMPv3 inside GRE with no options. Both ends are pure functions:
// the member builds what it reads from the kernel, the source parses what arrives.
package igmp
