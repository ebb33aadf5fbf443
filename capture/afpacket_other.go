//go:build !linux

package capture

import (
	"errors"
	"fmt"
)

// AFPacket exists on Linux only; elsewhere OpenAFPacket fails.
type AFPacket struct{}

// OpenAFPacket fails: AF_PACKET is Linux's.
func OpenAFPacket(ifname string, opts Options) (*AFPacket, error) {
	return nil, fmt.Errorf("capture: open %s: %w", ifname, errors.ErrUnsupported)
}

func (*AFPacket) Read([][]byte, []int, int) (int, error) { return 0, errors.ErrUnsupported }
func (*AFPacket) BatchSize() int                         { return 1 }
func (*AFPacket) MaxPacketSize() int                     { return 0 }
func (*AFPacket) Close() error                           { return nil }
func (*AFPacket) Stats() Stats                           { return Stats{} }
