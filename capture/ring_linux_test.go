package capture

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

func TestNewRingLayout(t *testing.T) {
	tests := []struct {
		mtu, ringBytes, page int
		want                 ringLayout
	}{
		{1500, DefaultRingBytes, 4096, ringLayout{frameSize: 2048, frameNr: 1024, blockSize: 4096, blockNr: 512}},
		{4016, DefaultRingBytes, 4096, ringLayout{frameSize: 4096, frameNr: 512, blockSize: 4096, blockNr: 512}},
		{4017, DefaultRingBytes, 4096, ringLayout{frameSize: 8192, frameNr: 256, blockSize: 8192, blockNr: 256}},
		{9000, DefaultRingBytes, 4096, ringLayout{frameSize: 16384, frameNr: 128, blockSize: 16384, blockNr: 128}},
		{65535, DefaultRingBytes, 4096, ringLayout{frameSize: 131072, frameNr: 16, blockSize: 131072, blockNr: 16}},
		{65535, 1, 4096, ringLayout{frameSize: 131072, frameNr: 16, blockSize: 131072, blockNr: 16}},
		{1500, 1, 4096, ringLayout{frameSize: 2048, frameNr: 16, blockSize: 4096, blockNr: 8}},
		{1500, 5000, 4096, ringLayout{frameSize: 2048, frameNr: 16, blockSize: 4096, blockNr: 8}},
		{1500, 40000, 4096, ringLayout{frameSize: 2048, frameNr: 20, blockSize: 4096, blockNr: 10}},
		{1500, DefaultRingBytes, 65536, ringLayout{frameSize: 2048, frameNr: 1024, blockSize: 65536, blockNr: 32}},
		{68, DefaultRingBytes, 4096, ringLayout{frameSize: 256, frameNr: 8192, blockSize: 4096, blockNr: 512}},
	}
	for _, tt := range tests {
		l := newRingLayout(tt.mtu, tt.ringBytes, tt.page)
		if l != tt.want {
			t.Errorf("newRingLayout(%d, %d, %d) = %+v, want %+v", tt.mtu, tt.ringBytes, tt.page, l, tt.want)
		}
		// What packet_set_ring demands, and what ring.read assumes.
		if l.frameSize < frameNetOffset+tt.mtu {
			t.Errorf("mtu %d: frame %d cannot hold a full-MTU packet at offset %d", tt.mtu, l.frameSize, frameNetOffset)
		}
		if l.frameSize%unix.TPACKET_ALIGNMENT != 0 || l.frameSize < tpacket2HdrLen {
			t.Errorf("mtu %d: frame %d is not TPACKET_ALIGNMENT-aligned or too small", tt.mtu, l.frameSize)
		}
		if l.blockSize%tt.page != 0 || l.blockSize%l.frameSize != 0 || l.frameNr != l.blockNr*(l.blockSize/l.frameSize) {
			t.Errorf("mtu %d: blocks of %d bytes do not hold whole frames of %d bytes end to end", tt.mtu, l.blockSize, l.frameSize)
		}
		if l.frameNr < minRingFrames {
			t.Errorf("mtu %d: %d frames, fewer than %d", tt.mtu, l.frameNr, minRingFrames)
		}
	}
	if frameNetOffset != 80 || tpacket2HdrLen != 52 {
		t.Errorf("frameNetOffset %d, TPACKET2_HDRLEN %d; the kernel's are 80 and 52", frameNetOffset, tpacket2HdrLen)
	}
}

const testFrameSize = 2048

// newTestRing returns a ring in ordinary memory, all frames the kernel's.
func newTestRing(frames int) *ring {
	return &ring{mem: make([]byte, frames*testFrameSize), frameSize: testFrameSize, frameNr: frames}
}

// put does what tpacket_rcv does: writes pkt, of wireLen bytes on the wire, into frame i and
// then hands the frame to the reader with the given status bits.
func (r *ring) put(i int, status uint32, pkt []byte, wireLen int) {
	f := r.mem[i*r.frameSize : (i+1)*r.frameSize]
	binary.NativeEndian.PutUint32(f[4:], uint32(wireLen))
	binary.NativeEndian.PutUint32(f[8:], uint32(len(pkt)))
	binary.NativeEndian.PutUint16(f[12:], frameNetOffset) // tp_mac: no link header on SOCK_DGRAM
	binary.NativeEndian.PutUint16(f[14:], frameNetOffset)
	copy(f[frameNetOffset:], pkt)
	atomic.StoreUint32(r.status(i), unix.TP_STATUS_USER|status)
}

func (r *ring) kernelOwns(i int) bool {
	return atomic.LoadUint32(r.status(i)) == unix.TP_STATUS_KERNEL
}

func testBufs(n, size int) ([][]byte, []int) {
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = make([]byte, size)
	}
	return bufs, make([]int, n)
}

