//go:build e2e

package test

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"mctun/test/mcapp"
	"mctun/test/topo"
)

// The tests of what is particular to the kernel path: that it interoperates with user
// space both ways, leaves nothing in the kernel, and gives way, saying why, where the host
// refuses it.

// datapathLine is a config's datapath key.
func datapathLine(dp string) string { return fmt.Sprintf("datapath = %q\n", dp) }

// A kernel-path source and user-space members, and the reverse: the wire is one.
func TestMixedPairs(t *testing.T) {
	for _, tt := range []struct{ name, source, member string }{
		{"kernel source, user members", "kernel", "user"},
		{"user source, kernel members", "user", "kernel"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, 4)
			w.upAll(datapathLine(tt.member)+memberConfig, datapathLine(tt.source)+sourceConfig)
			// Datagrams of 1000 bytes, which the kernel path takes, and of 1472, whose tunnel
			// packets are fragmented on the way and so take user space on both sides.
			for _, size := range []int{1000, 1472} {
				const n = 3000
				rs := w.receive(w.mbrs, mcapp.RecvOptions{Group: group, Port: 65535, Count: n, Idle: 3 * time.Second, Timeout: time.Minute})
				w.send(w.src, mcapp.SendOptions{Group: group, Port: 65535, Count: n, Size: size, Rate: 5000})
				for i, rep := range w.reports(rs) {
					w.checkStream(fmt.Sprintf("%s (%d bytes)", w.mbrs[i].Name, size), rep, n, "198.18.1.2")
				}
			}
			kernelHosts := w.mbrs
			if tt.source == "kernel" {
				kernelHosts = []*topo.Host{w.src}
			}
			for _, h := range kernelHosts {
				w.datapath = "kernel" // for checkInKernel
				w.checkInKernel(h, 3000-100)
			}
			for _, m := range w.mbrs {
				if f := w.status(m).flow("198.18.1.2", "224.1.2.3"); f.Packets != 6000 || f.Lost != 0 || f.Duplicates != 0 || f.Reordered > maxReordered(tt.source) {
					t.Errorf("%s: flow %+v, want 6000 packets, none lost or duplicated, at most %d reordered", m, f, maxReordered(tt.source))
				}
			}
		})
	}
}

// tcState is what tc shows in a host's namespace that a kernel path attached with clsact
// would leave: qdiscs and filters.
func tcState(t *testing.T, w *world, h *topo.Host) string {
	t.Helper()
	var b strings.Builder
	for _, args := range [][]string{
		{"qdisc", "show"},
		{"filter", "show", "dev", "eth0", "ingress"},
		{"filter", "show", "dev", "eth0", "egress"},
	} {
		out, err := h.Run(w.ctx, "tc", args...)
		if err != nil {
			t.Fatalf("%s: tc %v: %v", h, args, err)
		}
		fmt.Fprintf(&b, "$ tc %s\n%s", strings.Join(args, " "), out)
	}
	return b.String()
}

// down, and kill -9 then down, leave no program, link, map or qdisc behind, on a host that
// is source and member (both sides' programs, on eth0 and on the TUN), attached with tcx or,
// as on a kernel without it, with tc. The kernel holds programs and links for the whole
// machine, so the test follows the ones mctun status names.
func TestKernelPathLeavesNothing(t *testing.T) {
	for _, with := range []string{"tcx", "tc"} {
		t.Run(with, func(t *testing.T) { testKernelPathLeavesNothing(t, with) })
	}
}

