package kernelpath

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/cilium/ebpf"
)

// BenchmarkEgressFanOut is the sender side's cost per packet with m members, up to the
// largest group, each a clone sent out of a veth whose peer takes it and drops it: what one
// more member costs the kernel path. A group larger than a pass (passCopies) takes more
// passes, each a run of mctun_fan_on here (not the trip through the backlog between them).
// ns/member is the whole packet's time over m.
//
//	go test -run '^$' -bench EgressFanOut ./kernelpath   (as root)
func BenchmarkEgressFanOut(b *testing.B) {
	needRoot(b)
	for _, m := range []int{1, 4, 16, 64, 256, 1024, 4096} {
		b.Run(fmt.Sprintf("members=%d", m), func(b *testing.B) {
			t := &testing.T{} // inNetns and newTx report to it; the benchmark fails if they did
			inNetns(t, func() {
				h := newTx(t)
				h.fanOut(m)
				h.setPass(uint32(passCopies()))
				pkt := multicastFrame(h.mac, innerUDP(txSource, txGroup, 65535, 64))
				b.ResetTimer()
				for b.Loop() {
					h.send(pkt)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(m), "ns/member")
			})
			if t.Failed() {
				b.Fatal("setting up the namespace failed")
			}
		})
	}
}

// BenchmarkIngress is the receiver side's program per tunnel packet it delivers, and, for
// what BPF_PROG_TEST_RUN itself costs (a system call and an skb), per frame it passes at once
// (another port): the program's own cost is the difference. A repeated run would see the
// packet it decapsulated the time before, so each run is one call.
//
//	go test -run '^$' -bench Ingress ./kernelpath   (as root)
func BenchmarkIngress(b *testing.B) {
	needRoot(b)
	for _, size := range []int{64, 1200} {
		inner := innerUDP(rxSource, rxGroup, 65535, size)
		for _, tt := range []struct {
			name string
			pkt  []byte
		}{
			{"passed at once", frame(rxSource, rxLocal, 50000, rxPort+1, gre(rxKey, 0, inner))},
			{"delivered", tunnel(rxSource, gre(rxKey, 0, inner))},
		} {
			b.Run(fmt.Sprintf("size=%d/%s", size, tt.name), func(b *testing.B) {
				t := &testing.T{}
				h := newRx(t)
				out := make([]byte, len(tt.pkt)+64)
				seq := uint32(0)
				for b.Loop() {
					binary.BigEndian.PutUint32(tt.pkt[14+20+8+8:], seq) // in order, as a stream
					seq++
					if _, err := h.r.objs.MctunIngress.Run(&ebpf.RunOptions{Data: tt.pkt, DataOut: out}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