func testPacket(i int) []byte {
	return []byte(fmt.Sprintf("E\x00 packet %d ..............", i))
}

func TestRingRead(t *testing.T) {
	const offset = 16
	r := newTestRing(8)
	for i := range 3 {
		r.put(i, 0, testPacket(i), len(testPacket(i)))
	}
	bufs, sizes := testBufs(4, 100)
	if !r.ready() {
		t.Fatal("ready() = false with frames for the reader")
	}
	n, c := r.read(bufs, sizes, offset)
	if n != 3 || c != (counts{packets: 3}) {
		t.Fatalf("read = %d, %+v; want 3 packets", n, c)
	}
	for i := range n {
		if got := bufs[i][offset : offset+sizes[i]]; !bytes.Equal(got, testPacket(i)) {
			t.Errorf("packet %d = %q, want %q", i, got, testPacket(i))
		}
		if !bytes.Equal(bufs[i][:offset], make([]byte, offset)) {
			t.Errorf("packet %d: headroom written to", i)
		}
	}
	for i := range 8 {
		if !r.kernelOwns(i) {
			t.Errorf("frame %d not handed back", i)
		}
	}
	if r.head != 3 || r.ready() {
		t.Errorf("head = %d, ready = %v; want 3, false", r.head, r.ready())
	}
	if n, _ := r.read(bufs, sizes, offset); n != 0 {
		t.Errorf("read of an empty ring = %d", n)
	}
}

func TestRingReadWrapsAround(t *testing.T) {
	r := newTestRing(4)
	r.head = 3
	r.put(3, 0, testPacket(3), len(testPacket(3)))
	r.put(0, 0, testPacket(4), len(testPacket(4)))
	r.put(1, 0, testPacket(5), len(testPacket(5)))
	bufs, sizes := testBufs(8, 100)
	n, _ := r.read(bufs, sizes, 0)
	if n != 3 || r.head != 2 {
		t.Fatalf("read = %d, head %d; want 3, 2", n, r.head)
	}
	for i := range n {
		if got := bufs[i][:sizes[i]]; !bytes.Equal(got, testPacket(3+i)) {
			t.Errorf("packet %d = %q, want %q", i, got, testPacket(3+i))
		}
	}
}

func TestRingReadStopsAtLenBufs(t *testing.T) {
	r := newTestRing(8)
	for i := range 5 {
		r.put(i, 0, testPacket(i), len(testPacket(i)))
	}
	bufs, sizes := testBufs(2, 100)
	if n, _ := r.read(bufs, sizes, 0); n != 2 {
		t.Fatalf("read = %d, want 2", n)
	}
	if r.head != 2 || r.kernelOwns(2) || r.kernelOwns(4) {
		t.Fatalf("head %d; frames 2..4 must stay the reader's", r.head)
	}
	n, _ := r.read(bufs, sizes, 0)
	if n != 2 || !bytes.Equal(bufs[0][:sizes[0]], testPacket(2)) {
		t.Fatalf("second read = %d, first %q; want 2 starting at packet 2", n, bufs[0][:sizes[0]])
	}
}

