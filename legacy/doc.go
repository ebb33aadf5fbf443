// Package legacy meets the original cloud multicast proxy that mctun replaces halfway: it
// reads the original's config files and command lines and says what they are in mctun's
// terms, and what of them mctun cannot carry over exactly.
//
// The original has a server on the source host (multis, managed with multis_admin) and a
// client on each member host (multic, managed with multic_admin). Their JSON files:
//
//	server: {"multi_group_array": [{"group_ip": "224.1.2.3", "group_port": 65535,
//	          "server_port": 65535, "member_array": ["192.168.1.1", "192.168.1.2"]}]}
//	client: {"multi_server_info_array": [{"server_ip": "192.168.1.10", "server_port": 65535,
//	          "group_ip": "224.1.2.3", "group_port": 65535}]}
//
// The server captured multicast to group_ip:group_port and sent each datagram, its
// destination rewritten to member:server_port, to every member; the client received from
// server_ip on server_port and sent the datagram on as multicast to group_ip:group_port.
// mctun carries the whole packet unchanged inside GRE-in-UDP to one tunnel port per host, so
// a server group becomes a [[source.group]] (address group_ip, port group_port, members
// member_array), and a client's servers become [member] sources, its groups member.groups.
//
// Import reads the files (see Result.TOML), Translate the admin commands' flags.
package legacy
