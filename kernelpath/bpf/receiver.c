// SPDX-License-Identifier: MIT OR GPL-2.0
/*
 * The receiver side in the kernel: a TC ingress program on the interface the tunnel arrives
 * on (mctun_ingress), one on the TUN's ingress (mctun_deliver), and the accounting user
 * space calls for what it delivers itself (mctun_account).

	receive -> decapsulate -> validate -> write to TUN

1. receive: a UDP datagram to the tunnel port for one of this host's addresses (local_addrs,
   loopback's left out), in a frame addressed to this host (PACKET_HOST), whose outer
   headers the kernel path can judge: not a fragment, not GSO, a sane outer IPv4 header and
   UDP length, and a UDP checksum that is 0 or that the device verified. Anything else goes
   on unchanged (TC_ACT_UNSPEC): to the stack, which reassembles, checks and hands it to the
   user-space receiver's socket (counted by why, receiver_paths).
2. decapsulate: from a configured source (sources), arriving on the interface the route to
   that source leaves by (else the stack judges it, by rp_filter: the kernel path must not
   take what the host's reverse-path check would refuse), a GRE header of the form mctun
   sends, our key. On a host that is a source too (config reports), what a host inside
   source.join_from that is no source sends goes on to user space, which judges it as a
   membership report, and so does IGMP from a source whatever its key.
3. validate: the inner packet passes the checks of encap.CheckInner, to an allowed group,
   within the TUN's MTU, and the TUN is up. Its sequence number is accounted for its flow
   (source and group: flows). IGMP (a member's membership report among it) goes on to user
   space, which judges it, before these checks: a report carries an IP option.
4. write to TUN: strip the outer headers and redirect the inner packet into the TUN's
   ingress: the host delivers it to the sockets that joined its group there, as if it had
   arrived on the TUN (tcpdump -i mctun0 sees it).

Every packet that fails a step of 2 or 3 is dropped and counted by reason (receiver_drops),
under the same names as the user-space receiver's, and only where the user-space receiver
(with its report flow, datapath.Reports) would count it under that name. A dump (mctun
dump) gets each inner packet delivered, through dump_events.
 */
#include "mctun.h"
#include <linux/if_packet.h>

char _license[] SEC("license") = "Dual MIT/GPL";

#define MAX_SOURCES 65536
#define MAX_ALLOWED 65536
#define MAX_LOCAL 1024
#define MAX_JOIN_FROM 1024
/* As the user-space receiver's maxFlows, and one more: the overflow flow {0, 0}, which
 * user space creates, takes the packets of every flow beyond. */
#define MAX_FLOWS (65536 + 1)
/* As datapath's seqWindow. */
#define SEQ_WINDOW 1024
#define SEQ_WORDS (SEQ_WINDOW / 64)

/* The user-space receiver's buffer is this much larger than the TUN's MTU (encap.HeaderLen,
 * AuthHeaderLen, TagLen), and at least REPORT_MAX (datapath's reportBufSize - 1, the largest
 * membership report a source takes): a datagram that fills it is too big before anything
 * else. */
#define USER_BUF_EXTRA (GRE_HLEN + 28 + 16)
#define REPORT_MAX 2047

struct receiver_config {
	__u32 key;         /* GRE key, host order */
	__be16 port;       /* the tunnel's UDP port */
	__u16 mtu;         /* the TUN's */
	__u32 tun_ifindex;
	__u8 any_group;    /* member.groups is empty: any multicast group */
	__u8 dump;         /* a dump runs: copy every inner packet delivered to dump_events */
	__u8 tun_down;     /* the TUN is down, and drops what is redirected into it */
	__u8 reports;      /* this host takes membership reports: enum reports */
};

/* Which hosts that are no source user space takes membership reports from. */
enum reports {
	REPORTS_NONE,      /* none: this host is no source */
	REPORTS_JOIN_FROM, /* those inside a prefix in join_from */
	REPORTS_ANY,       /* any: join_from has more prefixes than the map holds */
};

struct join_prefix {
	__u32 prefixlen;
	__be32 addr;
};

