package config

import (
	"fmt"
	"regexp"
	"strings"
)

// KeyDoc documents one key of the config file: its entry in the README's configuration
// reference, in mctun.toml(5) and in the commented example the packages install as
// /etc/mctun/mctun.toml. Every key of the schema has exactly one (TestReferenceCoversSchema).
type KeyDoc struct {
	// Key is the key's path as in the schema, without array indices: "source.group.port".
	Key string
	// Kind says whether the key holds a value, a table or an array of tables.
	Kind KeyKind
	// Default is what mctun uses when the key is absent, in words ("`4754`", "stderr",
	// "required"); empty for a table.
	Default string
	// Doc is what the key means: one or a few sentences of Markdown, of which mctun.toml(5)
	// and the example understand `code` and links to the README's sections, [text](#anchor).
	Doc string
	// Example is a TOML value for the key, as the example file shows it (commented out). Every
	// value's example, uncommented together, must make a valid config (TestExampleIsValid).
	// Empty for a table.
	Example string
}

// KeyKind is what a key holds.
type KeyKind int

const (
	Value         KeyKind = iota // key = value
	Table                        // [table]
	ArrayOfTables                // [[table]], repeated
)

// Reference documents every key of a config file, in the order the README, mctun.toml(5) and
// the example file list them: a table after the top-level values, each table's values after
// its header.
//
// A key added to the schema needs an entry here, and the README's table a row for it
// (TestReadmeReference prints the table to paste).
var Reference = []KeyDoc{
	{Key: "key", Default: "`0`", Example: "0",
		Doc: "GRE key, the mctun network id (0..4294967295). Both sides must agree; packets with another key are dropped."},
	{Key: "port", Default: "`4754`", Example: "4754",
		Doc: "UDP port of the tunnel (the IANA GRE-in-UDP port)."},
	{Key: "secret_file", Default: "none", Example: `"/etc/mctun/secret"`,
		Doc: "A file holding the pre-shared secret (at least 16 bytes; surrounding whitespace is ignored) that authenticates every tunnel packet. It must be readable by root alone. Every host of the network needs the same. See [Security](#security)."},
	{Key: "encrypt", Default: "`false`", Example: "true",
		Doc: "With `secret_file`: encrypt the inner packets too, and refuse ones that are not."},
	{Key: "datapath", Default: "`auto`", Example: `"auto"`,
		Doc: "Where packets are forwarded: `auto` in the kernel where the tunnel is plain and the host allows it, else in user space, saying why in the log and in `mctun status`; `kernel` in the kernel, or `mctun up` fails with the reason; `user` in user space. See [The kernel path](#the-kernel-path)."},
	{Key: "source", Kind: Table,
		Doc: "This host's applications send multicast."},
	{Key: "source.interface", Default: "the interface that carries 224.0.0.0/4, else the default route's", Example: `"eth0"`,
		Doc: "Where to capture. It must have an IPv4 address when mctun starts (members know the source by it), or `mctun up` fails: `source.interface eth0 has no IPv4 address`."},
	{Key: "source.join_from", Default: "none", Example: `["192.168.0.0/16"]`,
		Doc: "Prefixes (`\"192.168.0.0/16\"`, or an address) whose hosts may join groups themselves: see [Dynamic membership](#dynamic-membership). With it, a source needs no groups and a group may be declared without members."},
	{Key: "source.group", Kind: ArrayOfTables,
		Doc: "One group; repeat the table for more (1024 and more are fine)."},
	{Key: "source.group.address", Default: "required", Example: `"224.1.2.3"`,
		Doc: "The group, in 224.0.0.0/4."},
	{Key: "source.group.port", Default: "every packet", Example: "65535",
		Doc: "The applications' UDP destination port. Omitted: every packet to the group, whatever its protocol (VRRP, ...)."},
	{Key: "source.group.members", Default: "required (none with `join_from`)", Example: `["192.168.1.1", "192.168.1.2", "192.168.1.3:4754"]`,
		Doc: "Member hosts, `\"ip\"` or `\"ip:port\"` (4096 and more are fine). A member may be in one group per address."},
	{Key: "member", Kind: Table,
		Doc: "This host's applications receive multicast."},
	{Key: "member.tun", Default: "`mctun0`", Example: `"mctun0"`,
		Doc: "Name of the TUN device mctun creates."},
	{Key: "member.mtu", Default: "`1500`", Example: "1500",
		Doc: "The TUN's MTU; a larger inner packet is dropped (`too big`)."},
	{Key: "member.sources", Default: "none", Example: `["192.168.1.10"]`,
		Doc: "Tunnel packets are accepted only from these addresses (empty: nothing is accepted until `mctun source add`)."},
	{Key: "member.groups", Default: "any group", Example: `["224.1.2.3"]`,
		Doc: "Only these groups are delivered."},
	{Key: "log", Kind: Table,
		Doc: "How the daemon logs."},
	{Key: "log.format", Default: "`text`", Example: `"text"`,
		Doc: "`text` or `json` (log/slog)."},
	{Key: "log.file", Default: "stderr", Example: `"/var/log/mctun/mctun.log"`,
		Doc: "An absolute path to append the log to. Under systemd leave it out: journald takes stderr. A daemon started by `mctun up` writes stderr to `/run/mctun/netns-<cookie>/mctun.log`."},
	{Key: "log.level", Default: "`info`", Example: `"info"`,
		Doc: "`debug`, `info`, `warn` or `error`."},
	{Key: "metrics", Kind: Table,
		Doc: "A Prometheus endpoint; see [Metrics](#metrics)."},
	{Key: "metrics.listen", Default: "off", Example: `"127.0.0.1:9477"`,
		Doc: "`\"ip:port\"` to serve `/metrics` on over HTTP, such as `\"127.0.0.1:9477\"`; the address must be written out."},
	{Key: "metrics.per_member", Default: "`false`", Example: "false",
		Doc: "Series for each member of each group too (three per member)."},
}

