package main

import (
	"fmt"
	"strings"
	"testing"
)

// frame lines of perf script's output, innermost first.
func stack(funcs ...string) string {
	var b strings.Builder
	for i, f := range funcs {
		fmt.Fprintf(&b, "\tffffffff8100%04x %s+0x1%x ([kernel.kallsyms])\n", i, f, i)
	}
	return b.String()
}

// profile is perf script's output for a run of 3 seconds of traffic (11 to 13) between
// seconds with little: in each second, n samples of the receiver and one of each other kind.
func profile(n map[int]int) string {
	var b strings.Builder
	for sec := 10; sec <= 14; sec++ {
		for i := range n[sec] {
			fmt.Fprintf(&b, "mcrecv %d.%06d: \n%s\n", sec, i, stack("udp_recvmsg", "__sys_recvmsg"))
		}
		fmt.Fprintf(&b, "swapper %d.5: \n%s\n", sec, stack("pv_native_safe_halt", "default_idle", "do_idle"))
		fmt.Fprintf(&b, "mcsend %d.6: \n%s\n", sec, stack("veth_xmit", "__dev_queue_xmit", "udp_sendmsg"))
		fmt.Fprintf(&b, "mcsend %d.7: \n%s\n", sec, stack("_raw_spin_unlock_irqrestore", "sock_def_readable", "net_rx_action"))
		fmt.Fprintf(&b, "kworker/0:1-events %d.8: \n%s\n", sec, stack("memcpy", "process_one_work"))
		fmt.Fprintf(&b, "mcsend %d.9: \n%s\n", sec, stack("bpf_prog_6dd8d210a09be3a3_mctun_ingress", "[unknown]", "[unknown]"))
	}
	return b.String()
}

func TestSplit(t *testing.T) {
	// 11 starts the run partly: it has fewer of the receiver's samples; 14 has some, after.
	in := profile(map[int]int{11: 2, 12: 10, 13: 9, 14: 1})
	var out strings.Builder
	if err := run(strings.NewReader(in), &out, "mcrecv", []string{"mcsend", "mcrecv"}, 0.8, 5); err != nil {
		t.Fatal(err)
	}
	// Seconds 12 and 13: 19 of the receiver's samples, and in each two packet path samples
	// (one in a program perf could not unwind), one wake-up and one other sample.
	want := `2 steady seconds, 13.5 busy samples per second

packet path         2.0 /s   14.8%
wake-ups            1.0 /s    7.4%
applications        9.5 /s   70.4%
other               1.0 /s    7.4%

packet path by function:
      1.0 /s  bpf_prog_6dd8d210a09be3a3_mctun_ingress
      1.0 /s  veth_xmit
`
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
}

func TestHeader(t *testing.T) {
	tests := []struct {
		line    string
		comm    string
		second  int64
		wantErr bool
	}{
		{line: "swapper 71282.561648: ", comm: "swapper", second: 71282},
		{line: "kworker/u8:2-ev 71282.5: ", comm: "kworker/u8:2-ev", second: 71282},
		{line: "Web Content 12.000001:  cpu-clock: ", comm: "Web Content", second: 12},
		{line: "swapper 0 [000] 71282.561648: 1 cpu-clock:", comm: "swapper 0 [000]", second: 71282},
		{line: "no time here", wantErr: true},
	}
	for _, tt := range tests {
		s, err := header(tt.line)
		if (err != nil) != tt.wantErr || s.comm != tt.comm || s.second != tt.second {
			t.Errorf("header(%q) = %q %d, %v; want %q %d, error %v", tt.line, s.comm, s.second, err, tt.comm, tt.second, tt.wantErr)
		}
	}
}

func TestBadInput(t *testing.T) {
	for _, tt := range []struct {
		in, wantErr string
		frac        float64
	}{
		{in: "garbage\n", frac: 0.8, wantErr: "line 1"},
		{in: profile(map[int]int{}), frac: 0.8, wantErr: "no sample of mcrecv"},
		{in: "", frac: 0, wantErr: "-steady 0"},
	} {
		err := run(strings.NewReader(tt.in), &strings.Builder{}, "mcrecv", nil, tt.frac, 5)
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("run = %v, want an error with %q", err, tt.wantErr)
		}
	}
}
