package datapath

import (
	"sync/atomic"

	"mctun/encap"
)

// Reason is why a packet was dropped. Both sides count drops by reason; neither logs them one
// by one.
type Reason uint8

// Drop reasons. The sender side uses those about inner packets plus NoGroup and TooBig; the
// receiver side uses all but NoGroup.
const (
	UnknownSource    Reason = iota // receiver: tunnel packet from an address not in member.sources
	BadTunnelHeader                // receiver: not a GRE header of the form mctun sends
	WrongKey                       // receiver: GRE key differs from ours
	NotIPv4                        // inner packet is not IPv4
	Malformed                      // inner IPv4 header broken, or its length lies
	IPOptions                      // inner packet carries IP options
	BadFragment                    // inner fragment that no sane datagram has
	NotMulticast                   // inner destination is not a multicast group
	BadSource                      // inner source is not a unicast host address
	IGMP                           // IGMP is host signalling, never forwarded
	NoGroup                        // sender: no configured group matches
	GroupNotAllowed                // receiver: group not in member.groups
	TooBig                         // sender: tunnel packet would exceed 64 KiB; receiver: inner packet over the TUN MTU
	TUNWriteFailed                 // receiver: the kernel refused the packet
	NotAuthenticated               // receiver: the plain form, where a secret requires the authenticated one
	AuthFailed                     // receiver: the tag does not match: forged, corrupted, or another secret
	Replayed                       // receiver: a counter seen before, or a packet of an earlier run of its sender
	NotEncrypted                   // receiver: authenticated but not encrypted, where encrypt = true
	numReasons
)

var reasonNames = [numReasons]string{
	UnknownSource:    "unknown_source",
	BadTunnelHeader:  "bad_tunnel_header",
	WrongKey:         "wrong_key",
	NotIPv4:          "not_ipv4",
	Malformed:        "malformed",
	IPOptions:        "ip_options",
	BadFragment:      "bad_fragment",
	NotMulticast:     "not_multicast",
	BadSource:        "bad_source",
	IGMP:             "igmp",
	NoGroup:          "no_group",
	GroupNotAllowed:  "group_not_allowed",
	TooBig:           "too_big",
	TUNWriteFailed:   "tun_write_failed",
	NotAuthenticated: "not_authenticated",
	AuthFailed:       "auth_failed",
	Replayed:         "replayed",
	NotEncrypted:     "not_encrypted",
}

func (r Reason) String() string { return reasonNames[r] }

// The reasons each side counts, and shows.
var (
	senderReasons   = []Reason{NotIPv4, Malformed, IPOptions, BadFragment, NotMulticast, BadSource, IGMP, NoGroup, TooBig}
	receiverReasons = func() (rs []Reason) {
		for r := range numReasons {
			if r != NoGroup {
				rs = append(rs, r)
			}
		}
		return rs
	}()
)

// openReason maps encap.Opener.Open's errors, which it returns unwrapped, to drop reasons.
func openReason(err error) Reason {
	switch err {
	case encap.ErrNotAuthenticated:
		return NotAuthenticated
	case encap.ErrAuthFailed:
		return AuthFailed
	case encap.ErrReplay:
		return Replayed
	case encap.ErrNotEncrypted:
		return NotEncrypted
	default: // ErrTruncated, ErrAuthFormat
		return BadTunnelHeader
	}
}

// InnerReason maps encap.CheckInner's errors, which it returns unwrapped, to drop reasons.
func InnerReason(err error) Reason {
	switch err {
	case encap.ErrNotIPv4:
		return NotIPv4
	case encap.ErrOptions:
		return IPOptions
	case encap.ErrFragment:
		return BadFragment
	case encap.ErrNotMulticast:
		return NotMulticast
	case encap.ErrSource:
		return BadSource
	case encap.ErrIGMP:
		return IGMP
	default: // ErrMalformed, ErrLength
		return Malformed
	}
}

// Drops counts dropped packets by reason. The zero value is ready; it is safe for concurrent
// use.
type Drops [numReasons]atomic.Uint64

// Add counts one drop.
func (d *Drops) Add(r Reason) { d[r].Add(1) }

// Snapshot returns the counts of the given reasons, by name.
func (d *Drops) Snapshot(reasons ...Reason) map[string]uint64 {
	m := make(map[string]uint64, len(reasons))
	for _, r := range reasons {
		m[r.String()] = d[r].Load()
	}
	return m
}
