package encap

// The authenticated form of a tunnel packet, used when both ends have the secret:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|0|0|1|1|        reserved0        | ver |  protocol type 0x88B5   |  GRE, as in the
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+  plain form but for
//	|                 key (mctun network id)                          |  the protocol type
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|        sequence number (per source and group, from 0)           |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  version (1)  |0 0 0 0 0 0 0 E|         reserved (0)            |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|       epoch: the sending instance's start, ns since 1970        |
//	+                            (64 bits)                            +
//	|                                                                 |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|       instance: chosen at random when it starts (64 bits)       |
//	+                                                                 +
//	|                                                                 |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|       counter: the instance's packets, from 0 (64 bits)         |
//	+                                                                 +
//	|                                                                 |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|       the inner packet (E = 0), or the inner packet encrypted   |
//	|       (E = 1)                                                   |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|       tag: AES-256-GCM, 16 bytes                                |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// The tag covers everything before it: the GRE header, the auth header and, unencrypted, the
// inner packet. 0x88B5 (IEEE 802 local experimental) keeps RFC 8086 decoders from reading the
// payload as IPv4; the plain form stays exactly RFC 8086.
//
// Keys. The secret and the network key give a master key (HKDF-SHA256, salt "mctun-v1" and
// the network key), and each sending instance its own packet key (HKDF-Expand with its epoch
// and instance). An instance never repeats a counter, and no two instances share a key, so
// the GCM nonce, the instance's last 4 bytes and the counter, is never reused under a key,
// however many senders share the secret.
//
// Replay and restart. A receiver keeps, per source, the newest instance it has authenticated
// and a window over its counters: a counter seen before, or older than the window, is a
// replay. A valid packet from an instance with a later epoch means the sender restarted: it
// is taken at once, and the older instance's packets are replays from then on. Senders make
// their epochs increase even across a clock step back (see NextEpoch), so a restart is never
// refused.

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"

	"mctun/internal/bitring"
)

const (
	// AuthHeaderLen is the auth header that follows the GRE header in the authenticated form.
	AuthHeaderLen = 28
	// TagLen is the length of the tag that ends an authenticated tunnel packet.
	TagLen = 16
	// Tailroom is how many bytes a caller leaves free after an inner packet for Seal's tag.
	Tailroom = TagLen

	ethertypeAuth = 0x88b5
	authVersion   = 1
	flagEncrypted = 0x01

	offEpoch    = HeaderLen + 4
	offInstance = HeaderLen + 12
	offCounter  = HeaderLen + 20
	offNonce    = offInstance + 4 // the nonce: the instance's last 4 bytes and the counter
)

// Errors Open returns.
var (
	ErrNotAuthenticated = errors.New("tunnel packet is not in the authenticated form")
	ErrAuthFormat       = errors.New("malformed auth header")
	ErrAuthFailed       = errors.New("authentication failed")
	ErrReplay           = errors.New("replayed tunnel packet")
	ErrNotEncrypted     = errors.New("tunnel packet is not encrypted")
)

// MinSecret is the shortest secret accepted, in bytes.
const MinSecret = 16

// Auth holds the master key that a secret gives for one network.
type Auth struct {
	master []byte // HKDF pseudorandom key
}

// NewAuth derives the master key from the secret for the network with the given GRE key.
func NewAuth(secret []byte, networkKey uint32) (*Auth, error) {
	if len(secret) < MinSecret {
		return nil, fmt.Errorf("the secret is %d bytes; use at least %d random bytes", len(secret), MinSecret)
	}
	salt := binary.BigEndian.AppendUint32([]byte("mctun-v1"), networkKey)
	master, err := hkdf.Extract(sha256.New, secret, salt)
	if err != nil {
		return nil, err
	}
	return &Auth{master: master}, nil
}