struct flow_key {
	__be32 source;
	__be32 group;
};

/* A flow's sequence accounting is datapath's seqTracker, word for word. */
struct flow {
	struct bpf_spin_lock lock;
	__u32 lock_pad; /* the lock alone in its word: no wider store may touch it */
	__u32 started;
	__u32 next; /* one past the newest number seen */
	__u64 seen[SEQ_WORDS];
	__u64 packets;
	__u64 bytes;
	__s64 lost;
	__u64 reordered;
	__u64 duplicates;
	__u64 restarts;
	__u64 first_ns; /* when its first packet came: flows are listed in that order */
	__u32 first;    /* the number its accounting (re)started at */
	__u32 first_pad;
};

enum receiver_path {
	DELIVERED_KERNEL, /* decapsulated and delivered here */
	PASS_FRAGMENT,    /* an outer fragment: the stack reassembles it for user space */
	PASS_GSO,         /* a GSO packet, many datagrams at once */
	PASS_CHECKSUM,    /* an outer UDP checksum the device did not verify */
	PASS_OUTER,       /* an outer IPv4 header or length the stack should judge */
	PASS_IGMP,        /* IGMP, a membership report among it: user space decides */
	PASS_ROUTE,       /* from a source, on another interface than its route's: rp_filter decides */
	PASS_JOIN_FROM,   /* from a host inside join_from that is no source: user space judges it */
	RECEIVER_PATH_COUNT,
};

/* One packet user space delivered (or dropped after its number was seen), for mctun_account;
 * or, with bytes RESYNC, a flow to start its accounting afresh at its next packet (a member
 * that joins a group again: what was sent meanwhile is no loss). */
struct account_rec {
	__be32 source;
	__be32 group;
	__u32 seq;
	__u32 bytes; /* its length when delivered; 0 when it was not */
};

#define RESYNC 0xffffffff

#define ACCOUNT_MAX 16

struct account_args {
	__u32 n;
	__u32 pad;
	struct account_rec recs[ACCOUNT_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct receiver_config);
} config SEC(".maps");

/* A source's value is the interface the route to it leaves by (0: no route), where its
 * tunnel packets should arrive. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, MAX_SOURCES);
	__type(key, __be32);
	__type(value, __u32);
} sources SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, MAX_ALLOWED);
	__type(key, __be32);
	__type(value, __u8);
} allowed_groups SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_LOCAL);
	__type(key, __be32);
	__type(value, __u8);
} local_addrs SEC(".maps");

/* source.join_from, with config reports REPORTS_JOIN_FROM. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, MAX_JOIN_FROM);
	__type(key, struct join_prefix);
	__type(value, __u8);
} join_from SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, MAX_FLOWS);
	__type(key, struct flow_key);
	__type(value, struct flow);
} flows SEC(".maps");

/* A zeroed flow to create new ones from, off the stack; never written. Plain words, not a
 * struct flow: a value with a lock in it cannot be the source of an update. */
struct flow_blank {
	__u64 w[sizeof(struct flow) / 8];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct flow_blank);
} new_flow SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, REASON_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} receiver_drops SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RECEIVER_PATH_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} receiver_paths SEC(".maps");

/* Go mirrors of the types user space reads or writes (bpf2go -type). */
const struct dump_meta *unused_dump_meta __attribute__((unused));
const struct account_args *unused_account_args __attribute__((unused));
const enum receiver_path *unused_receiver_path __attribute__((unused));
const enum reason *unused_reason __attribute__((unused));
const enum reports *unused_reports __attribute__((unused));
const struct join_prefix *unused_join_prefix __attribute__((unused));

static __always_inline void count(void *map, __u32 i)
{
	__u64 *n = bpf_map_lookup_elem(map, &i);

	if (n)
		*n += 1;
}

static __always_inline int drop(__u32 reason)
{
	count(&receiver_drops, reason);
	return TC_ACT_SHOT;
}

static __always_inline int pass(__u32 why)
{
	count(&receiver_paths, why);
	return TC_ACT_UNSPEC;
}

