package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of the times in /proc/stat, USER_HZ: 100 on every Linux architecture
// Go supports (the kernel converts its own HZ for this interface; sysconf(_SC_CLK_TCK) says
// the same, but would need cgo).
const userHZ = 100

// cpuTimes is the machine's aggregate CPU time, the "cpu" line of /proc/stat, in jiffies,
// and when it was read.
type cpuTimes struct {
	Total uint64    // user+nice+system+idle+iowait+irq+softirq+steal (guest time is inside user and nice)
	Idle  uint64    // idle+iowait
	Steal uint64    // steal: time a hypervisor ran something else while this machine's CPUs had work
	CPUs  int       // the "cpuN" lines: CPUs online
	At    time.Time // when it was read (monotonic)
}

// Busy is the time the CPUs ran this machine's work: Total − Idle − Steal.
func (c cpuTimes) Busy() uint64 { return c.Total - c.Idle - c.Steal }

// busySecondsSince is the CPU time, in seconds summed over all CPUs, spent busy between
// before and c, as total − idle − iowait − steal with total the sum of the fields.
func (c cpuTimes) busySecondsSince(before cpuTimes) float64 {
	return float64(c.Busy()-before.Busy()) / userHZ
}

// stolenSince is the CPU time, in seconds summed over all CPUs, that a hypervisor took
// from this machine between before and c: its CPUs had work and did not run it. A virtual
// machine's steal is counted from the hypervisor's clock, not sampled.
func (c cpuTimes) stolenSince(before cpuTimes) float64 {
	return float64(c.Steal-before.Steal) / userHZ
}

// busyElapsedSince is the same busy time with total taken as the elapsed time times the
// CPUs. On a NO_HZ kernel with tick-based accounting (the common configuration) idle and
// iowait are measured exactly, while user, system and softirq are sampled at each tick: busy
// bursts much shorter than a tick, such as per-packet softirq work, are counted only when a
// tick happens to land in them. Elapsed time minus exact idle and steal time does not depend
// on that sampling.
func (c cpuTimes) busyElapsedSince(before cpuTimes) float64 {
	elapsed := c.At.Sub(before.At).Seconds() * float64(c.CPUs)
	return max(0, elapsed-float64(c.Idle-before.Idle)/userHZ-c.stolenSince(before))
}

// parseProcStat reads the aggregate "cpu" line of /proc/stat:
//
//	cpu  user nice system idle iowait irq softirq steal guest guest_nice
//
// and counts the per-CPU lines. Busy is total − idle − iowait − steal. guest and guest_nice
// are already counted in user and nice, so they are left out of the total. Older kernels
// print fewer fields; at least the first four must be there.
func parseProcStat(data []byte) (cpuTimes, error) {
	var c cpuTimes
	found := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || !strings.HasPrefix(fields[0], "cpu") {
			continue
		}
		if fields[0] != "cpu" {
			c.CPUs++
			continue
		}
		vals := fields[1:]
		if len(vals) < 4 {
			return cpuTimes{}, fmt.Errorf("/proc/stat: cpu line has %d fields, want at least 4", len(vals))
		}
		vals = vals[:min(len(vals), 8)] // user nice system idle iowait irq softirq steal
		for i, v := range vals {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return cpuTimes{}, fmt.Errorf("/proc/stat: cpu field %d: %w", i+1, err)
			}
			c.Total += n
			switch i {
			case 3, 4: // idle, iowait
				c.Idle += n
			case 7:
				c.Steal = n
			}
		}
		found = true
	}
	if !found {
		return cpuTimes{}, errors.New("/proc/stat: no aggregate cpu line")
	}
	if c.CPUs == 0 {
		return cpuTimes{}, errors.New("/proc/stat: no per-CPU lines")
	}
	return c, nil
}

// readCPU reads the machine's CPU times from /proc/stat.
func readCPU() (cpuTimes, error) {
	at := time.Now()
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}, err
	}
	c, err := parseProcStat(data)
	c.At = at
	return c, err
}

// memStatus is the memory of one process from /proc/PID/status, in KiB.
type memStatus struct {
	HWM uint64 `json:"vm_hwm_kib"` // VmHWM: the peak resident set size
	RSS uint64 `json:"vm_rss_kib"` // VmRSS: the resident set size now
}

