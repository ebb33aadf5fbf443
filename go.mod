module mctun

go 1.26.8

require (
	github.com/BurntSushi/toml v1.6.0
	github.com/vishvananda/netlink v1.3.1
	github.com/vishvananda/netns v0.0.5
	golang.org/x/net v0.62.0
	golang.org/x/sys v0.50.0
)

require github.com/gopacket/gopacket v1.7.7

require github.com/cilium/ebpf v0.22.0 // indirect

tool github.com/cilium/ebpf/cmd/bpf2go