// packetKey is the AEAD of one sending instance.
func (a *Auth) packetKey(epoch, instance uint64) (cipher.AEAD, error) {
	info := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64([]byte("mctun-v1 packet key"), epoch), instance)
	key, err := hkdf.Expand(sha256.New, a.master, string(info), 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// Sealer makes authenticated tunnel packets for one sending instance. It is safe for
// concurrent use.
type Sealer struct {
	aead            cipher.AEAD
	epoch, instance uint64
	encrypt         bool
	counter         atomic.Uint64
}

// NewSealer starts a sending instance with the given epoch (see NextEpoch) and a random
// instance number; with encrypt set, the inner packets are encrypted as well.
func (a *Auth) NewSealer(epoch uint64, encrypt bool) (*Sealer, error) {
	var r [8]byte
	if _, err := rand.Read(r[:]); err != nil {
		return nil, err
	}
	instance := binary.BigEndian.Uint64(r[:])
	aead, err := a.packetKey(epoch, instance)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: aead, epoch: epoch, instance: instance, encrypt: encrypt}, nil
}

// NextEpoch is the epoch of an instance starting now, given the previous instance's: the
// time in nanoseconds, or one more than the previous if the clock is behind it, so that a
// restart always looks like one.
func NextEpoch(now int64, previous uint64) uint64 {
	return max(uint64(now), previous+1)
}

// Epoch is the instance's epoch.
func (s *Sealer) Epoch() uint64 { return s.epoch }

// Seal turns the inner packet at buf[AuthHeadroom:AuthHeadroom+n] into an authenticated
// tunnel packet in place: the headers go into the headroom, the tag into the Tailroom bytes
// after the packet, and with encryption the inner packet is encrypted where it is. It
// returns the tunnel packet.
func (s *Sealer) Seal(buf []byte, n int, h Header) []byte {
	start := Headroom - HeaderLen - AuthHeaderLen
	p := buf[start : Headroom+n+TagLen]
	PutHeader(p, h)
	binary.BigEndian.PutUint16(p[2:], ethertypeAuth)
	p[HeaderLen] = authVersion
	p[HeaderLen+1] = 0
	if s.encrypt {
		p[HeaderLen+1] = flagEncrypted
	}
	p[HeaderLen+2], p[HeaderLen+3] = 0, 0
	binary.BigEndian.PutUint64(p[offEpoch:], s.epoch)
	binary.BigEndian.PutUint64(p[offInstance:], s.instance)
	binary.BigEndian.PutUint64(p[offCounter:], s.counter.Add(1)-1)
	nonce := p[offNonce : offNonce+12]
	inner := p[HeaderLen+AuthHeaderLen : HeaderLen+AuthHeaderLen+n]
	if s.encrypt {
		s.aead.Seal(inner[:0], nonce, inner, p[:HeaderLen+AuthHeaderLen])
	} else {
		s.aead.Seal(inner[n:n], nonce, nil, p[:HeaderLen+AuthHeaderLen+n])
	}
	return p
}

// Opener checks authenticated tunnel packets on the receiver side. It is owned by one
// goroutine, the receive loop.
type Opener struct {
	auth           *Auth
	requireEncrypt bool
	peers          map[[4]byte]*peer
}

// peer is what an Opener knows of one source: the newest instance it authenticated, and
// the last instance it derived a key for, whose packets have not yet passed (a restarted
// sender's first packet, or a forger's).
type peer struct {
	current, candidate *instance
}

type instance struct {
	epoch, id uint64
	aead      cipher.AEAD
	window    replayWindow
}

// NewOpener returns an Opener; with requireEncrypt set it refuses packets not encrypted.
func (a *Auth) NewOpener(requireEncrypt bool) *Opener {
	return &Opener{auth: a, requireEncrypt: requireEncrypt, peers: make(map[[4]byte]*peer)}
}

// Opened is what Open learned besides the inner packet.
type Opened struct {
	Header
	Epoch uint64 // the sending instance's epoch
	// New is set for the first authenticated packet of an instance: from then on, older
	// instances of the source are refused.
	New bool
	// Restarted is set when that instance is newer than one the source had before: the
	// sender restarted.
	Restarted bool
}

// SetEpoch makes the Opener refuse instances of src older than epoch. A receiver keeps the
// newest epoch of each source across its own restarts this way, so packets of an earlier run
// of a sender, replayed just after the receiver starts, cannot get in. An instance of that
// very epoch is accepted, with a window that starts afresh.
func (o *Opener) SetEpoch(src [4]byte, epoch uint64) {
	o.peers[src] = &peer{current: &instance{epoch: epoch}}
}

