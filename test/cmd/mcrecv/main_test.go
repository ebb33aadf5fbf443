package main

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		args    string
		wantErr string
	}{
		{args: ""},
		{args: "-group 224.0.0.18 -proto 112 -count 10 -size 40"},
		{args: "-group 0.0.0.0 -port 7000"},
		{args: "-group ::1", wantErr: "not an IPv4 address"},
		{args: "-size 8", wantErr: "-size 8"},
		{args: "-idle 0s", wantErr: "-idle"},
		{args: "-timeout 0s", wantErr: "-timeout"},
		{args: "-max-seq 0", wantErr: "-max-seq"},
		{args: "-port 70000", wantErr: "-port 70000"},
		{args: "-batch 2000", wantErr: "-batch 2000"},
		{args: "extra", wantErr: "unexpected arguments"},
	}
	for _, tt := range tests {
		_, err := parseFlags(strings.Fields(tt.args))
		if tt.wantErr == "" && err != nil {
			t.Errorf("%q: %v", tt.args, err)
		}
		if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%q: err = %v, want one containing %q", tt.args, err, tt.wantErr)
		}
	}
}

func TestRawPayload(t *testing.T) {
	r := &receiver{cfg: config{group: netip.MustParseAddr("224.0.0.18")}}
	hdr := func(ihl byte, dst [4]byte) []byte {
		b := make([]byte, int(ihl)*4+3)
		b[0] = 0x40 | ihl
		copy(b[16:20], dst[:])
		copy(b[int(ihl)*4:], "abc")
		return b
	}
	tests := []struct {
		name string
		pkt  []byte
		want string
		ok   bool
	}{
		{name: "to the group", pkt: hdr(5, [4]byte{224, 0, 0, 18}), want: "abc", ok: true},
		{name: "with IP options", pkt: hdr(6, [4]byte{224, 0, 0, 18}), want: "abc", ok: true},
		{name: "another group", pkt: hdr(5, [4]byte{224, 0, 0, 19})},
		{name: "short", pkt: make([]byte, 19)},
		{name: "IPv6", pkt: append([]byte{0x60}, make([]byte, 40)...)},
		{name: "header length past the end", pkt: append([]byte{0x4f}, make([]byte, 30)...)},
	}
	for _, tt := range tests {
		got, ok := r.rawPayload(tt.pkt)
		if ok != tt.ok || string(got) != tt.want {
			t.Errorf("%s: rawPayload = %q, %v; want %q, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}
