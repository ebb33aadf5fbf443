package capture

import (
	"encoding/binary"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A TPACKET_V2 receive ring, as the kernel lays it out (Documentation/networking/packet_mmap.rst):
// blocks of blockSize bytes, each holding blockSize/frameSize frames. Every frame starts with
// a struct tpacket2_hdr; on a SOCK_DGRAM socket the packet itself, starting at its network
// header, follows at tp_net:
//
//	 0        4       8         12    14    16     20     24    26    28    32          52     80
//	+--------+-------+---------+-----+-----+------+------+-----+-----+-----+-----------+------+--------
//	| status |  len  | snaplen | mac | net | sec  | nsec | tci | tpid| pad | sockaddr  | pad  | packet
//	|        |       |         |     |     |      |      |     |     |     |   _ll     |      | ...
//	+--------+-------+---------+-----+-----+------+------+-----+-----+-----+-----------+------+--------
//
// status is the handshake: the kernel fills a frame owned by it (TP_STATUS_KERNEL), then sets
// TP_STATUS_USER; the reader copies the packet out and stores TP_STATUS_KERNEL to hand the frame
// back. The kernel fills frames in ring order, so the reader walks them in the same order.
//
// V2 rather than V3: a V3 block goes to the reader only when it is full or its timeout (1 ms at
// the least) expires, which delays a lone packet by up to that long; V2 hands over every frame
// as soon as it is written.

const (
	// tpacket2HdrLen is TPACKET2_HDRLEN: the aligned tpacket2_hdr and a sockaddr_ll.
	tpacket2HdrLen = (unix.SizeofTpacket2Hdr+unix.TPACKET_ALIGNMENT-1)&^(unix.TPACKET_ALIGNMENT-1) +
		unix.SizeofSockaddrLinklayer

	// frameNetOffset is where tpacket_rcv puts the packet in the frame of a SOCK_DGRAM socket,
	// TPACKET_ALIGN(TPACKET2_HDRLEN) + 16 with no PACKET_RESERVE: 80.
	frameNetOffset = (tpacket2HdrLen+unix.TPACKET_ALIGNMENT-1)&^(unix.TPACKET_ALIGNMENT-1) + 16

	// minRingFrames is the fewest frames a ring gets, however small Options.RingBytes.
	minRingFrames = 16
)

// ringLayout is the shape of a ring, as PACKET_RX_RING takes it.
type ringLayout struct {
	frameSize, frameNr int
	blockSize, blockNr int
}

// newRingLayout sizes a ring of about ringBytes for packets up to mtu bytes.
//
// A frame holds the header area and a full-MTU packet, rounded up to a power of two. With a
// power-of-two frame and a block of max(frame, page), blocks hold whole frames with no gap
// at their end, so frame i sits at i*frameSize in the mapping; and blocks are as small as the
// frame allows (one page for MTUs up to 4016), so the kernel's block allocations are cheap.
// The price is the rounding: a 1500-byte MTU needs 1580 bytes and gets 2048.
func newRingLayout(mtu, ringBytes, pageSize int) ringLayout {
	frame := 1
	for frame < frameNetOffset+mtu {
		frame <<= 1
	}
	block := max(frame, pageSize)
	bytes := max(ringBytes, minRingFrames*frame)
	blocks := (bytes + block - 1) / block
	return ringLayout{
		frameSize: frame,
		frameNr:   blocks * (block / frame),
		blockSize: block,
		blockNr:   blocks,
	}
}

func (l ringLayout) size() int { return l.blockSize * l.blockNr }

// ring is a mapped receive ring and the reader's position in it.
type ring struct {
	mem       []byte // the mapping, frameNr*frameSize bytes
	frameSize int
	frameNr   int
	head      int // the next frame the kernel fills after the ones already read
}

// counts are what one walk of the ring saw, added to the AFPacket's counters once per Read.
type counts struct {
	packets, truncated, checksumSkipped uint64
}

// status points at the tp_status word of frame i. Frames are 16-byte aligned in a
// page-aligned mapping, so the word is aligned for atomic access.
func (r *ring) status(i int) *uint32 {
	return (*uint32)(unsafe.Pointer(&r.mem[i*r.frameSize]))
}

// ready reports whether the frame at head holds a packet for the reader.
func (r *ring) ready() bool {
	return atomic.LoadUint32(r.status(r.head))&unix.TP_STATUS_USER != 0
}

// read copies packets from the ring into bufs[i][offset:], in ring order, handing each frame
// back to the kernel as soon as it is copied, until len(bufs) packets are copied or the next
// frame is still the kernel's. Frames it cannot deliver whole are handed back and counted.
// It does not allocate.
func (r *ring) read(bufs [][]byte, sizes []int, offset int) (int, counts) {
	var c counts
	n := 0
	for n < len(bufs) {
		st := r.status(r.head)
		status := atomic.LoadUint32(st) // acquire: the frame's contents are visible after this
		if status&unix.TP_STATUS_USER == 0 {
			break
		}
		size, ok := r.copyFrame(r.head*r.frameSize, status, bufs[n], offset, &c)
		if ok {
			sizes[n] = size
			n++
		}
		atomic.StoreUint32(st, unix.TP_STATUS_KERNEL) // release: done with the frame
		if r.head++; r.head == r.frameNr {
			r.head = 0
		}
	}
	c.packets = uint64(n)
	return n, c
}

// copyFrame copies the packet of the frame at off into buf[offset:] and completes its
// checksum if the kernel left that to the NIC. It reports false, having counted why, for a
// frame it skips.
func (r *ring) copyFrame(off int, status uint32, buf []byte, offset int, c *counts) (int, bool) {
	f := r.mem[off : off+r.frameSize]
	wireLen := binary.NativeEndian.Uint32(f[4:8])       // tp_len
	snapLen := binary.NativeEndian.Uint32(f[8:12])      // tp_snaplen
	netOff := int(binary.NativeEndian.Uint16(f[14:16])) // tp_net
	if snapLen < wireLen || netOff < tpacket2HdrLen || uint64(netOff)+uint64(snapLen) > uint64(len(f)) ||
		offset < 0 || offset > len(buf) || int(snapLen) > len(buf)-offset {
		c.truncated++
		return 0, false
	}
	pkt := buf[offset : offset+int(snapLen)]
	copy(pkt, f[netOff:])
	if status&unix.TP_STATUS_CSUMNOTREADY != 0 {
		if CompleteChecksum(pkt) != nil {
			c.checksumSkipped++
			return 0, false
		}
	}
	return len(pkt), true
}