/* The flow's window, as internal/bitring keeps it. */
static __always_inline void mark(struct flow *f, __u32 n)
{
	f->seen[(n / 64) % SEQ_WORDS] |= 1ULL << (n % 64);
}

static __always_inline int marked(const struct flow *f, __u32 n)
{
	return (f->seen[(n / 64) % SEQ_WORDS] >> (n % 64)) & 1;
}

/* low_bits is a word's k lowest bits, for any k. */
static __always_inline __u64 low_bits(__s32 k)
{
	if (k <= 0)
		return 0;
	if (k >= 64)
		return ~0ULL;
	return (1ULL << k) - 1;
}

/* unmark is bitring.Clear: count numbers from n on leave the window, a word at a time. Each
 * word's mask comes from where the word starts, counted from n, and nothing else: a loop
 * that carried n and count from word to word cost the verifier 70,000 instructions, and
 * `mctun up` 0.6 s. */
static __always_inline void unmark(struct flow *f, __u32 n, __u32 count)
{
	__s32 lo = n % 64;

	if (count == 0) /* in order: nothing left the window */
		return;
	if (count >= SEQ_WINDOW) {
		for (int i = 0; i < SEQ_WORDS; i++)
			f->seen[i] = 0;
		return;
	}
	for (int j = 0; j < SEQ_WORDS + 1; j++) {
		__s32 start = j * 64 - lo; /* the word's first number, counted from n */

		if (start >= (__s32)count)
			break;
		f->seen[(n / 64 + j) % SEQ_WORDS] &= ~(low_bits(count - start) & ~low_bits(-start));
	}
}

static __always_inline void restart_window(struct flow *f, __u32 seq)
{
	for (int i = 0; i < SEQ_WORDS; i++)
		f->seen[i] = 0;
	mark(f, seq);
	f->next = seq + 1;
	f->first = seq;
}

/* before_start reports whether a late packet's number is below the one the account started
 * at: it was never counted lost (seqTracker.beforeStart). */
static __always_inline int before_start(const struct flow *f, __u32 seq)
{
	return f->next - f->first <= SEQ_WINDOW && (__s32)(seq - f->first) < 0;
}

/* observe is seqTracker.observe, with its results added to the flow's counters. The caller
 * holds f->lock. */
static __always_inline void observe(struct flow *f, __u32 seq)
{
	__s32 d;

	if (!f->started) { /* whatever came before this member listened is not its loss */
		f->started = 1;
		restart_window(f, seq);
		return;
	}
	d = (__s32)(seq - f->next);
	if (d >= 0) { /* new: in order, or after a gap */
		unmark(f, f->next, d);
		mark(f, seq);
		f->next = seq + 1;
		f->lost += d;
	} else if (d >= -SEQ_WINDOW) { /* late */
		if (marked(f, seq)) {
			f->duplicates++;
		} else {
			mark(f, seq);
			if (!before_start(f, seq))
				f->lost--;
			f->reordered++;
		}
	} else { /* far behind: the sender started again from 0 */
		restart_window(f, seq);
		f->restarts++;
	}
}

/* flow_of finds the flow of a source and group, creating it on first sight; beyond
 * MAX_FLOWS - 1 flows, the overflow flow. */
static __always_inline struct flow *flow_of(__be32 source, __be32 group)
{
	struct flow_key k = {.source = source, .group = group};
	struct flow *f = bpf_map_lookup_elem(&flows, &k);
	struct flow_blank *nf;
	__u32 zero = 0;
	int created;

	if (f)
		return f;
	nf = bpf_map_lookup_elem(&new_flow, &zero);
	if (!nf)
		return 0;
	created = bpf_map_update_elem(&flows, &k, nf, BPF_NOEXIST) == 0;
	f = bpf_map_lookup_elem(&flows, &k);
	if (f) {
		if (created)
			f->first_ns = bpf_ktime_get_ns();
		return f;
	}
	k.source = 0;
	k.group = 0;
	return bpf_map_lookup_elem(&flows, &k);
}

