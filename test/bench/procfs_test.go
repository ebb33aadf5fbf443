package main

import (
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
)

const procStat = `cpu  168681 5 52240 456741 1119 0 6918 411 100 7
cpu0 83650 0 25320 231052 160 0 3078 197 0 0
cpu1 85031 5 26920 225689 959 0 3840 214 100 7
intr 123 4 5
ctxt 9999
`

func TestParseProcStat(t *testing.T) {
	c, err := parseProcStat([]byte(procStat))
	if err != nil {
		t.Fatal(err)
	}
	// guest and guest_nice (100, 7) are inside user and nice already: not added again.
	wantTotal := uint64(168681 + 5 + 52240 + 456741 + 1119 + 0 + 6918 + 411)
	if c.Total != wantTotal || c.Idle != 456741+1119 {
		t.Fatalf("got %+v, want total %d idle %d", c, wantTotal, 456741+1119)
	}
	if c.Steal != 411 {
		t.Fatalf("steal %d, want 411", c.Steal)
	}
	if c.Busy() != 168681+5+52240+6918 {
		t.Fatalf("busy %d", c.Busy())
	}
	if c.CPUs != 2 {
		t.Fatalf("%d CPUs, want 2", c.CPUs)
	}
}

func TestParseProcStatOldKernel(t *testing.T) {
	c, err := parseProcStat([]byte("cpu 10 20 30 40\ncpu0 10 20 30 40\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Total != 100 || c.Idle != 40 || c.CPUs != 1 {
		t.Fatalf("got %+v", c)
	}
}

func TestParseProcStatErrors(t *testing.T) {
	for _, in := range []string{"", "cpu0 1 2 3 4\n", "cpu 1 2 3\ncpu0 1 2 3\n", "cpu 1 2 x 4\ncpu0 1 2 x 4\n", "cpu 1 2 3 4\n"} {
		if _, err := parseProcStat([]byte(in)); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}

func TestBusySecondsSince(t *testing.T) {
	t0 := time.Now()
	before := cpuTimes{Total: 1000, Idle: 600, CPUs: 2, At: t0}
	// 2.2 s on 2 CPUs; the sampled fields say 150 jiffies busy, exact idle 250.
	after := cpuTimes{Total: 1400, Idle: 850, CPUs: 2, At: t0.Add(2200 * time.Millisecond)}
	if got := after.busySecondsSince(before); got != 1.5 {
		t.Fatalf("busy seconds %v, want 1.5 (150 jiffies at USER_HZ 100)", got)
	}
	if got := after.busyElapsedSince(before); math.Abs(got-1.9) > 1e-9 {
		t.Fatalf("busy by elapsed time %v, want 1.9 (4.4 s of CPU time less 2.5 s idle)", got)
	}
	// The same, with 0.4 s of it stolen by a hypervisor: not busy, and not idle either.
	before.Steal, after.Steal = 100, 140
	after.Total += 40
	if got := after.busySecondsSince(before); math.Abs(got-1.5) > 1e-9 {
		t.Fatalf("busy seconds with steal %v, want 1.5", got)
	}
	if got := after.busyElapsedSince(before); math.Abs(got-1.5) > 1e-9 {
		t.Fatalf("busy by elapsed time with steal %v, want 1.5 (4.4 s less 2.5 s idle, 0.4 s stolen)", got)
	}
	if got := after.stolenSince(before); math.Abs(got-0.4) > 1e-9 {
		t.Fatalf("stolen %v, want 0.4", got)
	}
}

const procStatus = `Name:	mctun
Umask:	0022
State:	S (sleeping)
VmPeak:	 1231876 kB
VmSize:	 1231876 kB
VmHWM:	   12345 kB
VmRSS:	    8088 kB
RssAnon:	    2104 kB
Threads:	7
`

func TestParseProcStatus(t *testing.T) {
	m, err := parseProcStatus([]byte(procStatus))
	if err != nil {
		t.Fatal(err)
	}
	if m.HWM != 12345 || m.RSS != 8088 {
		t.Fatalf("got %+v, want HWM 12345 RSS 8088", m)
	}
	if got := mib(m.HWM); got < 12.05 || got > 12.06 {
		t.Fatalf("mib %v", got)
	}
}

func TestParseProcStatusErrors(t *testing.T) {
	for _, in := range []string{
		"Name:\tkthreadd\nState:\tS\n",          // a kernel thread has neither
		"VmHWM:\t 12 kB\n",                      // no VmRSS
		"VmHWM:\t 12 MB\nVmRSS:\t 1 kB\n",       // unit
		"VmHWM:\t twelve kB\nVmRSS:\t 1 kB\n",   // number
		"VmHWM:\t 12 kB extra\nVmRSS:\t 1 kB\n", // shape
	} {
		if _, err := parseProcStatus([]byte(in)); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}

// pidStat builds a /proc/PID/stat line with the given name, flags, utime, stime, cutime,
// cstime and starttime; the other fields are filler.
func pidStat(name string, flags, ut, st, cut, cst, start int) string {
	f := make([]string, 52)
	for i := range f {
		f[i] = "0"
	}
	f[0], f[1], f[2] = "42", "("+name+")", "S"
	set := func(field, v int) { f[field-1] = strconv.Itoa(v) }
	set(9, flags)
	set(14, ut)
	set(15, st)
	set(16, cut)
	set(17, cst)
	set(22, start)
	return strings.Join(f, " ") + "\n"
}

func TestParseProcPidStat(t *testing.T) {
	p, err := parseProcPidStat([]byte(pidStat("go test) (x", 0x400000, 10, 20, 30, 40, 777)))
	if err != nil {
		t.Fatal(err)
	}
	if p.Jiffies != 100 || p.Start != 777 || p.Kthread {
		t.Fatalf("got %+v, want 100 jiffies, start 777, not a kernel thread", p)
	}
	k, err := parseProcPidStat([]byte(pidStat("ksoftirqd/0", 0x00208040, 0, 5, 0, 0, 3)))
	if err != nil || !k.Kthread {
		t.Fatalf("got %+v %v, want a kernel thread", k, err)
	}
	for _, in := range []string{"", "42 (x) S 1 2 3", pidStat("x", 0, 1, 2, 3, 4, 5)[:40]} {
		if _, err := parseProcPidStat([]byte(in)); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}

func TestOthersSecondsSince(t *testing.T) {
	before := othersCPU{{1, 100}: 500, {2, 200}: 50, {3, 300}: 7}
	after := othersCPU{
		{1, 100}: 650, // grew by 150
		{2, 200}: 50,  // idle
		{4, 400}: 25,  // started in between: all of it
		{3, 999}: 10,  // pid 3 reused by a new process: all of it
	}
	if got := after.secondsSince(before); got != 1.85 {
		t.Fatalf("got %v s, want 1.85 (185 jiffies)", got)
	}
}