func TestRingReadSkips(t *testing.T) {
	udp := mustHex(t, completeChecksumTests[0].in)
	udpDone := mustHex(t, completeChecksumTests[0].out)
	icmp := bytes.Clone(udp)
	icmp[9] = 1
	fragment := bytes.Clone(udp)
	fragment[6] = 0x20 // MF

	tests := []struct {
		name    string
		put     func(r *ring)
		bufSize int
		offset  int
		want    []byte // the packet read, nil for none
		counts  counts
	}{
		{"whole", func(r *ring) { r.put(0, 0, udp, len(udp)) }, 100, 0, udp, counts{packets: 1}},
		{"checksum left as is without CSUMNOTREADY", func(r *ring) {
			r.put(0, unix.TP_STATUS_CSUM_VALID, udp, len(udp))
		}, 100, 0, udp, counts{packets: 1}},
		{"checksum completed", func(r *ring) {
			r.put(0, unix.TP_STATUS_CSUMNOTREADY, udp, len(udp))
		}, 100, 10, udpDone, counts{packets: 1}},
		{"CSUMNOTREADY on icmp", func(r *ring) {
			r.put(0, unix.TP_STATUS_CSUMNOTREADY, icmp, len(icmp))
		}, 100, 0, nil, counts{checksumSkipped: 1}},
		{"CSUMNOTREADY on a fragment", func(r *ring) {
			r.put(0, unix.TP_STATUS_CSUMNOTREADY, fragment, len(fragment))
		}, 100, 0, nil, counts{checksumSkipped: 1}},
		{"cut by the frame", func(r *ring) { r.put(0, 0, udp, len(udp)+1) }, 100, 0, nil, counts{truncated: 1}},
		{"longer than the buffer", func(r *ring) { r.put(0, 0, udp, len(udp)) }, len(udp) + 9, 10, nil, counts{truncated: 1}},
		{"exactly the buffer", func(r *ring) { r.put(0, 0, udp, len(udp)) }, len(udp) + 10, 10, udp, counts{packets: 1}},
		{"snaplen past the frame", func(r *ring) {
			r.put(0, 0, udp, len(udp))
			binary.NativeEndian.PutUint32(r.mem[8:], testFrameSize) // tp_snaplen
			binary.NativeEndian.PutUint32(r.mem[4:], testFrameSize) // tp_len
		}, 4096, 0, nil, counts{truncated: 1}},
		{"tp_net inside the header", func(r *ring) {
			r.put(0, 0, udp, len(udp))
			binary.NativeEndian.PutUint16(r.mem[14:], 8)
		}, 100, 0, nil, counts{truncated: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newTestRing(4)
			tt.put(r)
			next := testPacket(1)
			r.put(1, 0, next, len(next)) // a skipped frame does not stop the walk
			bufs, sizes := testBufs(2, tt.bufSize)
			n, c := r.read(bufs, sizes, tt.offset)
			want := counts{packets: tt.counts.packets + 1, truncated: tt.counts.truncated, checksumSkipped: tt.counts.checksumSkipped}
			if c != want {
				t.Errorf("counts = %+v, want %+v", c, want)
			}
			if tt.want != nil {
				if n != 2 || !bytes.Equal(bufs[0][tt.offset:tt.offset+sizes[0]], tt.want) {
					t.Fatalf("read %d, first\n %x\nwant\n %x", n, bufs[0][tt.offset:tt.offset+sizes[0]], tt.want)
				}
			} else if n != 1 || !bytes.Equal(bufs[0][tt.offset:tt.offset+sizes[0]], next) {
				t.Fatalf("read %d, first %x; want only the next frame", n, bufs[0][tt.offset:tt.offset+sizes[0]])
			}
			if !r.kernelOwns(0) || !r.kernelOwns(1) || r.head != 2 {
				t.Errorf("frames not handed back: head %d", r.head)
			}
		})
	}
}

func TestRingReadOffsetPastBuffers(t *testing.T) {
	r := newTestRing(4)
	r.put(0, 0, testPacket(0), len(testPacket(0)))
	r.put(1, 0, testPacket(1), len(testPacket(1)))
	bufs, sizes := testBufs(2, 100)
	n, c := r.read(bufs, sizes, 101)
	if n != 0 || c != (counts{truncated: 2}) || !r.kernelOwns(0) || !r.kernelOwns(1) {
		t.Fatalf("read = %d, %+v; want 0 packets, 2 truncated, frames handed back", n, c)
	}
}

func TestRingReadDoesNotAllocate(t *testing.T) {
	udp := mustHex(t, completeChecksumTests[0].in)
	r := newTestRing(4)
	bufs, sizes := testBufs(4, 100)
	allocs := testing.AllocsPerRun(100, func() {
		for i := range 4 {
			r.put(i, unix.TP_STATUS_CSUMNOTREADY, udp, len(udp))
		}
		if n, _ := r.read(bufs, sizes, 8); n != 4 {
			t.Fatalf("read %d, want 4", n)
		}
	})
	if allocs != 0 {
		t.Errorf("read allocates %v times per call", allocs)
	}
}

// BenchmarkRingRead measures what Read does per packet once frames are ready: walk the ring,
// copy each packet out, hand the frame back, and complete the UDP checksum where the kernel
// left it to the NIC.
func BenchmarkRingRead(b *testing.B) {
	const batch = DefaultBatchSize
	for _, bench := range []struct {
		name   string
		size   int // UDP payload bytes
		status uint32
	}{
		{"100B", 100, 0},
		{"100B_csum", 100, unix.TP_STATUS_CSUMNOTREADY},
		{"1472B", 1472, 0},
		{"1472B_csum", 1472, unix.TP_STATUS_CSUMNOTREADY},
	} {
		pkt := make([]byte, 28+bench.size)
		copy(pkt, mustHex(b, completeChecksumTests[0].in)[:28])
		binary.BigEndian.PutUint16(pkt[2:], uint16(len(pkt)))
		binary.BigEndian.PutUint16(pkt[24:], uint16(8+bench.size))
		r := newTestRing(2 * batch)
		for i := range r.frameNr {
			r.put(i, bench.status, pkt, len(pkt))
		}
		bufs, sizes := testBufs(batch, 16+2048)
		b.Run(bench.name, func(b *testing.B) {
			b.SetBytes(int64(batch * len(pkt)))
			b.ReportAllocs()
			for b.Loop() {
				start := r.head
				for i := range batch {
					atomic.StoreUint32(r.status((start+i)%r.frameNr), unix.TP_STATUS_USER|bench.status)
				}
				if n, _ := r.read(bufs, sizes, 16); n != batch {
					b.Fatalf("read %d of %d", n, batch)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/packet")
		})
	}
}
