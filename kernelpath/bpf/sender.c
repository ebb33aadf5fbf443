// SPDX-License-Identifier: MIT OR GPL-2.0
/*
 * The sender side in the kernel: TC egress programs on the source interface (mctun_egress)
 * and, on a host that is a member too, on the TUN its own multicast leaves by
 * (mctun_tun_egress).

	classify -> encapsulate -> fan out to members

1. classify: an IPv4 packet to a multicast group that a group of the table takes, by its
   address and UDP destination port (groups). Anything else goes on unchanged (TC_ACT_UNSPEC:
   to the next program, if any, then on); the clones this program sends, unicast, pass here
   again and leave at once. Multicast of no group goes on too, and user space gets a copy to
   count (hand_off).
2. check: the inner packet must be one the kernel path can forward in place: a whole,
   sane IPv4 packet (the checks of encap.CheckInner), not a fragment, not GSO, whose tunnel
   packet fits the source interface's MTU, of one group only, whose members' next hops are
   all known (ready). Anything else goes on unchanged, and user space gets a copy to forward
   (hand_off; on the TUN, its reader takes the packet itself), counted by why (sender_paths).
3. encapsulate: take the group's next sequence number (group_seq, which the user-space
   sender shares), and push the outer IPv4, UDP and GRE headers in front of the inner packet.
4. fan out: for every member but the last, write its address, port and next hop's MAC and
   send a clone (bpf_clone_redirect); the last member gets the packet itself. A packet's
   copies are sent while the kernel holds its softirqs back, and a device without a queue (a
   veth) takes them all into the CPU's backlog at once: so one pass sends at most
   config.pass copies, and a group with more members sends the packet round again
   (mctun_fan_on), once the backlog has drained, for the next pass.

Counters are per group (group_stats) and per member (member_stats), read by user space when
asked. A dump (mctun dump) gets each inner packet sent, through dump_events.
 */
#include "mctun.h"

char _license[] SEC("license") = "Dual MIT/GPL";

/* Capacities. Groups beyond MAX_GROUPS, and members beyond what MAX_FANOUT leaves room for,
 * are forwarded by user space. */
#define MAX_GROUPS 8192
#define MAX_FANOUT (1 << 18)
#define MAX_MEMBERS (1 << 17)
/* A group's members, one bpf_loop iteration each. */
#define MAX_GROUP_MEMBERS (1 << 16)

struct sender_config {
	__u32 key;     /* GRE key, host order */
	__be32 saddr;  /* outer source: the source interface's address */
	__be16 sport;  /* outer UDP source port: the user-space sender's socket's */
	__u16 mtu;     /* the source interface's MTU */
	__u32 ifindex; /* the source interface */
	__u8 smac[6];  /* its MAC */
	__u8 dump;     /* a dump runs: copy every inner packet sent to dump_events */
	__u8 pad;
	__u32 pass;    /* the most copies of a packet one pass sends (see fan_out) */
	__u32 handoff; /* the hand-off TUN, where user space reads what it forwards */
};

struct group_key {
	__be32 addr;
	__be16 port; /* 0: the group that takes every packet to addr */
	__u16 pad;
};

struct group_route {
	__u32 slot;  /* index of its counters (group_stats) and sequence number (group_seq) */
	__u32 first; /* its members are fanout[first, first+count) */
	__u32 count;
	/* ... and after them, fanout[first+count, first+count+unreachable): members with no
	 * route, as the user-space sender finds too; each packet counts a send error to each. */
	__u16 unreachable;
	__u8 ready; /* READY, or why the kernel does not forward the group */
	__u8 pad;
};

/* group_route.ready */
enum route_state {
	WAIT_NEXT_HOP = 0, /* a member's next hop is not known yet */
	READY = 1,         /* every other member's next hop is known: the kernel forwards the group */
};

struct fanout_entry {
	__be32 daddr;
	__be16 dport;
	__u8 dmac[6];  /* the next hop's MAC */
	__u32 counter; /* index of the member's counters (member_stats) */
};

struct group_count {
	__u64 packets; /* sent on by the kernel */
	__u64 bytes;   /* their inner packets' */
	__u64 errors;  /* sends to its members that failed, all members together */
};

struct member_count {
	__u64 packets;
	__u64 bytes; /* tunnel packets' bytes, GRE header included, as user space counts */
	__u64 errors;
};

