// Package daemon is the running mctun instance: the one place where real devices meet.
//
// Run loads the config, sets up the host (route.Host: the TUN, routes, sysctls, all
// journaled so that down, or the next up after a crash, undoes them), opens the capture and
// the tunnel sockets, and wires them to the packet paths of package datapath. It owns reload
// (load, validate, diff, apply), the management commands (group, member, source), status,
// stats and dump, which it answers on the control socket (package control), and the
// Prometheus endpoint of [metrics], which reads the same counters as stats (metrics.go).
//
// The command line, cmd/mctun, only parses flags, talks to the instance and prints; the
// types it exchanges with the instance (Status, Listing, EditArgs, DumpArgs) are defined
// here. The vocabulary is datapath's (see its package documentation).
package daemon
