// Package membership is a source's table of dynamic members: the member hosts that reported
// (igmp) which groups their applications joined, each with its source filter, when it joined
// and when it expires. It applies reports record by record, as an IGMPv3 router with explicit
// tracking would (RFC 3376 section 6.4, per member host rather than per link), expires a
// member that missed three report intervals, and holds every member and group to a limit, so
// that what hostile reports can cost is bounded.
//
// The table is pure: time comes from an injected clock, and nothing here touches the network
// or the packet path. The daemon turns the table and the config's static groups into the
// effective groups (Effective) and hands them to the sender side through the same
// Configure call a reload uses.
package membership