// parseProcStatus reads VmHWM and VmRSS from a /proc/PID/status file ("VmHWM:	  5120 kB").
func parseProcStatus(data []byte) (memStatus, error) {
	var m memStatus
	var haveHWM, haveRSS bool
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		key, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || (key != "VmHWM" && key != "VmRSS") {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) != 2 || fields[1] != "kB" {
			return m, fmt.Errorf("status: %s: unexpected value %q", key, strings.TrimSpace(rest))
		}
		n, err := strconv.ParseUint(fields[0], 10, 64)
		if err != nil {
			return m, fmt.Errorf("status: %s: %w", key, err)
		}
		if key == "VmHWM" {
			m.HWM, haveHWM = n, true
		} else {
			m.RSS, haveRSS = n, true
		}
	}
	if !haveHWM || !haveRSS {
		return m, errors.New("status: no VmHWM or VmRSS line (a kernel thread, or a zombie)")
	}
	return m, nil
}

// readMem reads the memory of process pid.
func readMem(pid int) (memStatus, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memStatus{}, err
	}
	m, err := parseProcStatus(data)
	if err != nil {
		return m, fmt.Errorf("/proc/%d/%w", pid, err)
	}
	return m, nil
}

// mib converts KiB to MiB.
func mib(kib uint64) float64 { return float64(kib) / 1024 }

// pstat is what the benchmark reads of one process's /proc/PID/stat.
type pstat struct {
	Start   uint64 // starttime, which tells a process from a later one with the same pid
	Jiffies uint64 // utime+stime+cutime+cstime: its own CPU time and its reaped children's
	Kthread bool   // a kernel thread (PF_KTHREAD)
}

// pfKthread is the PF_KTHREAD bit of the flags field.
const pfKthread = 0x00200000

// parseProcPidStat reads /proc/PID/stat. The command name (field 2) is in parentheses and
// may hold spaces and parentheses itself, so the fields are counted from the last ')'.
func parseProcPidStat(data []byte) (pstat, error) {
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return pstat{}, errors.New("stat: no command name")
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3, state
	if len(f) < 20 {
		return pstat{}, fmt.Errorf("stat: %d fields after the name, want at least 20", len(f))
	}
	num := func(field int) (uint64, error) { return strconv.ParseUint(f[field-3], 10, 64) }
	var p pstat
	flags, err := num(9)
	if err != nil {
		return p, fmt.Errorf("stat: flags: %w", err)
	}
	p.Kthread = flags&pfKthread != 0
	for field := 14; field <= 17; field++ { // utime stime cutime cstime
		n, err := num(field)
		if err != nil {
			// cutime and cstime are signed in the kernel's format; never negative in practice.
			return p, fmt.Errorf("stat: field %d: %w", field, err)
		}
		p.Jiffies += n
	}
	if p.Start, err = num(22); err != nil {
		return p, fmt.Errorf("stat: starttime: %w", err)
	}
	return p, nil
}

// procKey identifies a process across two scans.
type procKey struct {
	pid   int
	start uint64
}

// othersCPU is a scan of the CPU time of the processes that are not the benchmark's: every
// user process whose network namespace is none of ours, except this process (whose
// children are the applications). Kernel threads count as the benchmark's: they do its
// packet work (ksoftirqd).
type othersCPU map[procKey]uint64

// scanOthers reads the CPU time of every process that is not the benchmark's. ours holds
// the identities of the benchmark's network namespaces.
func scanOthers(ours map[nsIdent]bool) othersCPU {
	scan := othersCPU{}
	self := os.Getpid()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		if id, ok := netnsOf(fmt.Sprintf("/proc/%d/ns/net", pid)); !ok || ours[id] {
			continue // gone, or ours
		}
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue // gone
		}
		p, err := parseProcPidStat(data)
		if err != nil || p.Kthread {
			continue
		}
		scan[procKey{pid, p.Start}] = p.Jiffies
	}
	return scan
}

// secondsSince is the CPU time, in seconds, the processes of scan used since before: the
// growth of those in both, and all of those that started in between. A process that ended
// in between counts through its parent's cutime and cstime, once reaped.
func (scan othersCPU) secondsSince(before othersCPU) float64 {
	var j uint64
	for k, now := range scan {
		if was, ok := before[k]; ok {
			if now > was {
				j += now - was
			}
		} else {
			j += now
		}
	}
	return float64(j) / userHZ
}
