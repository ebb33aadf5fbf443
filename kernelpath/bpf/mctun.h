/* SPDX-License-Identifier: MIT OR GPL-2.0 */
/*
 * What the kernel path's two sides share: the wire format, the inner packet's checks, and
 * the small helpers both use. The vocabulary is mctun's (datapath/doc.go): group, member,
 * source, sender side, receiver side, tunnel packet, inner packet.
 *
 * A tunnel packet on the wire, as both paths write it (RFC 8086 GRE-in-UDP, RFC 2890 key
 * and sequence number):
 *
 *	| Ethernet 14 | outer IPv4 20 | UDP 8 | GRE 12: 0x3000 0x0800 key seq | inner IPv4 ... |
 *
 * The outer IPv4 header has no options and no DF; the UDP checksum is 0 (RFC 8086 allows it
 * over IPv4; the inner packet carries its own checksums).
 */
#ifndef MCTUN_H
#define MCTUN_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define ETH_HLEN_ 14
#define IP_HLEN 20
#define UDP_HLEN 8
#define GRE_HLEN 12
/* ENCAP_LEN is what a tunnel packet adds in front of its inner packet. */
#define ENCAP_LEN (IP_HLEN + UDP_HLEN + GRE_HLEN)

#define GRE_FLAGS_KS 0x3000 /* key and sequence number present, version 0 */
#define IP_MF 0x2000
#define IP_OFFSET 0x1fff

/*
 * Drop reasons, with the names and meanings of datapath.Reason (datapath/drops.go); the Go
 * side checks that every name here is one of those.
 */
enum reason {
	REASON_UNKNOWN_SOURCE,
	REASON_BAD_TUNNEL_HEADER,
	REASON_WRONG_KEY,
	REASON_NOT_IPV4,
	REASON_MALFORMED,
	REASON_IP_OPTIONS,
	REASON_BAD_FRAGMENT,
	REASON_NOT_MULTICAST,
	REASON_BAD_SOURCE,
	REASON_IGMP,
	REASON_GROUP_NOT_ALLOWED,
	REASON_TOO_BIG,
	REASON_TUN_WRITE_FAILED,
	REASON_COUNT,
};

/*
 * mctun dump: while a dump runs, each program copies every inner packet it forwards into its
 * dump_events (a perf event array of its own), behind a dump_meta.
 */
struct dump_meta {
	__be32 group;
	__u16 len;   /* the inner packet's */
	__u8 offset; /* where it starts in the copy */
	__u8 side;   /* 0: sent, 1: delivered */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} dump_events SEC(".maps");

static __always_inline __u16 csum_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* ip_csum is the checksum of a 20-byte IPv4 header: 0 when the header is intact. */
static __always_inline __u16 ip_csum(const void *hdr)
{
	const __u16 *w = hdr;
	__u32 sum = 0;

#pragma unroll
	for (int i = 0; i < IP_HLEN / 2; i++)
		sum += w[i];
	return csum_fold(sum);
}

/* csum_replace4 updates a checksum for a 32-bit word changed from old to new (RFC 1624). */
static __always_inline __u16 csum_replace4(__u16 check, __be32 old, __be32 new)
{
	__u32 sum = (__u16)~check;

	sum += (__u16)~old + (__u16)~(old >> 16);
	sum += (new & 0xffff) + (new >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

static __always_inline int is_multicast(__be32 a)
{
	return (bpf_ntohl(a) & 0xf0000000) == 0xe0000000;
}

/* is_host_addr mirrors encap.isHostAddr: a source address a host may send from. */
static __always_inline int is_host_addr(__be32 a)
{
	__u32 h = bpf_ntohl(a);

	return h != 0 && !is_multicast(a) && (h >> 24) != 127 && h != 0xffffffff;
}

/* MAX_IHL is the longest IPv4 header: 15 words. */
#define MAX_IHL 60

/* hdr_csum is the checksum of an IPv4 header of ihl bytes, at most room: 0 when intact. */
static __always_inline __u16 hdr_csum(const __u8 *hdr, __u32 ihl, const __u32 room)
{
	const __u16 *w = (const __u16 *)hdr;
	__u32 sum = 0;

	for (int i = 0; i < room / 2; i++) {
		if (i * 2 >= ihl)
			break;
		sum += w[i];
	}
	return csum_fold(sum);
}

/*
 * inner_check is encap.CheckInner, check for check in the same order: it returns
 * REASON_COUNT when the inner packet is whole and sane, else why not. len is the inner
 * packet's length and hdr its first min(len, room) bytes, 2-byte aligned; room is MAX_IHL, or
 * IP_HLEN for a caller that knows the header has no options.
 */
static __always_inline int inner_check(const __u8 *hdr, __u32 len, const __u32 room)
{
	const struct iphdr *ip = (const struct iphdr *)hdr;
	__u32 ihl, off, payload;
	__u16 frag;

	if (len < 1 || ip->version != 4)
		return REASON_NOT_IPV4;
	if (len < IP_HLEN)
		return REASON_MALFORMED;
	ihl = ip->ihl * 4;
	if (ihl < IP_HLEN || ihl > len || ihl > room || hdr_csum(hdr, ihl, room) != 0)
		return REASON_MALFORMED;
	if (bpf_ntohs(ip->tot_len) != len)
		return REASON_MALFORMED;
	if (ihl != IP_HLEN)
		return REASON_IP_OPTIONS;
	if (!is_multicast(ip->daddr))
		return REASON_NOT_MULTICAST;
	if (!is_host_addr(ip->saddr))
		return REASON_BAD_SOURCE;
	if (ip->protocol == IPPROTO_IGMP)
		return REASON_IGMP;
	frag = bpf_ntohs(ip->frag_off);
	off = (__u32)(frag & IP_OFFSET) * 8;
	payload = len - IP_HLEN;
	if ((frag & IP_MF) || off) {
		if (((frag & IP_MF) && payload % 8) || off + payload > 65535 - IP_HLEN ||
		    (off == 0 && ip->protocol == IPPROTO_UDP && payload < UDP_HLEN))
			return REASON_BAD_FRAGMENT;
	}
	return REASON_COUNT;
}

/* is_fragment reports whether an IPv4 header is a fragment's. */
static __always_inline int is_fragment(const struct iphdr *ip)
{
	return (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET)) != 0;
}

#endif