/* account observes a packet's sequence number for its flow and, when it is delivered
 * (bytes > 0), counts it. */
static __always_inline void account(__be32 source, __be32 group, __u32 seq, __u32 bytes)
{
	struct flow *f = flow_of(source, group);

	if (!f)
		return;
	bpf_spin_lock(&f->lock);
	if (bytes == RESYNC) {
		f->started = 0;
		bpf_spin_unlock(&f->lock);
		return;
	}
	observe(f, seq);
	if (bytes) {
		f->packets++;
		f->bytes += bytes;
	}
	bpf_spin_unlock(&f->lock);
}

/* joins reports whether user space takes membership reports from source, a host that is no
 * source: datapath.Reports.Take. */
static __always_inline int joins(const struct receiver_config *cfg, __be32 source)
{
	struct join_prefix k = {.prefixlen = 32, .addr = source};

	if (cfg->reports == REPORTS_ANY)
		return 1;
	return cfg->reports == REPORTS_JOIN_FROM && bpf_map_lookup_elem(&join_from, &k);
}

SEC("tc")
int mctun_ingress(struct __sk_buff *skb)
{
	__u32 zero = 0, tot, payload, inner_len, n, r, seq, gre[3], igmp;
	const struct receiver_config *cfg;
	const __u32 *via;
	void *data, *data_end;
	__u8 hdr[MAX_IHL] = {};
	struct iphdr *ip, *in;
	struct udphdr *udp;
	__be32 source;

	/* 1. receive */
	cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg || skb->protocol != bpf_htons(ETH_P_IP) || skb->pkt_type != PACKET_HOST)
		return TC_ACT_UNSPEC;
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	if (data + ETH_HLEN_ + IP_HLEN + UDP_HLEN > data_end && bpf_skb_pull_data(skb, ETH_HLEN_ + IP_HLEN + UDP_HLEN))
		return TC_ACT_UNSPEC;
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	ip = data + ETH_HLEN_;
	udp = (void *)(ip + 1);
	if ((void *)(udp + 1) > data_end || ip->version != 4 || ip->ihl != 5 || ip->protocol != IPPROTO_UDP ||
	    udp->dest != cfg->port || !bpf_map_lookup_elem(&local_addrs, &ip->daddr))
		return TC_ACT_UNSPEC;
	if (is_fragment(ip))
		return pass(PASS_FRAGMENT);
	tot = bpf_ntohs(ip->tot_len);
	if (ip_csum(ip) != 0 || tot < IP_HLEN + UDP_HLEN || tot > skb->len - ETH_HLEN_ ||
	    bpf_ntohs(udp->len) != tot - IP_HLEN)
		return pass(PASS_OUTER);
	if (skb->gso_segs > 1)
		return pass(PASS_GSO);
	if (udp->check && bpf_csum_level(skb, BPF_CSUM_LEVEL_QUERY) < 0)
		return pass(PASS_CHECKSUM);
	source = ip->saddr;
	payload = tot - IP_HLEN - UDP_HLEN;
	if (payload >= USER_BUF_EXTRA + (__u32)cfg->mtu + 1 && payload >= REPORT_MAX + 1)
		return drop(REASON_TOO_BIG);

	/* 2. decapsulate */
	via = bpf_map_lookup_elem(&sources, &source);
	if (!via) {
		if (joins(cfg, source))
			return pass(PASS_JOIN_FROM);
		return drop(REASON_UNKNOWN_SOURCE);
	}
	if (*via != skb->ifindex)
		return pass(PASS_ROUTE);
	if (payload < GRE_HLEN || bpf_skb_load_bytes(skb, ETH_HLEN_ + IP_HLEN + UDP_HLEN, gre, GRE_HLEN))
		return drop(REASON_BAD_TUNNEL_HEADER);
	if (gre[0] != bpf_htonl(GRE_FLAGS_KS << 16 | ETH_P_IP))
		return drop(REASON_BAD_TUNNEL_HEADER);
	seq = bpf_ntohl(gre[2]);
	inner_len = payload - GRE_HLEN;
	n = inner_len < MAX_IHL ? inner_len : MAX_IHL;
	if (n > 0 && bpf_skb_load_bytes(skb, ETH_HLEN_ + ENCAP_LEN, hdr, n))
		return drop(REASON_MALFORMED);
	/* IGMP goes up whole, before the checks: a membership report carries the Router Alert
	 * option, and user space judges reports apart from the inner packets it delivers; on a
	 * host that takes reports, before the key too, which its report flow judges. */
	igmp = inner_len >= IP_HLEN && (hdr[0] >> 4) == 4 && hdr[9] == IPPROTO_IGMP;
	if (igmp && cfg->reports != REPORTS_NONE)
		return pass(PASS_IGMP);
	if (bpf_ntohl(gre[1]) != cfg->key)
		return drop(REASON_WRONG_KEY);
	if (igmp)
		return pass(PASS_IGMP);

	/* 3. validate */
	r = inner_check(hdr, inner_len, MAX_IHL);
	if (r != REASON_COUNT)
		return drop(r);
	in = (struct iphdr *)hdr;
	if (!cfg->any_group && !bpf_map_lookup_elem(&allowed_groups, &in->daddr))
		return drop(REASON_GROUP_NOT_ALLOWED);
	if (inner_len > cfg->mtu)
		return drop(REASON_TOO_BIG);
	if (cfg->tun_down) { /* as the user-space receiver's write fails: its number was seen */
		account(source, in->daddr, seq, 0);
		return drop(REASON_TUN_WRITE_FAILED);
	}

	/* 4. write to TUN */
	if (bpf_skb_adjust_room(skb, -ENCAP_LEN, BPF_ADJ_ROOM_MAC, 0))
		return TC_ACT_SHOT;
	account(source, in->daddr, seq, inner_len);
	if (cfg->dump) {
		struct dump_meta meta = {.group = in->daddr, .len = inner_len, .offset = ETH_HLEN_, .side = 1};

		bpf_perf_event_output(skb, &dump_events, BPF_F_CURRENT_CPU | ((__u64)skb->len << 32), &meta,
				      sizeof(meta));
	}
	count(&receiver_paths, DELIVERED_KERNEL);
	return bpf_redirect(cfg->tun_ifindex, BPF_F_INGRESS);
}