enum sender_path {
	SENT_KERNEL,     /* encapsulated and fanned out here */
	PUNT_NOT_READY,  /* a member's next hop is not known yet */
	PUNT_TOO_BIG,    /* its tunnel packet would need fragmenting */
	PUNT_FRAGMENT,   /* an inner fragment: user space keeps a datagram's fragments together */
	PUNT_GSO,        /* a GSO packet, many datagrams at once */
	PUNT_TWO_GROUPS, /* its port's group and its address's both take it */
	PUNT_CHECK,      /* it fails a check of the inner packet: user space counts why */
	HANDOFF_DROPPED, /* a copy for user space that the hand-off TUN did not take: its queue was full */
	SENDER_PATH_COUNT,
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sender_config);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_GROUPS);
	__type(key, struct group_key);
	__type(value, struct group_route);
} groups SEC(".maps");

/* Shared with user space, which maps it and takes numbers with atomic adds too. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, MAX_GROUPS);
	__type(key, __u32);
	__type(value, __u32);
} group_seq SEC(".maps");

/* Counters user space reads from memory it maps, as the programs update them: atomically.
 * (The kernel maps the whole array at once: it all counts in mctun's memory.) */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, MAX_GROUPS);
	__type(key, __u32);
	__type(value, struct group_count);
} group_stats SEC(".maps");

/* Written by user space into regions no group points at, then published by a group's
 * route: an entry a program may read is never written. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_FANOUT);
	__type(key, __u32);
	__type(value, struct fanout_entry);
} fanout SEC(".maps");

/* Read with system calls: mapped, its 3 MiB would all count in mctun's memory. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_MEMBERS);
	__type(key, __u32);
	__type(value, struct member_count);
} member_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SENDER_PATH_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} sender_paths SEC(".maps");

/* Go mirrors of the types user space reads or writes (bpf2go -type). */
const struct dump_meta *unused_dump_meta __attribute__((unused));
const enum sender_path *unused_sender_path __attribute__((unused));
const enum route_state *unused_route_state __attribute__((unused));

static __always_inline void count_path(__u32 path)
{
	__u64 *n = bpf_map_lookup_elem(&sender_paths, &path);

	if (n)
		*n += 1;
}

/* The outer headers of a tunnel packet, as they are pushed. */
struct outer {
	struct iphdr ip;
	struct udphdr udp;
	__be16 gre_flags;
	__be16 gre_proto;
	__be32 gre_key;
	__be32 gre_seq;
};

/* What the fan-out loop needs. */
struct fan {
	struct __sk_buff *skb;
	__u32 slot;
	__u32 first;
	__u32 tunnel_len; /* GRE header and inner packet */
	__be32 daddr;     /* the outer destination now in the packet */
	__u32 ifindex;
};

/* outer_of returns a tunnel packet's outer headers behind its Ethernet header (*eth), or 0
 * when the packet is too short to hold them. */
static __always_inline struct outer *outer_of(struct __sk_buff *skb, struct ethhdr **eth)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct outer *o = data + ETH_HLEN_;

	if ((void *)(o + 1) > data_end)
		return 0;
	*eth = data;
	return o;
}

/* set_member points the tunnel packet at member m: its next hop's MAC, its address (with
 * the IPv4 checksum brought up to date) and its UDP port. */
static __always_inline int set_member(struct fan *f, const struct fanout_entry *m)
{
	struct ethhdr *eth;
	struct outer *o = outer_of(f->skb, &eth);

	if (!o)
		return -1;
	__builtin_memcpy(eth->h_dest, m->dmac, ETH_ALEN);
	o->ip.check = csum_replace4(o->ip.check, f->daddr, m->daddr);
	o->ip.daddr = m->daddr;
	f->daddr = m->daddr;
	o->udp.dest = m->dport;
	return 0;
}

static __always_inline void count_member(const struct fanout_entry *m, __u32 slot, __u32 bytes, int ok)
{
	struct member_count *c = bpf_map_lookup_elem(&member_stats, &m->counter);
	struct group_count *gc;

	if (ok) {
		if (c) {
			__sync_fetch_and_add(&c->packets, 1);
			__sync_fetch_and_add(&c->bytes, bytes);
		}
		return;
	}
	if (c)
		__sync_fetch_and_add(&c->errors, 1);
	gc = bpf_map_lookup_elem(&group_stats, &slot);
	if (gc)
		__sync_fetch_and_add(&gc->errors, 1);
}

/* fail_one counts a send error to unreachable member i of the group (bpf_loop's callback). */
static long fail_one(__u32 i, void *ctx)
{
	struct fan *f = ctx;
	__u32 idx = f->first + i;
	struct fanout_entry *m = bpf_map_lookup_elem(&fanout, &idx);

	if (m)
		count_member(m, f->slot, 0, 0);
	return 0;
}

