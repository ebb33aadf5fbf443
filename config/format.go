package config

import (
	"fmt"
	"net/netip"
	"strings"
)

// Format returns c as TOML with every default written out: the effective configuration, which
// Parse reads back to an equal Config. A group member is written "ip:port" only when its port
// is not c.Port.
func (c *Config) Format() string {
	var b strings.Builder
	fmt.Fprintf(&b, "key  = %d\n", c.Key)
	fmt.Fprintf(&b, "port = %d\n", c.Port)

	if s := c.Source; s != nil {
		b.WriteString("\n[source]\n")
		if s.Interface == "" {
			b.WriteString("interface = \"\" # chosen when mctun starts\n")
		} else {
			fmt.Fprintf(&b, "interface = %s\n", quote(s.Interface))
		}
		for _, g := range s.Groups {
			b.WriteString("\n[[source.group]]\n")
			fmt.Fprintf(&b, "address = %s\n", quote(g.Address.String()))
			if g.Port != 0 {
				fmt.Fprintf(&b, "port    = %d\n", g.Port)
			}
			b.WriteString("members = [\n")
			for _, m := range g.Members {
				member := m.String()
				if m.Port() == c.Port {
					member = m.Addr().String()
				}
				fmt.Fprintf(&b, "  %s,\n", quote(member))
			}
			b.WriteString("]\n")
		}
	}

	if m := c.Member; m != nil {
		b.WriteString("\n[member]\n")
		fmt.Fprintf(&b, "tun     = %s\n", quote(m.TUN))
		fmt.Fprintf(&b, "mtu     = %d\n", m.MTU)
		fmt.Fprintf(&b, "sources = %s\n", addrList(m.Sources))
		fmt.Fprintf(&b, "groups  = %s", addrList(m.Groups))
		if len(m.Groups) == 0 {
			b.WriteString(" # any multicast group")
		}
		b.WriteString("\n")
	}
	return b.String()
}

// addrList writes addrs as a TOML array of strings on one line.
func addrList(addrs []netip.Addr) string {
	quoted := make([]string, len(addrs))
	for i, a := range addrs {
		quoted[i] = quote(a.String())
	}
	return "[" + strings.Join(quoted, ", ") + "]"
}

// quote writes s as a TOML basic string.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, "\\u%04x", r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
