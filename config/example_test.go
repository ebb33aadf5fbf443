package config_test

import (
	"fmt"
	"path/filepath"

	"mctun/config"
)

// The worked example, testdata/mctun.toml, and the effective config mctun runs with.
func ExampleLoad() {
	cfg, warnings, err := config.Load(filepath.Join("testdata", "mctun.toml"))
	for _, w := range warnings {
		fmt.Println("warning:", w)
	}
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(cfg.Format())
	// Output:
	// key  = 0
	// port = 4754
	//
	// [source]
	// interface = "eth0"
	//
	// [[source.group]]
	// address = "224.1.2.3"
	// port    = 65535
	// members = [
	//   "192.168.1.1",
	//   "192.168.1.2:5000",
	//   "192.168.1.3",
	// ]
	//
	// [member]
	// tun     = "mctun0"
	// mtu     = 1500
	// sources = ["192.168.1.10"]
	// groups  = ["224.1.2.3"]
}

// Every problem is reported at once, each with its file, line and key.
func ExampleParse() {
	file := `port = 70000

[source]
[[source.group]]
address = "10.1.1.1"
members = [
  "198.18.2.1",
  "198.18.2.2",
  "127.0.0.1",
  "198.18.2.2",
]
`
	_, warnings, err := config.Parse("mctun.toml", []byte(file))
	fmt.Println(err)
	for _, w := range warnings {
		fmt.Println("warning:", w)
	}
	// Output:
	// mctun.toml:1: port: 70000 is out of range 1..65535
	// mctun.toml:5: source.group[0].address: 10.1.1.1 is not a multicast address
	// mctun.toml:9: source.group[0].members[2]: 127.0.0.1 is a loopback address, not a remote host
	// warning: mctun.toml:10: source.group[0].members[3]: 198.18.2.2 is listed twice; using it once
}
