package capture

import (
	"golang.org/x/net/bpf"

	"mctun/encap"
)

// The classic BPF program on the AF_PACKET socket. The kernel runs it on every frame of the
// interface, in both directions, before anything reaches the ring; it passes outgoing IPv4
// multicast other than IGMP, whole, and drops everything else:
//
//	ld   #pkttype            ; SKF_AD_PKTTYPE
//	jne  #4, drop            ; PACKET_OUTGOING: sent by this host, not received
//	ld   #proto              ; SKF_AD_PROTOCOL, skb->protocol in host order
//	jne  #0x0800, drop       ; ETH_P_IP
//	ldb  [0]                 ; from here on offsets are into the IPv4 header (SOCK_DGRAM)
//	and  #0xf0
//	jne  #0x40, drop         ; version 4
//	ld   [16]                ; destination address
//	and  #0xf0000000
//	jne  #0xe0000000, drop   ; 224.0.0.0/4
//	ldb  [9]                 ; protocol
//	jeq  #2, drop            ; IGMP: the host's own membership reports stay local
//	ret  #0xffffffff         ; accept, whole packet
//	drop: ret #0
//
// A load past the end of a short packet makes the kernel drop it.

const (
	packetOutgoing = 4      // PACKET_OUTGOING, linux/if_packet.h
	etherTypeIPv4  = 0x0800 // ETH_P_IP
	acceptWhole    = 0xffffffff
)

// filter is the whole program: linkFilter then ipFilter.
func filter() []bpf.Instruction {
	return append(linkFilter(), ipFilter()...)
}

// linkFilter checks what the kernel knows about the frame (ancillary loads, which x/net/bpf's
// VM cannot run) and falls through to the instruction after it when both checks pass.
func linkFilter() []bpf.Instruction {
	return []bpf.Instruction{
		bpf.LoadExtension{Num: bpf.ExtType},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: packetOutgoing, SkipTrue: 2},
		bpf.LoadExtension{Num: bpf.ExtProto},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: etherTypeIPv4, SkipTrue: 1},
		bpf.RetConstant{Val: 0},
	}
}

// ipFilter checks the IPv4 header, which starts at offset 0 on a SOCK_DGRAM packet socket
// whatever the link type.
func ipFilter() []bpf.Instruction {
	return []bpf.Instruction{
		bpf.LoadAbsolute{Off: 0, Size: 1},
		bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xf0},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 0x40, SkipTrue: 6},
		bpf.LoadAbsolute{Off: 16, Size: 4},
		bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xf0000000},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 0xe0000000, SkipTrue: 3},
		bpf.LoadAbsolute{Off: 9, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: encap.ProtoIGMP, SkipTrue: 1},
		bpf.RetConstant{Val: acceptWhole},
		bpf.RetConstant{Val: 0},
	}
}
