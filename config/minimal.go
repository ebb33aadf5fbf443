package config

import (
	"fmt"
	"strings"
)

// FormatMinimal returns c as a person would write it: the tables c has, and only the keys
// whose value is not the default (member.sources always, so that the file says whom it
// accepts). Parse reads it back to a Config equal to c, but for where the groups and sources
// come from. A group or source whose Origin names a file other than c.Path is marked with
// it, "# from server.json:3", so a config put together from other files says what came from
// where. A zero Datapath, Log field, TUN or MTU is the default.
func (c *Config) FormatMinimal() string {
	var b strings.Builder
	if c.Key != 0 {
		fmt.Fprintf(&b, "key = %d\n", c.Key)
	}
	if c.Port != 0 && c.Port != DefaultPort {
		fmt.Fprintf(&b, "port = %d\n", c.Port)
	}
	if c.SecretFile != "" {
		fmt.Fprintf(&b, "secret_file = %s\n", quote(c.SecretFile))
	}
	if c.Encrypt {
		b.WriteString("encrypt = true\n")
	}
	if c.Datapath != "" && c.Datapath != DefaultDatapath {
		fmt.Fprintf(&b, "datapath = %s\n", quote(c.Datapath))
	}

	var log strings.Builder
	if f := c.Log.Format; f != "" && f != DefaultLogFormat {
		fmt.Fprintf(&log, "format = %s\n", quote(f))
	}
	if c.Log.File != "" {
		fmt.Fprintf(&log, "file   = %s\n", quote(c.Log.File))
	}
	if l := c.Log.Level; l != "" && l != DefaultLogLevel {
		fmt.Fprintf(&log, "level  = %s\n", quote(l))
	}
	if log.Len() > 0 {
		section(&b, "[log]\n")
		b.WriteString(log.String())
	}
	if c.Metrics.Enabled() || c.Metrics.PerMember {
		section(&b, "[metrics]\n")
		if c.Metrics.Enabled() {
			fmt.Fprintf(&b, "listen     = %s\n", quote(c.Metrics.Listen.String()))
		}
		if c.Metrics.PerMember {
			b.WriteString("per_member = true\n")
		}
	}

	port := c.Port
	if port == 0 {
		port = DefaultPort
	}
	if s := c.Source; s != nil {
		section(&b, "[source]\n")
		if s.Interface != "" {
			fmt.Fprintf(&b, "interface = %s\n", quote(s.Interface))
		}
		for _, g := range s.Groups {
			writeGroup(&b, g, port, c.fromElsewhere(g.Origin))
		}
	}

	if m := c.Member; m != nil {
		section(&b, "[member]\n")
		if m.TUN != "" && m.TUN != DefaultTUN {
			fmt.Fprintf(&b, "tun     = %s\n", quote(m.TUN))
		}
		if m.MTU != 0 && m.MTU != DefaultMTU {
			fmt.Fprintf(&b, "mtu     = %d\n", m.MTU)
		}
		marked := false
		for i := range m.Sources {
			if i < len(m.SourceOrigins) && c.fromElsewhere(m.SourceOrigins[i]) != "" {
				marked = true
			}
		}
		if !marked {
			fmt.Fprintf(&b, "sources = %s\n", addrList(m.Sources))
		} else {
			b.WriteString("sources = [\n")
			for i, a := range m.Sources {
				comment := ""
				if i < len(m.SourceOrigins) {
					comment = c.fromElsewhere(m.SourceOrigins[i])
				}
				fmt.Fprintf(&b, "  %s,%s\n", quote(a.String()), comment)
			}
			b.WriteString("]\n")
		}
		if len(m.Groups) > 0 {
			fmt.Fprintf(&b, "groups  = %s\n", addrList(m.Groups))
		}
	}
	return b.String()
}

// fromElsewhere is the comment that marks what comes from a file other than c's, or "".
func (c *Config) fromElsewhere(o Origin) string {
	if o.File == "" || o.File == c.Path {
		return ""
	}
	return " # from " + commentText(o.String())
}

// section starts a table, after a blank line unless it is the first thing written.
func section(b *strings.Builder, header string) {
	if b.Len() > 0 {
		b.WriteString("\n")
	}
	b.WriteString(header)
}
