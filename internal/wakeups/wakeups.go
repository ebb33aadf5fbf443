// Package wakeups counts how often the process's threads went to sleep and were woken: the
// sum of their voluntary context switches. Tests use it to show that a thread is not woken
// for work nobody waits for.
package wakeups

import (
	"os"
	"strconv"
	"strings"
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