// Open checks an authenticated tunnel packet from src and returns its header and inner
// packet, decrypted in place if it was encrypted. The tag is checked before anything after
// the auth header is looked at; the counter must not have been seen before; a packet of an
// older instance than the newest authenticated one from src is a replay.
func (o *Opener) Open(src [4]byte, pkt []byte) (Opened, []byte, error) {
	if len(pkt) < HeaderLen || binary.BigEndian.Uint16(pkt[0:]) != greFlagsKS {
		return Opened{}, nil, ErrTruncated
	}
	if binary.BigEndian.Uint16(pkt[2:]) != ethertypeAuth {
		return Opened{}, nil, ErrNotAuthenticated
	}
	if len(pkt) < HeaderLen+AuthHeaderLen+TagLen || pkt[HeaderLen] != authVersion ||
		pkt[HeaderLen+1]&^flagEncrypted != 0 || pkt[HeaderLen+2] != 0 || pkt[HeaderLen+3] != 0 {
		return Opened{}, nil, ErrAuthFormat
	}
	encrypted := pkt[HeaderLen+1]&flagEncrypted != 0
	epoch := binary.BigEndian.Uint64(pkt[offEpoch:])
	id := binary.BigEndian.Uint64(pkt[offInstance:])
	counter := binary.BigEndian.Uint64(pkt[offCounter:])

	p := o.peers[src]
	if p == nil {
		// Kept only once an instance of src authenticates: packets forged from any number
		// of addresses cost no memory.
		p = &peer{}
	}
	inst, fresh := p.current, false
	switch {
	case inst != nil && inst.aead != nil && inst.epoch == epoch && inst.id == id:
	case inst != nil && (epoch < inst.epoch || epoch == inst.epoch && inst.aead != nil):
		return Opened{}, nil, ErrReplay // an older run of the sender
	default: // a newer run, or the first we hear of: authenticate before believing it
		if c := p.candidate; c == nil || c.epoch != epoch || c.id != id {
			aead, err := o.auth.packetKey(epoch, id)
			if err != nil {
				return Opened{}, nil, err
			}
			p.candidate = &instance{epoch: epoch, id: id, aead: aead}
		}
		inst, fresh = p.candidate, true
	}
	if !inst.window.fresh(counter) {
		return Opened{}, nil, ErrReplay
	}
	nonce := pkt[offNonce : offNonce+12]
	body := pkt[HeaderLen+AuthHeaderLen:]
	var inner []byte
	if encrypted {
		pt, err := inst.aead.Open(body[:0], nonce, body, pkt[:HeaderLen+AuthHeaderLen])
		if err != nil {
			return Opened{}, nil, ErrAuthFailed
		}
		inner = pt
	} else {
		inner = body[:len(body)-TagLen]
		if _, err := inst.aead.Open(nil, nonce, body[len(inner):], pkt[:len(pkt)-TagLen]); err != nil {
			return Opened{}, nil, ErrAuthFailed
		}
	}
	inst.window.mark(counter)
	res := Opened{Header: Header{Key: binary.BigEndian.Uint32(pkt[4:]), Seq: binary.BigEndian.Uint32(pkt[8:])}, Epoch: epoch}
	if fresh {
		res.New = true
		res.Restarted = p.current != nil && epoch > p.current.epoch
		p.current, p.candidate = inst, nil
		o.peers[src] = p
	}
	if o.requireEncrypt && !encrypted {
		return res, nil, ErrNotEncrypted
	}
	return res, inner, nil
}

// replayWindow remembers which of the last replayWindowSize counters were seen.
type replayWindow struct {
	started bool
	top     uint64 // the highest counter seen
	bits    [replayWindowSize / 64]uint64
}

const replayWindowSize = 4096

// fresh reports whether counter may be accepted: newer than anything seen, or within the
// window and not seen yet.
func (w *replayWindow) fresh(counter uint64) bool {
	switch {
	case !w.started || counter > w.top:
		return true
	case w.top-counter >= replayWindowSize:
		return false
	}
	return !bitring.Has(w.bits[:], counter)
}

// mark records counter as seen; the caller checked it with fresh.
func (w *replayWindow) mark(counter uint64) {
	switch {
	case !w.started: // a new window: its bits are all clear
		w.started, w.top = true, counter
	case counter > w.top: // forget what slides out of the window
		bitring.Clear(w.bits[:], w.top+1, counter-w.top-1)
		w.top = counter
	}
	bitring.Set(w.bits[:], counter)
}
