// Package wakeups counts how often the process's threads went to sleep and were woken: the
// sum of their voluntary context switches. Tests use it to show that a thread is not woken
// for work nobody waits for.
package wakeups

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Count is the sum of the voluntary context switches of the process's threads so far, from
// /proc/self/task. A thread that ends between two counts takes its switches with it, so
// compare counts over a stretch in which the runtime keeps its threads.
func Count() (int, error) {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return 0, err
	}
	sum := 0
	for _, task := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + task.Name() + "/status")
		if err != nil {
			continue // the thread ended
		}
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(line, "voluntary_ctxt_switches:"); ok {
				n, err := strconv.Atoi(strings.TrimSpace(v))
				if err != nil {
					return 0, err
				}
				sum += n
			}
		}
	}
	return sum, nil
}

// During is how many times the process's threads were woken while f ran, with a goroutine
// parked in the netpoller throughout (a pipe's reader), so that a thread waits in epoll_wait
// as it does in a daemon: the thread that sockets in the netpoller wake. It fails tb if the
// count cannot be read.
func During(tb testing.TB, f func()) int {
	tb.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		tb.Fatal(err)
	}
	defer w.Close()
	defer r.Close()
	go r.Read(make([]byte, 1)) // parks in the netpoller until the pipe closes

	time.Sleep(20 * time.Millisecond) // every idle thread back in its wait
	before, err := Count()
	if err != nil {
		tb.Fatal(err)
	}
	f()
	after, err := Count()
	if err != nil {
		tb.Fatal(err)
	}
	return after - before
}
