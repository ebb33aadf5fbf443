package datapath

import (
	"fmt"
	"net/netip"
	"testing"

	"mctun/config"
	"mctun/encap"
	"mctun/encap/encaptest"
)

// nullConn is an encap.Conn that sends nowhere, so a benchmark measures mctun's own work.
type nullConn struct{}

func (nullConn) ReadBatch([][]byte, []int, []netip.AddrPort) (int, error) { return 0, nil }
func (nullConn) WriteBatch(bufs [][]byte, _ []netip.AddrPort, errs []error) error {
	clear(errs[:len(bufs)])
	return nil
}
func (nullConn) BatchSize() int { return 64 }
func (nullConn) Close() error   { return nil }

func members(n int) []netip.AddrPort {
	ms := make([]netip.AddrPort, n)
	for i := range ms {
		ms[i] = netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, byte(2 + i/250), byte(2 + i%250)}), 4754)
	}
	return ms
}

// BenchmarkSenderForward measures the sender side per captured packet, from the check to the
// fan-out queued for sendmmsg: classification, encapsulation (or sealing) in place, and one
// queue entry per member. It must not allocate.
func BenchmarkSenderForward(b *testing.B) {
	for _, tc := range []struct {
		members, size int
		auth          bool
	}{{1, 64, false}, {1, 1200, false}, {16, 64, false}, {16, 1200, false}, {16, 1200, true}} {
		b.Run(fmt.Sprintf("members=%d/size=%d/auth=%v", tc.members, tc.size, tc.auth), func(b *testing.B) {
			var seal *encap.Sealer
			if tc.auth {
				a, _ := encap.NewAuth(testSecret, 7)
				seal, _ = a.NewSealer(1, false)
			}
			g := config.Group{Address: group.Addr(), Port: group.Port(), Members: members(tc.members)}
			s := NewSender(nullConn{}, 7, []config.Group{g}, seal, quiet)
			bt := s.newBatch(64, 1500)
			pkt := encaptest.UDPPacket(sourceAddr, group, make([]byte, tc.size))
			for i := range bt.bufs {
				copy(bt.bufs[i][encap.Headroom:], pkt)
				bt.sizes[i] = len(pkt)
			}
			b.SetBytes(int64(len(pkt)))
			b.ReportAllocs()
			for b.Loop() {
				if err := s.forward(bt, 1); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReceiverAccept measures the receiver side per tunnel packet: source, header (or
// tag), key, inner-packet checks, group, MTU, sequence accounting. It must not allocate.
func BenchmarkReceiverAccept(b *testing.B) {
	for _, auth := range []bool{false, true} {
		b.Run(fmt.Sprintf("auth=%v", auth), func(b *testing.B) {
			inner := encaptest.UDPPacket(sourceAddr, group, make([]byte, 1200))
			bufs := makeBufs(1024, encap.Headroom+len(inner)+encap.Tailroom)
			pkts := make([][]byte, len(bufs))
			var open *encap.Opener
			var seal *encap.Sealer
			if auth {
				a, _ := encap.NewAuth(testSecret, 7)
				seal, _ = a.NewSealer(1, false)
				open = a.NewOpener(false)
			}
			r := NewReceiver(nullConn{}, nil, 7, config.Member{MTU: 1500, Sources: []netip.Addr{sourceAddr}}, open, nil, quiet)
			p := r.policy.Load()
			src := sourceAddr.As4()
			var seq uint32
			refill := func() { // fresh sequence numbers and counters: the sender's cost, not timed
				for i, buf := range bufs {
					copy(buf[encap.Headroom:], inner)
					if auth {
						pkts[i] = seal.Seal(buf, len(inner), encap.Header{Key: 7, Seq: seq})
					} else {
						pkts[i] = encap.Encapsulate(buf, len(inner), encap.Header{Key: 7, Seq: seq})
					}
					seq++
				}
			}
			refill()
			b.SetBytes(int64(len(inner)))
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if i == len(pkts) {
					b.StopTimer()
					refill()
					b.StartTimer()
					i = 0
				}
				if _, _, ok := r.accept(p, src, pkts[i]); !ok {
					b.Fatal("dropped")
				}
				i++
			}
		})
	}
}

// BenchmarkConfigure measures Configure, which the daemon calls on a reload and whenever a
// member joins or leaves: one group of 4,096 members, and 16 of 4,096 (65,536 memberships,
// the membership table's limit), swapped for the same table plus one member.
func BenchmarkConfigure(b *testing.B) {
	for _, groups := range []int{1, 16} {
		b.Run(fmt.Sprintf("groups=%d/members=4096", groups), func(b *testing.B) {
			var gs []config.Group
			for i := range groups {
				gs = append(gs, config.Group{Address: netip.AddrFrom4([4]byte{224, 1, 2, byte(i)}), Members: members(4096)})
			}
			more := append([]config.Group(nil), gs...)
			more[0].Members = members(4097)
			s := NewSender(nullConn{}, 7, gs, nil, nil)
			b.ResetTimer()
			for i := range b.N {
				if i%2 == 0 {
					s.Configure(7, more)
				} else {
					s.Configure(7, gs)
				}
			}
		})
	}
}
