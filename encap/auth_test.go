package encap_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"mctun/encap"
	"mctun/encap/encaptest"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

func newAuth(t testing.TB, secret []byte, key uint32) *encap.Auth {
	t.Helper()
	a, err := encap.NewAuth(secret, key)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func newSealer(t testing.TB, a *encap.Auth, epoch uint64, encrypt bool) *encap.Sealer {
	t.Helper()
	s, err := a.NewSealer(epoch, encrypt)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// seal makes an authenticated tunnel packet of inner, in a fresh buffer as the sender side
// lays them out.
func seal(s *encap.Sealer, inner []byte, h encap.Header) []byte {
	buf := make([]byte, encap.Headroom+len(inner)+encap.Tailroom)
	copy(buf[encap.Headroom:], inner)
	return bytes.Clone(s.Seal(buf, len(inner), h))
}

var src = [4]byte{198, 18, 1, 2}

func TestSealWire(t *testing.T) {
	inner := encaptest.UDPPacket(srcAddr, group, []byte("hello"))
	for _, encrypt := range []bool{false, true} {
		s := newSealer(t, newAuth(t, secret, 7), 1_700_000_000_000_000_000, encrypt)
		pkt := seal(s, inner, encap.Header{Key: 7, Seq: 42})
		if len(pkt) != encap.HeaderLen+encap.AuthHeaderLen+len(inner)+encap.TagLen {
			t.Fatalf("length %d", len(pkt))
		}
		want := []byte{0x30, 0x00, 0x88, 0xb5, 0, 0, 0, 7, 0, 0, 0, 42, 1, 0, 0, 0}
		if encrypt {
			want[13] = 1
		}
		if !bytes.Equal(pkt[:16], want) {
			t.Errorf("encrypt=%v: headers % x, want % x", encrypt, pkt[:16], want)
		}
		if e := binary.BigEndian.Uint64(pkt[16:]); e != 1_700_000_000_000_000_000 {
			t.Errorf("epoch %d", e)
		}
		if c := binary.BigEndian.Uint64(pkt[32:]); c != 0 {
			t.Errorf("first counter %d, want 0", c)
		}
		body := pkt[encap.HeaderLen+encap.AuthHeaderLen : len(pkt)-encap.TagLen]
		if bytes.Equal(body, inner) == encrypt {
			t.Errorf("encrypt=%v: inner packet in the clear = %v", encrypt, !encrypt)
		}
		next := seal(s, inner, encap.Header{Key: 7, Seq: 43})
		if c := binary.BigEndian.Uint64(next[32:]); c != 1 {
			t.Errorf("second counter %d, want 1", c)
		}
	}
}

func TestOpen(t *testing.T) {
	inner := encaptest.UDPPacket(srcAddr, group, []byte("hello"))
	for _, encrypt := range []bool{false, true} {
		a := newAuth(t, secret, 7)
		s := newSealer(t, a, 100, encrypt)
		o := a.NewOpener(false)
		pkt := seal(s, inner, encap.Header{Key: 7, Seq: 42})
		res, got, err := o.Open(src, bytes.Clone(pkt))
		if err != nil || !bytes.Equal(got, inner) || res.Header != (encap.Header{Key: 7, Seq: 42}) || !res.New || res.Restarted || res.Epoch != 100 {
			t.Fatalf("encrypt=%v: Open = %+v, % x, %v", encrypt, res, got, err)
		}
		if _, _, err := o.Open(src, bytes.Clone(pkt)); !errors.Is(err, encap.ErrReplay) {
			t.Errorf("encrypt=%v: the same packet again: %v, want ErrReplay", encrypt, err)
		}
	}
}

// TestEveryBitIsCovered flips each bit of an authenticated packet in turn: each flip must be
// refused, and nothing is delivered.
func TestEveryBitIsCovered(t *testing.T) {
	inner := encaptest.UDPPacket(srcAddr, group, []byte("x"))
	for _, encrypt := range []bool{false, true} {
		a := newAuth(t, secret, 7)
		pkt := seal(newSealer(t, a, 100, encrypt), inner, encap.Header{Key: 7, Seq: 1})
		for bit := range len(pkt) * 8 {
			bad := bytes.Clone(pkt)
			bad[bit/8] ^= 1 << (bit % 8)
			if _, got, err := a.NewOpener(false).Open(src, bad); err == nil || got != nil {
				t.Fatalf("encrypt=%v: bit %d flipped: accepted % x", encrypt, bit, got)
			}
		}
	}
}

func TestOpenRefuses(t *testing.T) {
	inner := encaptest.UDPPacket(srcAddr, group, nil)
	a := newAuth(t, secret, 7)
	good := seal(newSealer(t, a, 100, false), inner, encap.Header{Key: 7})
	var plain [encap.HeaderLen]byte
	encap.PutHeader(plain[:], encap.Header{Key: 7})
	tests := []struct {
		name string
		o    *encap.Opener
		pkt  []byte
		err  error
	}{
		{"another secret", newAuth(t, []byte("another secret, just as long...."), 7).NewOpener(false), good, encap.ErrAuthFailed},
		{"another network", newAuth(t, secret, 8).NewOpener(false), good, encap.ErrAuthFailed},
		{"the plain form", a.NewOpener(false), append(plain[:], inner...), encap.ErrNotAuthenticated},
		{"truncated", a.NewOpener(false), good[:encap.HeaderLen+encap.AuthHeaderLen+5], encap.ErrAuthFormat},
		{"no GRE header", a.NewOpener(false), good[:6], encap.ErrTruncated},
		{"not encrypted", a.NewOpener(true), good, encap.ErrNotEncrypted},
	}
	for _, tt := range tests {
		if _, got, err := tt.o.Open(src, bytes.Clone(tt.pkt)); !errors.Is(err, tt.err) || got != nil {
			t.Errorf("%s: Open = % x, %v; want %v", tt.name, got, err, tt.err)
		}
	}
}

// TestReplayWindow: reordering within the window is fine, a counter seen or older than the
// window is a replay, and a forged packet does not spend a counter.
func TestReplayWindow(t *testing.T) {
	a := newAuth(t, secret, 7)
	s := newSealer(t, a, 100, false)
	inner := encaptest.UDPPacket(srcAddr, group, nil)
	pkts := make([][]byte, 5000)
	for i := range pkts {
		pkts[i] = seal(s, inner, encap.Header{Key: 7})
	}
	o := a.NewOpener(false)
	open := func(i int) error { _, _, err := o.Open(src, bytes.Clone(pkts[i])); return err }
	forged := bytes.Clone(pkts[4])
	forged[len(forged)-1] ^= 1
	if _, _, err := o.Open(src, forged); !errors.Is(err, encap.ErrAuthFailed) {
		t.Fatalf("forged: %v", err)
	}
	for _, step := range []struct {
		i   int
		err error
	}{
		{0, nil}, {2, nil}, {1, nil}, {2, encap.ErrReplay}, {4, nil}, {3, nil},
		{4500, nil}, {405, nil}, {404, encap.ErrReplay} /* 4500-404 >= 4096 */, {4500, encap.ErrReplay}, {4999, nil},
	} {
		if err := open(step.i); !errors.Is(err, step.err) {
			t.Errorf("packet %d: %v, want %v", step.i, err, step.err)
		}
	}
}

// TestSenderRestart: a restarted sender (a later epoch) is accepted at once, and from then on
// the older run's packets are replays; a forger's later epoch changes nothing.
func TestSenderRestart(t *testing.T) {
	a := newAuth(t, secret, 7)
	inner := encaptest.UDPPacket(srcAddr, group, nil)
	first := newSealer(t, a, 100, false)
	old := [][]byte{seal(first, inner, encap.Header{Key: 7}), seal(first, inner, encap.Header{Key: 7})}
	o := a.NewOpener(false)
	if _, _, err := o.Open(src, bytes.Clone(old[0])); err != nil {
		t.Fatal(err)
	}
	forger := newSealer(t, newAuth(t, []byte("not the secret, but long enough."), 7), 999, false)
	if _, _, err := o.Open(src, seal(forger, inner, encap.Header{Key: 7})); !errors.Is(err, encap.ErrAuthFailed) {
		t.Fatalf("forger's later epoch: %v", err)
	}
	second := newSealer(t, a, encap.NextEpoch(50, first.Epoch()), false) // the clock went back
	res, _, err := o.Open(src, seal(second, inner, encap.Header{Key: 7}))
	if err != nil || !res.Restarted || res.Epoch != 101 {
		t.Fatalf("restarted sender: %+v, %v; want accepted as a restart", res, err)
	}
	if _, _, err := o.Open(src, bytes.Clone(old[1])); !errors.Is(err, encap.ErrReplay) {
		t.Errorf("the old run's packet after the restart: %v, want ErrReplay", err)
	}
	// Packets of one sender do not disturb another's.
	if _, _, err := o.Open([4]byte{198, 18, 9, 9}, bytes.Clone(old[1])); err != nil {
		t.Errorf("the same packet from another source: %v", err)
	}
}

// TestEpochFloor: the epochs a receiver saw, set again after its restart, keep an older run
// out and let the current run in.
func TestEpochFloor(t *testing.T) {
	a := newAuth(t, secret, 7)
	inner := encaptest.UDPPacket(srcAddr, group, nil)
	oldRun, curRun := newSealer(t, a, 100, false), newSealer(t, a, 200, false)
	o := a.NewOpener(false)
	o.SetEpoch(src, 200)
	if _, _, err := o.Open(src, seal(oldRun, inner, encap.Header{Key: 7})); !errors.Is(err, encap.ErrReplay) {
		t.Errorf("an older run after the floor: %v, want ErrReplay", err)
	}
	if res, _, err := o.Open(src, seal(curRun, inner, encap.Header{Key: 7})); err != nil || res.Restarted {
		t.Errorf("the run of the floor's epoch: %+v, %v; want accepted, not a restart", res, err)
	}
}

func TestNewAuthRefusesShortSecret(t *testing.T) {
	if _, err := encap.NewAuth([]byte("short"), 0); err == nil {
		t.Fatal("a 5-byte secret was accepted")
	}
}

func BenchmarkSeal(b *testing.B) {
	for _, encrypt := range []bool{false, true} {
		b.Run(map[bool]string{false: "auth", true: "encrypt"}[encrypt], func(b *testing.B) {
			s := newSealer(b, newAuth(b, secret, 7), 1, encrypt)
			inner := encaptest.UDPPacket(srcAddr, group, make([]byte, 1200))
			buf := make([]byte, encap.Headroom+len(inner)+encap.Tailroom)
			b.SetBytes(int64(len(inner)))
			b.ReportAllocs()
			for b.Loop() {
				copy(buf[encap.Headroom:], inner)
				s.Seal(buf, len(inner), encap.Header{Key: 7})
			}
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	for _, encrypt := range []bool{false, true} {
		b.Run(map[bool]string{false: "auth", true: "encrypt"}[encrypt], func(b *testing.B) {
			a := newAuth(b, secret, 7)
			s := newSealer(b, a, 1, encrypt)
			o := a.NewOpener(false)
			inner := encaptest.UDPPacket(srcAddr, group, make([]byte, 1200))
			bufs := make([][]byte, 1024)
			pkts := make([][]byte, len(bufs))
			reseal := func() { // fresh counters, as the replay window wants
				for i := range bufs {
					copy(bufs[i][encap.Headroom:], inner)
					pkts[i] = s.Seal(bufs[i], len(inner), encap.Header{Key: 7})
				}
			}
			for i := range bufs {
				bufs[i] = make([]byte, encap.Headroom+len(inner)+encap.Tailroom)
			}
			reseal()
			b.SetBytes(int64(len(inner)))
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if i == len(pkts) {
					b.StopTimer()
					reseal()
					b.StartTimer()
					i = 0
				}
				if _, _, err := o.Open(src, pkts[i]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// TestOpenerKeepsOnlyAuthenticated: packets forged from many addresses, however well-formed,
// leave no state behind; a source that authenticates is kept.
func TestOpenerKeepsOnlyAuthenticated(t *testing.T) {
	a := newAuth(t, secret, 0)
	o := a.NewOpener(false)
	other := newAuth(t, []byte("another secret, 32 bytes long..."), 0)
	forger, err := other.NewSealer(1, false)
	if err != nil {
		t.Fatal(err)
	}
	inner := []byte("inner")
	seal := func(s *encap.Sealer) []byte {
		buf := make([]byte, encap.Headroom+len(inner)+encap.Tailroom)
		copy(buf[encap.Headroom:], inner)
		return s.Seal(buf, len(inner), encap.Header{})
	}
	for i := range 10000 {
		src := [4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}
		if _, _, err := o.Open(src, seal(forger)); !errors.Is(err, encap.ErrAuthFailed) {
			t.Fatalf("forged packet: %v", err)
		}
	}
	if n := o.Peers(); n != 0 {
		t.Fatalf("%d sources kept after forged packets only", n)
	}
	s, err := a.NewSealer(1, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := o.Open([4]byte{10, 0, 0, 1}, seal(s)); err != nil {
		t.Fatal(err)
	}
	if n := o.Peers(); n != 1 {
		t.Fatalf("%d sources kept, want the one that authenticated", n)
	}
}