// Keys returns every key path a config file may have (tables included), as the schema lists
// them, in no particular order.
func Keys() map[string]KeyKind {
	keys := make(map[string]KeyKind, len(schema))
	for k, value := range schema {
		keys[k] = Table
		if value {
			keys[k] = Value
		}
	}
	return keys
}

// Name is how the README and the man page write the key: "port", "[source]",
// "[[source.group]]".
func (k KeyDoc) Name() string {
	switch k.Kind {
	case Table:
		return "[" + k.Key + "]"
	case ArrayOfTables:
		return "[[" + k.Key + "]]"
	}
	return k.Key
}

// DefaultSentence says the default as a sentence of Markdown to follow Doc: "Default: `0`.",
// "Required.", "Required (none with `join_from`)."; "" for a table.
func (k KeyDoc) DefaultSentence() string {
	switch {
	case k.Default == "":
		return ""
	case strings.HasPrefix(k.Default, "required"):
		return "R" + k.Default[1:] + "."
	}
	return "Default: " + k.Default + "."
}

// ReferenceMarkdown is the README's configuration reference table, from Reference.
func ReferenceMarkdown() string {
	var b strings.Builder
	b.WriteString("| key | default | meaning |\n| --- | --- | --- |\n")
	for _, k := range Reference {
		b.WriteString("|")
		for _, cell := range []string{"`" + k.Name() + "`", k.Default, k.Doc} {
			if cell != "" {
				b.WriteString(" " + cell)
			}
			b.WriteString(" |")
		}
		b.WriteString("\n")
	}
	return b.String()
}

// Example is the commented example config the packages install as /etc/mctun/mctun.toml: every
// key, commented out, with what it means, its default and an example value. As shipped it is
// not a config mctun runs with (it has neither [source] nor [member]): the operator
// uncomments what the host does.
func Example() string {
	var b strings.Builder
	b.WriteString(`# mctun's configuration: mctun run, mctun up and the mctun.service read this file.
# mctun.toml(5) describes every key; "mctun check" validates the file and prints it with
# every default filled in. A host has [source] (its applications send multicast),
# [member] (they receive it), or both. Uncomment what this host needs, then:
#   mctun check && systemctl enable --now mctun
# After a change: systemctl reload mctun (mctun reload).
#
# mctun never writes this file: its group, member and source commands keep their groups
# and sources in mctun.managed.toml next to it.
`)
	for _, k := range Reference {
		b.WriteString("\n")
		if k.Kind != Value {
			fmt.Fprintf(&b, "# %s\n#%s\n", wrapComment(plainText(k.Doc)), k.Name())
			continue
		}
		doc := plainText(k.Doc + " " + k.DefaultSentence())
		fmt.Fprintf(&b, "# %s\n#%s = %s\n", wrapComment(doc), k.Key[strings.LastIndex(k.Key, ".")+1:], k.Example)
	}
	return b.String()
}

var markdownLink = regexp.MustCompile(`\[([^\]]+)\]\(#[^)]*\)`)

// plainText is a Doc without its Markdown: `code` becomes its content, and a link to a
// section of the README says so.
func plainText(s string) string { return strings.Join(MarkdownSpans(s), "") }

// MarkdownSpans splits a Doc into runs of plain text and of code, a link to a section of the
// README reduced to its text and "in the README": for writers of other formats (the man
// page). Even indices are text, odd ones code.
func MarkdownSpans(s string) []string {
	s = markdownLink.ReplaceAllString(s, "$1 in the README")
	return strings.Split(s, "`")
}

// wrapComment wraps s at about 90 columns as the lines of a # comment.
func wrapComment(s string) string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(s) {
		if line != "" && len(line)+1+len(w) > 88 {
			lines = append(lines, line)
			line = w
			continue
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	lines = append(lines, line)
	return strings.Join(lines, "\n# ")
}
