// Package tuntest is an in-memory twin of tun.Device: what the receiver side writes comes out
// of Injected, and what a test puts into Outbound is what Read returns, as if the host had
// routed it into the TUN.
package tuntest

import (
	"fmt"
	"net"

	"mctun/capture/capturetest"
)

// Device implements tun.Device in memory. Its read direction is a capturetest.Source: the
// host's outbound packets are just another capture source.
type Device struct {
	*capturetest.Source
	Injected chan []byte // packets written to the device, copied
	Outbound chan []byte // packets for Read to return (the Source's Packets)
}

// New returns a Device whose channels hold up to queue packets.
func New(queue int) *Device {
	src := capturetest.New(queue)
	return &Device{Source: src, Injected: make(chan []byte, queue), Outbound: src.Packets}
}

// Name implements tun.Device.
func (d *Device) Name() string { return "tuntest0" }

// Write implements tun.Device. It blocks while Injected is full, like a slow host.
func (d *Device) Write(bufs [][]byte, offset int) (int, error) {
	for i, b := range bufs {
		select {
		case d.Injected <- append([]byte(nil), b[offset:]...):
		case <-d.Done():
			return i, fmt.Errorf("tuntest: %w", net.ErrClosed)
		}
	}
	return len(bufs), nil
}