/*
 * mctun_deliver, on the TUN's ingress, marks the multicast arriving there as multicast
 * (PACKET_MULTICAST), as a link's driver marks what arrives for a multicast MAC address.
 * The redirect of step 4, and a write into the TUN by the user-space receiver, leave it
 * PACKET_HOST; only PACKET_MULTICAST lets the UDP stack find the receiving socket early
 * and reuse the input route cached in it (udp_v4_early_demux), instead of building a
 * route for every packet and freeing it through RCU. The checks are the same either way:
 * the group must be joined on the TUN and the source is validated per packet
 * (ip_mc_validate_source).
 */
SEC("tc")
int mctun_deliver(struct __sk_buff *skb)
{
	__u8 daddr;

	if (skb->protocol == bpf_htons(ETH_P_IP) && skb->pkt_type == PACKET_HOST &&
	    !bpf_skb_load_bytes(skb, 16, &daddr, 1) && (daddr & 0xf0) == 0xe0)
		bpf_skb_change_type(skb, PACKET_MULTICAST);
	return TC_ACT_UNSPEC;
}

/*
 * mctun_account is how the user-space receiver accounts the packets it delivers itself (those
 * step 1 handed to the stack), so that each flow has one account: a batch of records, run
 * with BPF_PROG_RUN.
 */
static long account_one(__u32 i, void *ctx)
{
	struct account_args *a = ctx;

	if (i >= ACCOUNT_MAX)
		return 1;
	account(a->recs[i].source, a->recs[i].group, a->recs[i].seq, a->recs[i].bytes);
	return 0;
}

SEC("syscall")
int mctun_account(struct account_args *args)
{
	struct account_args a = *args;

	if (a.n > ACCOUNT_MAX)
		return 1;
	bpf_loop(a.n, account_one, &a, 0);
	return 0;
}
