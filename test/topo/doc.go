// Package topo builds a small VPC-like network out of Linux network namespaces, for mctun's
// privileged tests, its demo and its benchmark.
//
// A Topology is one router namespace and N host namespaces. Host i lives in namespace
// <prefix>-h<i>; its interface eth0 has 198.18.<i+1>.2/24 and a default route via
// 198.18.<i+1>.1, the router's end of the veth pair, named h<i> in namespace <prefix>-r:
//
//	   <prefix>-h0             <prefix>-r              <prefix>-h1
//	+---------------+    +-------------------+    +---------------+
//	| eth0          |    | h0            h1  |    |          eth0 |
//	| 198.18.1.2/24 +----+ 198.18.1.1/24     |    |               |
//	|               |    |     198.18.2.1/24 +----+ 198.18.2.2/24 |
//	+---------------+    +-------------------+    +---------------+
//
// The router forwards unicast (net.ipv4.ip_forward=1 in its namespace only) and, like a
// cloud VPC, drops multicast: no multicast routing daemon runs, so the kernel forwards none.
// With Options.Bridged the router's ends are instead ports of one bridge that holds all the
// gateway addresses: unicast is still routed, but multicast floods to every host, which is
// the native-multicast LAN mctun stands in for (a baseline for the benchmark).
//
// Everything Build creates lives inside the namespaces it creates: the veth pairs are
// created directly in their namespaces and never appear in the root namespace, and no
// route, link or sysctl of the root namespace is touched. IPv6 is disabled in every
// namespace, so no link-local address or router solicitation comes and goes on its own.
// Close kills the processes left in the namespaces and deletes them, which removes the
// links with them.
//
// Each Topology holds an flock on /run/mctun-topo/<prefix>.lock while it lives, so
// RemoveStale can tell the leftovers of a crashed run from a topology that another test
// process is using at the same time.
//
// The package drives iproute2's ip command, so every step has an equivalent an operator
// can type; Host.Snapshot prints exactly what those commands show.
package topo
