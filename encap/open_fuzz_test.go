package encap

import (
	"bytes"
	"errors"
	"slices"
	"sync"
	"testing"
)

// sealedRef is a tunnel packet sealed by a known sending instance, and what Open must make
// of it.
type sealedRef struct {
	pkt     []byte
	inner   []byte
	hdr     Header
	epoch   uint64
	encrypt bool
	valid   bool // sealed with the Opener's secret and network key
}

// The references FuzzOpen's Opener is judged against: two runs of a sender with the
// Opener's secret and network key (epoch 1000, plain; epoch 2000, encrypted), one with
// another secret and one with another network key. Bit i of FuzzOpen's pre opens
// fuzzRefs[i] before the input.
var (
	fuzzRefsOnce sync.Once
	fuzzRefs     []sealedRef
	fuzzAuth     *Auth
	fuzzSrc      = [4]byte{198, 18, 1, 2}
)

const fuzzKey = 7

func openRefs(tb testing.TB) ([]sealedRef, *Auth) {
	fuzzRefsOnce.Do(func() {
		mustAuth := func(secret string, key uint32) *Auth {
			a, err := NewAuth([]byte(secret), key)
			if err != nil {
				tb.Fatal(err)
			}
			return a
		}
		fuzzAuth = mustAuth("0123456789abcdef0123456789abcdef", fuzzKey)
		other := mustAuth("fedcba9876543210fedcba9876543210", fuzzKey)
		otherKey := mustAuth("0123456789abcdef0123456789abcdef", fuzzKey+1)
		// Sealers with a fixed instance, so that the references, and the seed corpus in
		// testdata/fuzz/FuzzOpen made from them, are the same on every run.
		sealer := func(a *Auth, epoch, instance uint64, encrypt bool) *Sealer {
			aead, err := a.packetKey(epoch, instance)
			if err != nil {
				tb.Fatal(err)
			}
			return &Sealer{aead: aead, epoch: epoch, instance: instance, encrypt: encrypt}
		}
		seal := func(s *Sealer, valid bool, inner string, h Header) sealedRef {
			buf := make([]byte, Headroom+len(inner)+Tailroom)
			copy(buf[Headroom:], inner)
			return sealedRef{pkt: bytes.Clone(s.Seal(buf, len(inner), h)), inner: []byte(inner), hdr: h,
				epoch: s.epoch, encrypt: s.encrypt, valid: valid}
		}
		first := sealer(fuzzAuth, 1000, 0x0102030405060708, false)
		second := sealer(fuzzAuth, 2000, 0x1112131415161718, true)
		fuzzRefs = []sealedRef{
			seal(first, true, "\x45 an inner packet", Header{Key: fuzzKey, Seq: 0}),
			seal(first, true, "", Header{Key: fuzzKey, Seq: 1}),
			seal(first, true, "\x45 the third", Header{Key: fuzzKey + 1, Seq: 2}), // authentic; the key is the receiver's to check
			seal(second, true, "\x45 encrypted", Header{Key: fuzzKey, Seq: 0}),
			seal(second, true, "\x45 encrypted again", Header{Key: fuzzKey, Seq: 1}),
			seal(sealer(other, 3000, 0x2122232425262728, false), false, "\x45 another secret", Header{Key: fuzzKey}),
			seal(sealer(otherKey, 3000, 0x3132333435363738, true), false, "\x45 another network", Header{Key: fuzzKey + 1}),
		}
	})
	return fuzzRefs, fuzzAuth
}

// FuzzOpen feeds an Opener arbitrary bytes and mutations of authenticated tunnel packets,
// after it has opened the references that pre names (bit 7 of pre: it requires encryption).
// Open must never panic, and must never return an inner packet, or even authenticate a
// packet, unless it is byte for byte one the matching sender sealed that the Opener has not
// taken before and that is not from an older run than one it took; it must take every such
// packet. The seed corpus (testdata/fuzz/FuzzOpen) holds the references and edge cases.
func FuzzOpen(f *testing.F) {
	refs, _ := openRefs(f)
	for i, r := range refs {
		f.Add(r.pkt, uint8(0))
		f.Add(r.pkt, uint8(1)<<i) // a replay
		f.Add(r.pkt, uint8(0x80))
	}
	f.Add(refs[0].pkt, uint8(1<<3)) // an older run
	f.Add(refs[0].pkt[:HeaderLen+AuthHeaderLen+TagLen-1], uint8(0))
	f.Add([]byte{0x30, 0, 0x08, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0x45}, uint8(0)) // the plain form
	f.Fuzz(func(t *testing.T, pkt []byte, pre uint8) {
		refs, auth := openRefs(t)
		o := auth.NewOpener(pre&0x80 != 0)
		// The model: the newest run taken, and the references taken.
		var newest uint64
		taken := map[int]bool{}
		expect := func(i int) bool { // whether Open must authenticate refs[i] now
			r := refs[i]
			return r.valid && !taken[i] && r.epoch >= newest
		}
		check := func(what string, i int, pkt []byte) {
			res, inner, err := o.Open(fuzzSrc, bytes.Clone(pkt))
			authenticated := err == nil || errors.Is(err, ErrNotEncrypted)
			if err != nil && inner != nil {
				t.Fatalf("%s: an inner packet with error %v", what, err)
			}
			if !slices.Contains([]error{nil, ErrTruncated, ErrNotAuthenticated, ErrAuthFormat, ErrAuthFailed, ErrReplay, ErrNotEncrypted}, err) {
				t.Fatalf("%s: error %v is none of Open's", what, err)
			}
			if i < 0 {
				if authenticated {
					t.Fatalf("%s: authenticated a packet no sender sealed: % x", what, pkt)
				}
				return
			}
			r := refs[i]
			if want := expect(i); authenticated != want {
				t.Fatalf("%s: reference %d (epoch %d, newest taken %d, taken before %v): authenticated %v (%v), want %v",
					what, i, r.epoch, newest, taken[i], authenticated, err, want)
			}
			if !authenticated {
				return
			}
			if res.Header != r.hdr || res.Epoch != r.epoch {
				t.Fatalf("%s: reference %d opened as %+v, want header %+v epoch %d", what, i, res, r.hdr, r.epoch)
			}
			if o.requireEncrypt && !r.encrypt {
				if !errors.Is(err, ErrNotEncrypted) {
					t.Fatalf("%s: a packet in the clear, taken where encryption is required: %v", what, err)
				}
			} else if err != nil || !bytes.Equal(inner, r.inner) {
				t.Fatalf("%s: reference %d: inner %q, %v; want %q", what, i, inner, err, r.inner)
			}
			taken[i], newest = true, max(newest, r.epoch)
		}
		for i := range refs {
			if pre&(1<<i) != 0 {
				check("before the input", i, refs[i].pkt)
			}
		}
		match := -1
		for i, r := range refs {
			if r.valid && bytes.Equal(pkt, r.pkt) {
				match = i
			}
		}
		check("the input", match, pkt)
		check("the input again", match, pkt) // never twice
	})
}
