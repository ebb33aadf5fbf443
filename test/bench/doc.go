// Command bench is mctun's benchmark. It measures mctun against the kernel's own answer to
// the same problem, VXLAN head-end replication, side by side in one run, in network
// namespaces on this machine (mctun/test/topo: a router that drops multicast, the source h0
// and N members), with unmodified multicast applications (mctun/test/mcapp's mcsend and
// mcrecv). mctun is a black box: the binary, its config file, `mctun up`, `mctun down` and
// the pid from `mctun status --json`.
//
// For each number of members and payload size it finds, for each system, the highest rate
// every member receives with less than 0.1% loss (a geometric sweep, then bisection, capped
// at what mcsend alone reaches), the CPU seconds per million datagrams delivered at one fixed
// rate both systems carry (whole machine, from /proc/stat, less what other processes used:
// the machine may be shared), the one-way latency at 10,000 pps and at that fixed rate, and
// mctun's peak RSS; then mctun's RSS with two big configs. It prints one table, and with
// -out and -plot writes BENCHMARKS.md and a PNG of the rates (gnuplot).
//
//	make bench                                                           # everything (12 to 17 minutes), as root
//	sudo go run ./test/bench -mctun bin/mctun -members 1 -sizes 64 -trial 1s -big=false   # a minute or two
//
// Everything it makes lives in namespaces named mtbench*, which it removes when it ends,
// fails or is interrupted (a second Ctrl-C removes them at once); the root namespace's
// links, routes and sysctls are never touched, and every sending loop is bounded in count
// and time. The parts that need no root (the sweep, /proc parsing, the configs and the
// rendering) have unit tests.
package main
