package config

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"
)

// Format returns c as TOML with every default written out: the effective configuration, which
// Parse reads back to an equal Config, but for where the groups and sources come from. Each
// group and source that comes from the managed file is marked "# from mctun.managed.toml". A
// group member is written "ip:port" only when its port is not c.Port.
func (c *Config) Format() string {
	var b strings.Builder
	fmt.Fprintf(&b, "key  = %d\n", c.Key)
	fmt.Fprintf(&b, "port = %d\n", c.Port)
	if c.SecretFile == "" {
		b.WriteString("secret_file = \"\" # the tunnel is not authenticated\n")
	} else {
		fmt.Fprintf(&b, "secret_file = %s\n", quote(c.SecretFile))
	}
	fmt.Fprintf(&b, "encrypt     = %t\n", c.Encrypt)
	fmt.Fprintf(&b, "datapath    = %s\n", quote(c.Datapath))

	b.WriteString("\n[log]\n")
	fmt.Fprintf(&b, "format = %s\n", quote(c.Log.Format))
	if c.Log.File == "" {
		b.WriteString("file   = \"\" # stderr\n")
	} else {
		fmt.Fprintf(&b, "file   = %s\n", quote(c.Log.File))
	}
	fmt.Fprintf(&b, "level  = %s\n", quote(c.Log.Level))

	b.WriteString("\n[metrics]\n")
	if c.Metrics.Enabled() {
		fmt.Fprintf(&b, "listen     = %s\n", quote(c.Metrics.Listen.String()))
	} else {
		b.WriteString("listen     = \"\" # off\n")
	}
	fmt.Fprintf(&b, "per_member = %t\n", c.Metrics.PerMember)

	if s := c.Source; s != nil {
		b.WriteString("\n[source]\n")
		if s.Interface == "" {
			b.WriteString("interface = \"\" # chosen when mctun starts\n")
		} else {
			fmt.Fprintf(&b, "interface = %s\n", quote(s.Interface))
		}
		fmt.Fprintf(&b, "join_from = %s", prefixList(s.JoinFrom))
		if len(s.JoinFrom) == 0 {
			b.WriteString(" # no host joins groups by itself")
		}
		b.WriteString("\n")
		for _, g := range s.Groups {
			writeGroup(&b, g, c.Port, fromComment(g.Origin))
		}
	}

	if m := c.Member; m != nil {
		b.WriteString("\n[member]\n")
		fmt.Fprintf(&b, "tun     = %s\n", quote(m.TUN))
		fmt.Fprintf(&b, "mtu     = %d\n", m.MTU)
		fmt.Fprintf(&b, "sources = %s\n", sourceList(m.Sources, m.SourceOrigins))
		fmt.Fprintf(&b, "groups  = %s", addrList(m.Groups))
		if len(m.Groups) == 0 {
			b.WriteString(" # any multicast group")
		}
		b.WriteString("\n")
	}
	return b.String()
}

// fromComment is the comment that marks what comes from the managed file, or "".
func fromComment(o Origin) string {
	if !o.Managed {
		return ""
	}
	return " # from " + commentText(filepath.Base(o.File))
}

// commentText returns s to write in a comment: as it is, or quoted if it holds a control
// character, such as a newline that would end the comment.
func commentText(s string) string {
	if strings.ContainsFunc(s, unicode.IsControl) {
		return strconv.Quote(s)
	}
	return s
}

// writeGroup writes g as a [[source.group]] table, comment after its header. A member on
// tunnelPort is written without its port.
func writeGroup(b *strings.Builder, g Group, tunnelPort uint16, comment string) {
	fmt.Fprintf(b, "\n[[source.group]]%s\n", comment)
	fmt.Fprintf(b, "address = %s\n", quote(g.Address.String()))
	if g.Port != 0 {
		fmt.Fprintf(b, "port    = %d\n", g.Port)
	}
	if len(g.Members) == 0 { // with source.join_from: for members to join
		b.WriteString("members = []\n")
		return
	}
	b.WriteString("members = [\n")
	for _, m := range g.Members {
		member := m.String()
		if m.Port() == tunnelPort {
			member = m.Addr().String()
		}
		fmt.Fprintf(b, "  %s,\n", quote(member))
	}
	b.WriteString("]\n")
}

// sourceList writes sources as a TOML array of strings: on one line, unless some come from the
// managed file, which are then marked, one a line.
func sourceList(sources []netip.Addr, origins []Origin) string {
	var b strings.Builder
	b.WriteString("[\n")
	managed := false
	for i, a := range sources {
		comment := ""
		if i < len(origins) {
			comment = fromComment(origins[i])
		}
		managed = managed || comment != ""
		fmt.Fprintf(&b, "  %s,%s\n", quote(a.String()), comment)
	}
	b.WriteString("]")
	if !managed {
		return addrList(sources)
	}
	return b.String()
}

// prefixList writes prefixes as a TOML array of strings on one line.
func prefixList(ps []netip.Prefix) string {
	quoted := make([]string, len(ps))
	for i, p := range ps {
		quoted[i] = quote(p.String())
	}
	return "[" + strings.Join(quoted, ", ") + "]"
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
