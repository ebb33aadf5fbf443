package capture

import (
	"encoding/binary"
	"fmt"
	"testing"

	"golang.org/x/net/bpf"

	"mctun/encap"
)

// filterPackets are IPv4 headers (and a bit more) with whether the IP part of the filter
// should pass them. The filter runs on the packet from its IPv4 header on.
var filterPackets = []struct {
	name string
	pkt  []byte
	pass bool
}{
	{"udp to 224.1.2.3", ipHeader(0x45, encap.ProtoUDP, "224.1.2.3"), true},
	{"udp to 224.0.0.251", ipHeader(0x45, encap.ProtoUDP, "224.0.0.251"), true},
	{"udp to 239.255.255.255", ipHeader(0x45, encap.ProtoUDP, "239.255.255.255"), true},
	{"tcp to 232.1.1.1", ipHeader(0x45, protoTCP, "232.1.1.1"), true},
	{"icmp to 224.0.0.1", ipHeader(0x45, 1, "224.0.0.1"), true},
	{"udp with options to 224.1.2.3", ipHeader(0x46, encap.ProtoUDP, "224.1.2.3"), true},
	{"igmp to 224.0.0.22", ipHeader(0x46, encap.ProtoIGMP, "224.0.0.22"), false},
	{"igmp to 224.1.2.3", ipHeader(0x45, encap.ProtoIGMP, "224.1.2.3"), false},
	{"udp to 198.18.200.2", ipHeader(0x45, encap.ProtoUDP, "198.18.200.2"), false},
	{"udp to 223.255.255.255", ipHeader(0x45, encap.ProtoUDP, "223.255.255.255"), false},
	{"udp to 240.0.0.1", ipHeader(0x45, encap.ProtoUDP, "240.0.0.1"), false},
	{"udp to 255.255.255.255", ipHeader(0x45, encap.ProtoUDP, "255.255.255.255"), false},
	{"version 6 with a multicast-looking byte 16", ipHeader(0x65, encap.ProtoUDP, "224.1.2.3"), false},
	{"cut before the destination", ipHeader(0x45, encap.ProtoUDP, "224.1.2.3")[:19], false},
	{"empty", nil, false},
}

func ipHeader(verIHL, proto byte, dst string) []byte {
	var a, b, c, d byte
	if _, err := fmt.Sscanf(dst, "%d.%d.%d.%d", &a, &b, &c, &d); err != nil {
		panic(err)
	}
	ihl := int(verIHL&0x0f) * 4
	p := make([]byte, ihl+8)
	p[0] = verIHL
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	p[8], p[9] = 1, proto
	copy(p[12:], []byte{198, 18, 200, 1})
	copy(p[16:], []byte{a, b, c, d})
	return p
}

// TestIPFilter runs the IPv4 part of the filter in x/net/bpf's VM.
func TestIPFilter(t *testing.T) {
	vm, err := bpf.NewVM(ipFilter())
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range filterPackets {
		n, err := vm.Run(tt.pkt)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := passes(uint32(n), tt.pkt); got != tt.pass {
			t.Errorf("%s: VM returned %d for %d bytes, want pass=%v", tt.name, n, len(tt.pkt), tt.pass)
		}
	}
}

// TestFilter runs the whole program, ancillary loads included, in evalFilter, which stands
// in for the kernel. evalFilter is first checked against the VM on the IP part.
func TestFilter(t *testing.T) {
	vm, err := bpf.NewVM(ipFilter())
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range filterPackets {
		want, _ := vm.Run(tt.pkt)
		if got := evalFilter(t, ipFilter(), 0, 0, tt.pkt); got != uint32(want) {
			t.Fatalf("%s: evalFilter returns %d, VM %d: the test's evaluator is wrong", tt.name, got, want)
		}
	}

	const (
		host      = 0 // PACKET_HOST
		multicast = 2 // PACKET_MULTICAST
		loopback  = 5 // PACKET_LOOPBACK: the host's own multicast, looped back to itself
		ipv6      = 0x86dd
		arp       = 0x0806
	)
	for _, tt := range filterPackets {
		for _, link := range []struct {
			pkttype, proto uint32
			outgoingIPv4   bool
		}{
			{packetOutgoing, etherTypeIPv4, true},
			{host, etherTypeIPv4, false},
			{multicast, etherTypeIPv4, false},
			{loopback, etherTypeIPv4, false},
			{packetOutgoing, ipv6, false},
			{packetOutgoing, arp, false},
		} {
			ret := evalFilter(t, filter(), link.pkttype, link.proto, tt.pkt)
			if got, want := passes(ret, tt.pkt), tt.pass && link.outgoingIPv4; got != want {
				t.Errorf("%s, pkttype %d, protocol %#04x: filter returns %d, want pass=%v",
					tt.name, link.pkttype, link.proto, ret, want)
			}
		}
	}
}

func TestFilterAssembles(t *testing.T) {
	raw, err := bpf.Assemble(filter())
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) != len(linkFilter())+len(ipFilter()) {
		t.Fatalf("assembled %d instructions, want %d", len(raw), len(linkFilter())+len(ipFilter()))
	}
}

// passes reports whether a filter that returned ret keeps all of pkt: the kernel keeps
// min(ret, len) bytes, and drops the packet for 0. A filter that kept part of a packet fails.
func passes(ret uint32, pkt []byte) bool {
	return ret != 0 && uint64(ret) >= uint64(len(pkt))
}

// evalFilter interprets the instructions the filter uses, the way the kernel does, and
// returns what the program returns: ancillary loads give pkttype and proto, and a load past
// the end of the packet ends the program with 0.
func evalFilter(t *testing.T, prog []bpf.Instruction, pkttype, proto uint32, pkt []byte) uint32 {
	t.Helper()
	var a uint32
	for pc := 0; pc < len(prog); pc++ {
		switch ins := prog[pc].(type) {
		case bpf.LoadExtension:
			switch ins.Num {
			case bpf.ExtType:
				a = pkttype
			case bpf.ExtProto:
				a = proto
			default:
				t.Fatalf("evalFilter: extension %v", ins.Num)
			}
		case bpf.LoadAbsolute:
			end := int(ins.Off) + ins.Size
			if end > len(pkt) {
				return 0
			}
			a = 0
			for _, b := range pkt[ins.Off:end] {
				a = a<<8 | uint32(b)
			}
		case bpf.ALUOpConstant:
			if ins.Op != bpf.ALUOpAnd {
				t.Fatalf("evalFilter: ALU op %v", ins.Op)
			}
			a &= ins.Val
		case bpf.JumpIf:
			var cond bool
			switch ins.Cond {
			case bpf.JumpEqual:
				cond = a == ins.Val
			case bpf.JumpNotEqual:
				cond = a != ins.Val
			default:
				t.Fatalf("evalFilter: jump condition %v", ins.Cond)
			}
			if cond {
				pc += int(ins.SkipTrue)
			} else {
				pc += int(ins.SkipFalse)
			}
		case bpf.RetConstant:
			return ins.Val
		default:
			t.Fatalf("evalFilter: instruction %T", ins)
		}
	}
	t.Fatal("evalFilter: program ran off its end")
	return 0
}