func testKernelPathLeavesNothing(t *testing.T, with string) {
	w := newWorldOn(t, 4, "kernel")
	h := w.hosts[1]
	up := func(path string) result {
		if with == "tc" {
			return w.run(h, "env", "MCTUN_KERNEL_PATH_CLSACT=1", mctunBin, "up", "-c", path)
		}
		return w.mctun(h, "up", "-c", path)
	}
	cfg := `
[source]
[[source.group]]
address = "224.1.2.3"
port    = 65535
members = ["198.18.1.2"]
[member]
sources = ["198.18.1.2"]
`
	bpftool := func(args ...string) (string, error) { return h.Run(w.ctx, "bpftool", args...) }
	if with == "tc" {
		w.up(w.src, sourceConfig) // to send h a stream through its filter
	}
	before := tcState(t, w, h)
	for _, crash := range []bool{false, true} {
		path := w.writeConfig(h, cfg)
		if r := up(path); r.code != 0 {
			t.Fatalf("mctun up: %v", r)
		}
		st := w.status(h)
		attached := append(st.Source.Kernel.Attached, st.Member.Kernel.Attached...)
		var where []string
		for _, a := range attached {
			where = append(where, a.Program+" "+a.Interface+" "+a.Hook+" "+a.With)
		}
		want := strings.ReplaceAll("mctun_fan_on eth0 ingress W, mctun_egress eth0 egress W, mctun_tun_egress mctun0 egress W, mctun_deliver mctun0 ingress W, mctun_ingress eth0 ingress W", "W", with)
		if got := strings.Join(where, ", "); got != want {
			t.Errorf("attached: %s, want %s", got, want)
		}
		if with == "tc" {
			// A stream through it, for the attachment to be shown to work.
			rs := w.receive([]*topo.Host{h}, mcapp.RecvOptions{Group: group, Port: 65535, Count: 500, Idle: 2 * time.Second, Timeout: 30 * time.Second})
			w.send(w.src, mcapp.SendOptions{Group: group, Port: 65535, Count: 500, Size: 500, Rate: 2000})
			w.checkStream(h.Name, w.reports(rs)[0], 500, "198.18.1.2")
			w.checkInKernel(h, 500)
			if state := tcState(t, w, h); !strings.Contains(state, "mctun_ingress") || !strings.Contains(state, "mctun_fan_on") || !strings.Contains(state, "pref 19779") {
				t.Errorf("tc does not show mctun's filters:\n%s", state)
			}
		}
		links, err := bpftool("link", "show")
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range attached {
			out, err := bpftool("prog", "show", "id", fmt.Sprint(a.ID))
			if err != nil || !strings.Contains(out, a.Program) {
				t.Errorf("bpftool prog show id %d: %q, %v; want %s", a.ID, out, err, a.Program)
			}
			if with == "tcx" && !strings.Contains(links, fmt.Sprintf("prog %d ", a.ID)) {
				t.Errorf("bpftool link show lists no link to program %d (%s):\n%s", a.ID, a.Program, links)
			}
		}
		if crash {
			if _, err := h.Run(w.ctx, "kill", "-9", fmt.Sprint(st.PID)); err != nil {
				t.Fatal(err)
			}
			waitGone(t, st.PID)
			// A tc filter outlives the process that attached it; the journal has it.
			if state := tcState(t, w, h); with == "tc" && !strings.Contains(state, "mctun_ingress") {
				t.Errorf("after kill -9, tc no longer shows the filter, which outlives mctun:\n%s", state)
			}
		}
		if r := w.mctun(h, "down"); r.code != 0 {
			t.Fatalf("mctun down (crash %v): %v", crash, r)
		}
		links, err = bpftool("link", "show")
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range attached {
			if out, err := bpftool("prog", "show", "id", fmt.Sprint(a.ID)); err == nil {
				t.Errorf("after down (crash %v), bpftool prog show id %d: %s", crash, a.ID, out)
			}
			if strings.Contains(links, fmt.Sprintf("prog %d ", a.ID)) {
				t.Errorf("after down (crash %v), a link to program %d remains:\n%s", crash, a.ID, links)
			}
		}
		if after := tcState(t, w, h); after != before {
			t.Errorf("after down (crash %v), tc shows:\n%s\nwant as before:\n%s", crash, after, before)
		}
	}
}

// waitGone waits until process pid has exited.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
			return
		}
	}
	t.Fatalf("pid %d did not exit", pid)
}

