package kernelpath

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/perf"

	"mctun/datapath"
)

// dumper hands mctun dump's taps the inner packets a program copies into its dump_events
// while a dump runs: the program copies only while its config's dump flag is up, which the
// first tap raises and the last one lowers.
//
// read takes no lock: it offers to taps, which it reads without one. stop waits for read to
// end while it holds mu, so read must never need mu, or the two would wait for each other
// whenever a dump ended with a copy still to read.
type dumper struct {
	mu     sync.Mutex // add, remove and close, and with them the reader's life
	taps   datapath.Taps
	reader *perf.Reader
	ended  chan struct{}
}

// dumpMeta is what a program puts in front of each copy: struct dump_meta.
const dumpMetaLen = 8

// add starts copying to t. events is the program's dump_events; flag raises or lowers its
// dump flag.
func (d *dumper) add(t *datapath.Tap, events *ebpf.Map, flag func(bool) error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.reader == nil {
		r, err := perf.NewReader(events, 64*os.Getpagesize())
		if err != nil {
			return err
		}
		if err := flag(true); err != nil {
			r.Close()
			return err
		}
		d.reader, d.ended = r, make(chan struct{})
		go d.read(r, d.ended)
	}
	d.taps.Add(t)
	return nil
}

// remove stops copying to t.
func (d *dumper) remove(t *datapath.Tap, flag func(bool) error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.taps.Remove(t) == 0 && d.reader != nil {
		flag(false)
		d.stop()
	}
}

// stop closes the reader and waits for read to end. The caller holds d.mu.
func (d *dumper) stop() error {
	if d.reader == nil {
		return nil
	}
	err := d.reader.Close()
	<-d.ended
	d.reader = nil
	return err
}

func (d *dumper) close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stop()
}

// read offers each copy to the taps until the reader is closed.
func (d *dumper) read(r *perf.Reader, ended chan struct{}) {
	defer close(ended)
	for {
		rec, err := r.Read()
		if errors.Is(err, perf.ErrClosed) {
			return
		}
		if err != nil || len(rec.RawSample) < dumpMetaLen {
			continue
		}
		b := rec.RawSample
		group := netip.AddrFrom4([4]byte(b[0:4]))
		n := int(binary.NativeEndian.Uint16(b[4:6]))
		off := dumpMetaLen + int(b[6])
		if off+n > len(b) {
			continue
		}
		d.taps.Offer(b[off:off+n], group)
	}
}
