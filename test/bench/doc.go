// Command bench is mctun's benchmark. It measures mctun on both its packet paths, the
// user-space path (datapath = "user", "mctun user") and the kernel path (datapath =
// "kernel", "mctun kernel"), against the kernel's own answer to the same problem, VXLAN
// head-end replication, side by side in one run, in network namespaces on this machine
// (mctun/test/topo: a router that drops multicast, the source h0 and N members), with
// unmodified multicast applications (mctun/test/mcapp's mcsend and mcrecv). mctun is a black
// box: the binary, its config file, `mctun up`, `mctun down`, and `mctun status --json` and
// `mctun stats --json` for its pid, the datapath it runs and the kernel path's counters.
//
// For each number of members and payload size it finds, for each system, the highest rate
// every member receives with less than 0.1% loss (a geometric sweep, then bisection, capped
// at what mcsend alone reaches; where the sender stops two systems' sweeps, they are
// compared round by round at its ceiling instead), the CPU seconds per million datagrams
// delivered at one fixed rate every system carries (whole machine, from /proc/stat, less
// what other processes used: the machine may be shared), the one-way latency at 10,000 pps
// and at that fixed rate (the targets compare these two round by round, side by side with
// VXLAN), mctun's peak RSS, and on the kernel path the share of the packets
// it forwarded itself rather than leaving them to user space; then mctun's RSS with two big
// configs on each path, and the memory of the kernel path's maps. It holds the results against the targets
// (the kernel path's of issue 8, the user-space path's from before, which must also not fall
// behind the median of the earlier runs that the report it writes over keeps, each run's
// figures taken as ratios to VXLAN's in that run), prints the
// tables, and with -out and -plot writes BENCHMARKS.md, which keeps them and this run for the
// next, and a PNG of the rates (gnuplot).
//
//	make bench                                                           # everything (30 to 40 minutes), as root
//	sudo go run ./test/bench -mctun bin/mctun -members 1 -sizes 64 -trial 1s -big=false   # a few minutes
//
// Everything it makes lives in namespaces named mtbench*, which it removes when it ends,
// fails or is interrupted (a second Ctrl-C removes them at once); the root namespace's
// links, routes and sysctls are never touched, and every sending loop is bounded in count
// and time. The parts that need no root (the sweep, /proc parsing, the configs and the
// rendering) have unit tests.
package main