/* fan_one sends a clone to member i of the group (bpf_loop's callback). */
static long fan_one(__u32 i, void *ctx)
{
	struct fan *f = ctx;
	__u32 idx = f->first + i;
	struct fanout_entry *m = bpf_map_lookup_elem(&fanout, &idx);

	if (!m)
		return 1; /* cannot be: user space publishes whole regions */
	if (set_member(f, m) < 0)
		return 1;
	count_member(m, f->slot, f->tunnel_len, bpf_clone_redirect(f->skb, f->ifindex, 0) == 0);
	return 0;
}

/*
 * A packet whose group has more members than one pass sends goes round again for the next
 * pass, marked, with the members still to go where the next pass rewrites the outer headers
 * anyway: the Ethernet destination holds FAN_ON_MAC0, the run's next index in fanout (3
 * bytes) and how many are still to go (2); the UDP source port holds the group's slot, and
 * the destination port 0, which no receiver takes, should one see it.
 */
#define FAN_ON_MARK 0x6d63746eu /* "mctn" */
#define FAN_ON_MAC0 0x02        /* a locally administered unicast address */

static __always_inline int stash(struct fan *f, __u32 next, __u32 rest)
{
	struct ethhdr *eth;
	struct outer *o = outer_of(f->skb, &eth);

	if (!o)
		return -1;
	eth->h_dest[0] = FAN_ON_MAC0;
	eth->h_dest[1] = next >> 16;
	eth->h_dest[2] = next >> 8;
	eth->h_dest[3] = next;
	eth->h_dest[4] = rest >> 8;
	eth->h_dest[5] = rest;
	o->udp.source = bpf_htons(f->slot);
	o->udp.dest = 0;
	f->skb->mark = FAN_ON_MARK;
	return 1;
}

/*
 * fan_out is step 4 for the members fanout[f->first, end): a clone to each but the last, and
 * the packet itself aimed at the last, for the caller to send on (0). When more are to go
 * than one pass sends, it sends the pass's clones and leaves the packet marked for the next
 * pass (1): the caller sends it round, into the source interface's ingress, where
 * mctun_fan_on takes it once the backlog has taken this pass's copies in. -1: drop it.
 */
static __always_inline int fan_out(struct fan *f, __u32 end, __u32 pass)
{
	__u32 n = end - f->first, last = end - 1;
	struct fanout_entry *m;

	/* n is at most MAX_GROUP_MEMBERS (classify), so what a pass leaves fits stash's 2 bytes */
	if (pass && n > pass) {
		bpf_loop(pass, fan_one, f, 0);
		return stash(f, f->first + pass, n - pass);
	}
	if (n > 1)
		bpf_loop(n - 1, fan_one, f, 0);
	m = bpf_map_lookup_elem(&fanout, &last);
	if (!m || set_member(f, m) < 0)
		return -1;
	count_member(m, f->slot, f->tunnel_len, 1);
	return 0;
}

/* onward is the verdict on a packet fan_out left: on to the last member, as it is or
 * (redirect) redirected out of the source interface, or round again, or dropped. */
static __always_inline long onward(int fanned, __u32 ifindex, int redirect)
{
	if (fanned < 0)
		return TC_ACT_SHOT;
	if (fanned > 0)
		return bpf_redirect(ifindex, BPF_F_INGRESS);
	return redirect ? bpf_redirect(ifindex, 0) : TC_ACT_UNSPEC;
}

/* multicast_ip returns the IPv4 header at offset l2 of an IPv4 multicast packet, else 0. */
static __always_inline struct iphdr *multicast_ip(struct __sk_buff *skb, const __u32 l2)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + l2;

	if ((void *)(ip + 1) > data_end || ip->version != 4 || !is_multicast(ip->daddr))
		return 0;
	return ip;
}

/*
 * hand_off lets a packet from the source interface that the kernel does not forward go on,
 * and gives user space a copy of it when it is what the user-space path's capture takes,
 * outgoing IPv4 multicast but IGMP: a copy sent into the hand-off TUN, whose reader is the
 * user-space sender. So user space forwards the slow cases and counts the packets of no group,
 * and never sees the tunnel packets the kernel sends.
 */
static __always_inline long hand_off(struct __sk_buff *skb, const struct sender_config *cfg,
				     const struct iphdr *ip)
{
	if (ip->protocol != IPPROTO_IGMP && bpf_clone_redirect(skb, cfg->handoff, 0))
		count_path(HANDOFF_DROPPED);
	return TC_ACT_UNSPEC;
}