// datapath = "auto" gives way to user space, saying why, where the kernel refuses the
// programs: for real, without CAP_BPF, and as a test can force it; "kernel" refuses to start.
func TestAutoFallsBack(t *testing.T) {
	w := newWorld(t, 4)
	h := w.mbrs[0]
	for _, tt := range []struct {
		name   string
		run    func(args ...string) result
		reason string
	}{
		{"without CAP_BPF", func(args ...string) result {
			return w.run(h, "capsh", append([]string{"--drop=cap_bpf,cap_sys_admin,cap_perfmon", "--", "-c", "exec \"$0\" \"$@\"", mctunBin}, args...)...)
		}, "loading BPF programs is not permitted"},
		{"forced", func(args ...string) result {
			return w.run(h, "env", append([]string{"MCTUN_REFUSE_KERNEL_PATH=forced by the test", mctunBin}, args...)...)
		}, "refused by MCTUN_REFUSE_KERNEL_PATH: forced by the test"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			auto := w.writeConfig(h, datapathLine("auto")+memberConfig)
			if r := tt.run("up", "-c", auto); r.code != 0 {
				t.Fatalf("mctun up with datapath auto: %v", r)
			}
			st := w.status(h)
			status := w.mctun(h, "status")
			log := w.log(h)
			if r := w.mctun(h, "down"); r.code != 0 {
				t.Fatalf("mctun down: %v", r)
			}
			if st.Datapath != "user" || !strings.Contains(status.stdout, "path:    user (not the kernel: "+tt.reason) {
				t.Errorf("mctun status after auto fell back: datapath %q\n%s\nwant user, saying %q", st.Datapath, status.stdout, tt.reason)
			}
			if !strings.Contains(log, tt.reason) {
				t.Errorf("the log does not say why the kernel path was not taken (%q):\n%s", tt.reason, log)
			}
			kernel := w.writeConfig(h, datapathLine("kernel")+memberConfig)
			before := w.snapshot(h)
			r := tt.run("up", "-c", kernel)
			if r.code == 0 {
				w.mctun(h, "down")
				t.Fatalf("mctun up with datapath kernel succeeded where the kernel path is refused")
			}
			if !strings.Contains(r.stderr, "datapath kernel: "+tt.reason) {
				t.Errorf("mctun up with datapath kernel: %v\nwant it to say %q", r, tt.reason)
			}
			if after := w.snapshot(h); after != before {
				t.Errorf("a refused up changed the host:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

// The largest group: 4096 members, of which the real three come last, after 4093 made up
// (the first member's address at other ports). The kernel path sends a datagram's copies
// pass after pass; every member is sent every datagram, and the three real ones, whom the
// last pass reaches, receive all of them.
func TestLargestGroup(t *testing.T) { onEachDatapath(t, testLargestGroup) }

func testLargestGroup(t *testing.T, dp string) {
	const members, n = 4096, 50
	w := newWorldOn(t, 4, dp)
	var b strings.Builder
	b.WriteString("[source]\n[[source.group]]\naddress = \"224.1.2.3\"\nport    = 65535\nmembers = [\n")
	for i := range members - len(w.mbrs) {
		fmt.Fprintf(&b, "  \"198.18.2.2:%d\",\n", 10000+i)
	}
	b.WriteString("  \"198.18.2.2\", \"198.18.3.2\", \"198.18.4.2\",\n]\n")
	w.upAll(memberConfig, b.String())

	rs := w.receive(w.mbrs, mcapp.RecvOptions{Group: group, Port: 65535, Count: n, Idle: 3 * time.Second, Timeout: time.Minute})
	w.send(w.src, mcapp.SendOptions{Group: group, Port: 65535, Count: n, Size: 200, Rate: 20})
	for i, rep := range w.reports(rs) {
		w.checkStream(w.mbrs[i].Name, rep, n, "198.18.1.2")
	}
	w.checkInKernel(w.src, n-5) // the first go by user space, whose sends resolve the next hops
	st := w.status(w.src)
	if len(st.Source.Stats.Groups) != 1 {
		t.Fatalf("source stats: %d groups, want 1", len(st.Source.Stats.Groups))
	}
	g := st.Source.Stats.Groups[0]
	var short []string
	for _, m := range g.Members {
		if m.Packets != n {
			short = append(short, fmt.Sprintf("%s: %d", m.Address, m.Packets))
		}
	}
	if g.MemberCount != members || len(g.Members) != members || len(short) > 0 {
		t.Errorf("group %s: %d members listed of %d; %d sent fewer than %d datagrams: %v",
			g.Address, len(g.Members), g.MemberCount, len(short), n, short[:min(len(short), 5)])
	}
}

// The kernel path sends without the neighbour table, which drops an entry unused for the
// interface's gc_stale_time (once the table holds gc_thresh1 entries or more): the members
// behind it would then go to user space until it is resolved again. mctun marks the next
// hops it sends to in use, as the kernel's own sending does; ip -s neigh shows how long ago
// an entry was last used.
func TestKernelPathKeepsNextHops(t *testing.T) {
	w := newWorldOn(t, 4, "kernel")
	// 6 s instead of 60, on the source's eth0 only: mctun marks its next hops a third of
	// that apart.
	if r := w.run(w.src, "sysctl", "-qw", "net.ipv4.neigh.eth0.gc_stale_time=6"); r.code != 0 {
		t.Fatalf("gc_stale_time: %v", r)
	}
	w.upWorkedExample()
	const n = 1500 // 15 s
	rs := w.receive(w.mbrs, mcapp.RecvOptions{Group: group, Port: 65535, Count: n, Idle: 3 * time.Second, Timeout: time.Minute})
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		w.send(w.src, mcapp.SendOptions{Group: group, Port: 65535, Count: n, Size: 100, Rate: 100, Duration: 25 * time.Second})
	}()
	used := regexp.MustCompile(` used (\d+)/`)
	oldest := 0
	for i := 0; ; i++ {
		select {
		case <-sent:
		case <-time.After(time.Second):
			if i < 5 {
				continue // the router's entry was resolved and used at the start
			}
			r := w.run(w.src, "ip", "-s", "neigh", "show", w.src.Gateway.String(), "dev", "eth0")
			m := used.FindStringSubmatch(r.stdout)
			if m == nil {
				t.Fatalf("ip -s neigh show %s: %v", w.src.Gateway, r)
			}
			age, _ := strconv.Atoi(m[1])
			oldest = max(oldest, age)
			continue
		}
		break
	}
	if oldest >= 6 {
		t.Errorf("while the kernel path sent through the router, its neighbour entry was last used up to %d s before, want less than 6 (gc_stale_time)", oldest)
	}
	for i, rep := range w.reports(rs) {
		w.checkStream(w.mbrs[i].Name, rep, n, "198.18.1.2")
	}
	w.checkInKernel(w.src, n-100)
}
