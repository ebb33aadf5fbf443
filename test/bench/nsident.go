package main

import "syscall"

// nsIdent identifies a network namespace by the device and inode of its nsfs file.
type nsIdent struct{ dev, ino uint64 }

// netnsOf returns the identity of the namespace a path (a /run/netns file or a
// /proc/PID/ns/net link) refers to.
func netnsOf(path string) (nsIdent, bool) {
	var st syscall.Stat_t
	if syscall.Stat(path, &st) != nil {
		return nsIdent{}, false
	}
	return nsIdent{uint64(st.Dev), st.Ino}, true
}