/*
 * classify is steps 1 and 2 for a multicast packet whose inner IPv4 header, ip, is at offset
 * l2 (14 behind an Ethernet header, 0 on the TUN). It returns 1 when the kernel forwards the
 * packet, to the group whose route it copies into *g, or 0 when the packet goes on unchanged
 * (to user space, counted by why, if a group takes it). *len is the inner packet's length.
 *
 * The route is copied the moment it is found: an element of groups that user space replaces
 * becomes the hash table's spare, which the next update on that CPU writes at once, with no
 * grace period, so a pointer kept across the helpers of send could read another group's
 * route by then.
 */
static __always_inline int classify(struct __sk_buff *skb, const struct sender_config *cfg, struct iphdr *ip,
				    const __u32 l2, struct group_route *g, __u32 *len)
{
	void *data_end = (void *)(long)skb->data_end;
	struct udphdr *udp = (void *)(ip + 1);
	struct group_route *found;
	struct group_key k = {};
	int n = 0;

	__builtin_memset(g, 0, sizeof(*g)); /* else clang may carry an uninitialised half in a register */
	/* 1. classify: the port's group, or the address's */
	k.addr = ip->daddr;
	found = bpf_map_lookup_elem(&groups, &k);
	if (found) {
		*g = *found;
		n++;
	}
	if (ip->protocol == IPPROTO_UDP && !is_fragment(ip) && ip->ihl == 5 && (void *)(udp + 1) <= data_end) {
		k.port = udp->dest;
		found = bpf_map_lookup_elem(&groups, &k);
		if (found) {
			*g = *found;
			n++;
		}
	}
	if (n == 0)
		return 0; /* no group: user space counts it */
	if (n == 2) {
		count_path(PUNT_TWO_GROUPS);
		return 0;
	}

	/* 2. check */
	*len = skb->len - l2;
	if (ip->ihl != 5 || inner_check((const __u8 *)ip, *len, IP_HLEN) != REASON_COUNT) {
		count_path(PUNT_CHECK);
		return 0;
	}
	if (is_fragment(ip)) {
		count_path(PUNT_FRAGMENT);
		return 0;
	}
	if (skb->gso_segs > 1) {
		count_path(PUNT_GSO);
		return 0;
	}
	if (*len + ENCAP_LEN > cfg->mtu) {
		count_path(PUNT_TOO_BIG);
		return 0;
	}
	/* ready, with its members within fanout, where fan_out reads them */
	if (g->ready != READY || g->count == 0 || g->count > MAX_GROUP_MEMBERS || g->first >= MAX_FANOUT ||
	    g->count > MAX_FANOUT - g->first) {
		count_path(PUNT_NOT_READY);
		return 0;
	}
	if (cfg->dump) {
		struct dump_meta meta = {.group = ip->daddr, .len = *len, .offset = l2};

		bpf_perf_event_output(skb, &dump_events, BPF_F_CURRENT_CPU | ((__u64)skb->len << 32), &meta,
				      sizeof(meta));
	}
	return 1;
}

/*
 * send is steps 3 and 4 for a packet classify gave group g, with an Ethernet header in front
 * of its inner packet. It returns what fan_out does.
 */
static __always_inline int send(struct __sk_buff *skb, const struct sender_config *cfg, const struct group_route *g,
				__u32 len)
{
	__u32 slot = g->slot;
	struct outer o = {};
	struct fan f = {};
	struct group_count *gc;
	struct ethhdr *eth;
	__u32 *seq;
	int ret;

	/* 3. encapsulate: room first, so that a failure costs no sequence number */
	seq = bpf_map_lookup_elem(&group_seq, &slot);
	if (!seq)
		return -1;
	if (bpf_skb_adjust_room(skb, ENCAP_LEN, BPF_ADJ_ROOM_MAC,
				BPF_F_ADJ_ROOM_FIXED_GSO | BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 |
					BPF_F_ADJ_ROOM_ENCAP_L4_UDP | BPF_F_ADJ_ROOM_ENCAP_L2(GRE_HLEN)))
		return -1;
	o.ip.version = 4;
	o.ip.ihl = 5;
	o.ip.tot_len = bpf_htons(len + ENCAP_LEN);
	o.ip.id = bpf_get_prandom_u32();
	o.ip.ttl = 64;
	o.ip.protocol = IPPROTO_UDP;
	o.ip.saddr = cfg->saddr;
	o.ip.daddr = 0; /* set_member writes each member's */
	o.ip.check = ip_csum(&o.ip);
	o.udp.source = cfg->sport;
	o.udp.len = bpf_htons(len + UDP_HLEN + GRE_HLEN);
	o.gre_flags = bpf_htons(GRE_FLAGS_KS);
	o.gre_proto = bpf_htons(ETH_P_IP);
	o.gre_key = bpf_htonl(cfg->key);
	o.gre_seq = bpf_htonl(__sync_fetch_and_add(seq, 1));
	if (bpf_skb_store_bytes(skb, ETH_HLEN_, &o, sizeof(o), 0) || !outer_of(skb, &eth))
		return -1;
	__builtin_memcpy(eth->h_source, cfg->smac, ETH_ALEN);
	eth->h_proto = bpf_htons(ETH_P_IP);

	gc = bpf_map_lookup_elem(&group_stats, &slot);
	if (gc) {
		__sync_fetch_and_add(&gc->packets, 1);
		__sync_fetch_and_add(&gc->bytes, len);
	}

	/* 4. fan out */
	f.skb = skb;
	f.slot = slot;
	f.tunnel_len = GRE_HLEN + len;
	f.daddr = 0;
	f.ifindex = cfg->ifindex;
	if (g->unreachable) {
		f.first = g->first + g->count;
		bpf_loop(g->unreachable, fail_one, &f, 0);
	}
	f.first = g->first;
	ret = fan_out(&f, g->first + g->count, cfg->pass);
	if (ret >= 0)
		count_path(SENT_KERNEL);
	return ret;
}

