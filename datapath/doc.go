// Package datapath owns mctun's two packet paths.
//
// Vocabulary, used with these meanings everywhere in mctun and nowhere with synonyms:
//
//   - group: an IPv4 multicast address (224.0.0.0/4). On the sender side a configured group
//     may also name one UDP destination port; it then covers only the datagrams to that port.
//   - source: a host whose applications send multicast. Its mctun runs the sender side.
//   - member: a host whose applications receive multicast. Its mctun runs the receiver side.
//     A host can be both.
//   - sender side: capture outgoing multicast, encapsulate each inner packet, and fan it out
//     by unicast UDP to every member of its group (sender.go).
//   - receiver side: receive tunnel packets, decapsulate, validate, and write the inner packet
//     into the TUN device so the host delivers it as native multicast (receiver.go).
//   - inner packet: the original IPv4 multicast packet, byte for byte, as the source's
//     application sent it.
//   - tunnel packet: the UDP payload exchanged between mctun instances: a GRE header with key
//     and sequence number (RFC 8086 GRE-in-UDP) followed by the inner packet.
//   - report: an IGMPv3 membership report (package igmp) that a member sends its sources as
//     the inner packet of a tunnel packet, saying which groups its applications joined. A
//     source with source.join_from takes reports (reports.go) and makes the member a dynamic
//     member of those groups, beside the static members its config lists.
//
// The package takes its edges through constructors (capture.Source, encap.Conn, tun.Device),
// so the whole sender-to-receiver path runs in memory under test with the fakes of
// capture/capturetest, encap/encaptest and tun/tuntest.
package datapath