static __always_inline const struct sender_config *sender_config(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&config, &zero);
}

SEC("tc")
int mctun_egress(struct __sk_buff *skb)
{
	const struct sender_config *cfg = sender_config();
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct group_route g;
	struct iphdr *ip;
	__u32 len = 0;

	if (!cfg || (void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_UNSPEC;
	ip = multicast_ip(skb, ETH_HLEN_);
	if (!ip)
		return TC_ACT_UNSPEC; /* unicast, the clones this program sent among it */
	if (!classify(skb, cfg, ip, ETH_HLEN_, &g, &len))
		return hand_off(skb, cfg, ip);
	/* the last member's copy leaves as the packet itself */
	return onward(send(skb, cfg, &g, len), cfg->ifindex, 0);
}

/*
 * On a host that is a member too, its applications' multicast leaves by the TUN, an L3
 * device: what the kernel forwards gets an Ethernet header first, and it and its clones leave
 * by the source interface. What user space is to forward stays on the TUN, for its reader.
 */
SEC("tc")
int mctun_tun_egress(struct __sk_buff *skb)
{
	const struct sender_config *cfg = sender_config();
	struct group_route g;
	struct iphdr *ip = multicast_ip(skb, 0);
	__u32 len = 0;

	if (!cfg || !ip || !classify(skb, cfg, ip, 0, &g, &len))
		return TC_ACT_UNSPEC;
	if (bpf_skb_change_head(skb, ETH_HLEN_, 0))
		return TC_ACT_SHOT;
	return onward(send(skb, cfg, &g, len), cfg->ifindex, 1);
}

/*
 * The next pass of a packet whose group has more members than one pass sends: fan_out sent
 * it round, into the source interface's ingress, with the members still to go.
 */
SEC("tc")
int mctun_fan_on(struct __sk_buff *skb)
{
	const struct sender_config *cfg;
	struct ethhdr *eth;
	struct outer *o;
	struct fan f = {};
	__u32 next, rest;

	if (skb->mark != FAN_ON_MARK)
		return TC_ACT_UNSPEC;
	cfg = sender_config();
	o = outer_of(skb, &eth);
	/* The network sets no mark; still, only a tunnel packet of this host's own is taken. */
	if (!cfg || !o || eth->h_proto != bpf_htons(ETH_P_IP) ||
	    eth->h_dest[0] != FAN_ON_MAC0 || o->ip.saddr != cfg->saddr || o->udp.dest != 0)
		return TC_ACT_UNSPEC;
	next = (__u32)eth->h_dest[1] << 16 | (__u32)eth->h_dest[2] << 8 | eth->h_dest[3];
	rest = (__u32)eth->h_dest[4] << 8 | eth->h_dest[5];
	f.slot = bpf_ntohs(o->udp.source);
	if (rest == 0 || next + rest > MAX_FANOUT || f.slot >= MAX_GROUPS)
		return TC_ACT_SHOT;
	skb->mark = 0;
	o->udp.source = cfg->sport;
	f.skb = skb;
	f.first = next;
	f.tunnel_len = bpf_ntohs(o->udp.len) - UDP_HLEN;
	f.daddr = o->ip.daddr;
	f.ifindex = cfg->ifindex;
	return onward(fan_out(&f, next + rest, cfg->pass), cfg->ifindex, 1);
}
