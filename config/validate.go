package config

import (
	"fmt"
	"math"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// checker validates one file, the config file or the managed file, collecting every problem
// it finds. The checks across both files record each problem with the file it is in.
type checker struct {
	name    string // the file's name, for problems and origins
	data    []byte
	managed bool // the managed file

	errs  []Problem
	warns []Problem

	origins *lineIndex // see origin
}

// errorf records an error about key; key "" means the file as a whole.
func (c *checker) errorf(key, format string, args ...any) {
	c.errs = append(c.errs, Problem{Key: key, Msg: fmt.Sprintf(format, args...)})
}

// warnf records a warning about key.
func (c *checker) warnf(key, format string, args ...any) {
	c.warns = append(c.warns, Problem{Key: key, Msg: fmt.Sprintf(format, args...)})
}

// origin returns where key is in the file: the line of a [[source.group]] header or of an
// element of member.sources.
func (c *checker) origin(key string) Origin {
	if c.origins == nil {
		c.origins = scanOrigins(c.data)
	}
	return Origin{File: c.name, Line: c.origins.line(key), Managed: c.managed}
}

// merge validates the config file's r and the managed file's m, each on its own, and then
// their union. r is nil when the config file did not decode, m when the managed file did not
// or there is none. The result is only meaningful when no errors were found.
func merge(conf *checker, r *rawConfig, mgd *checker, m *rawConfig) *Config {
	cfg := &Config{
		Path:        conf.name,
		ManagedPath: ManagedPath(conf.name),
		Port:        DefaultPort,
		Datapath:    DefaultDatapath,
		Log:         Log{Format: DefaultLogFormat, Level: DefaultLogLevel},
	}
	var groups []checkedGroup
	var sources []checkedSource
	if r != nil {
		conf.settings(cfg, r)
	}
	joins := joinsAllowed(cfg)
	if r != nil {
		if r.Source != nil {
			groups = conf.groups(r.Source.Group, cfg.Port, joins)
		}
		if r.Member != nil {
			sources = conf.sources(r.Member.Sources.v)
		}
	}
	if m != nil {
		// The managed file cannot give the host a role: that needs a restart.
		if m.Source != nil {
			mg := mgd.groups(m.Source.Group, cfg.Port, joins)
			if len(mg) > 0 && r != nil && r.Source == nil {
				mgd.errorf("source.group", "groups need a [source] table in %s; add it there (the managed file cannot make this host a source)", conf.name)
			} else {
				groups = append(groups, mg...)
			}
		}
		if m.Member != nil {
			ms := mgd.sources(m.Member.Sources.v)
			if len(ms) > 0 && r != nil && r.Member == nil {
				mgd.errorf("member.sources", "sources need a [member] table in %s; add it there (the managed file cannot make this host a member)", conf.name)
			} else {
				sources = append(sources, ms...)
			}
		}
	}

	all := checkGroups(groups) // even without a [source]: the managed file's own problems
	if s := cfg.Source; s != nil {
		s.Groups = all
		if len(groups) == 0 && !joins {
			conf.warnf("source.group", "no groups yet: nothing is forwarded until a group is added")
		}
	}
	addrs, origins := checkSources(sources)
	if mem := cfg.Member; mem != nil { // so r.Member is not nil either
		mem.Sources, mem.SourceOrigins = addrs, origins
		// A sources that is not a list is an error already.
		v := r.Member.Sources.v
		if _, isList := v.([]any); len(sources) == 0 && (v == nil || isList) {
			conf.warnf("member.sources", "no sources yet: no tunnel packet is accepted until a source is added")
		}
	}
	return cfg
}

// settings validates everything in the config file but its groups and sources, and gives cfg
// a Source and a Member when the file has those tables.
func (c *checker) settings(cfg *Config, r *rawConfig) {
	if n, ok := c.integer("key", r.Key.v, 0, math.MaxUint32); ok {
		cfg.Key = uint32(n)
	}
	if n, ok := c.integer("port", r.Port.v, 1, math.MaxUint16); ok {
		cfg.Port = uint16(n)
	}
	if s, ok := c.text("secret_file", r.SecretFile.v); ok {
		switch {
		case s == "": // none: the tunnel is not authenticated
		case strings.IndexByte(s, 0) >= 0:
			c.errorf("secret_file", "%q contains a NUL byte", s)
		case !filepath.IsAbs(s):
			c.errorf("secret_file", "%q is not an absolute path", s)
		}
		cfg.SecretFile = s
	}
	if r.Encrypt.v != nil {
		b, ok := r.Encrypt.v.(bool)
		switch {
		case !ok:
			c.errorf("encrypt", "want true or false, got %s", describe(r.Encrypt.v))
		case b && cfg.SecretFile == "":
			c.errorf("encrypt", "encryption needs a secret: set secret_file")
		}
		cfg.Encrypt = b
	}
	if s, ok := c.text("datapath", r.Datapath.v); ok {
		switch {
		case s != DatapathAuto && s != DatapathKernel && s != DatapathUser:
			c.errorf("datapath", `%q is not "auto", "kernel" or "user"`, s)
		case s == DatapathKernel && cfg.SecretFile != "":
			c.errorf("datapath", `"kernel" forwards the plain tunnel only; with secret_file the tunnel runs in user space: use "auto" or "user"`)
		}
		cfg.Datapath = s
	}
	if r.Log != nil {
		cfg.Log = c.log(r.Log)
	}
	if r.Metrics != nil {
		cfg.Metrics = c.metrics(r.Metrics)
	}
	if r.Source == nil && r.Member == nil {
		c.errorf("", "no [source] or [member] table; a host needs at least one")
	}
	if r.Source != nil {
		cfg.Source = c.source(r.Source)
	}
	if r.Member != nil {
		cfg.Member = c.member(r.Member)
	}
}

// log validates [log].
func (c *checker) log(r *rawLog) Log {
	l := Log{Format: DefaultLogFormat, Level: DefaultLogLevel}
	if s, ok := c.text("log.format", r.Format.v); ok {
		if s != "text" && s != "json" {
			c.errorf("log.format", `%q is not "text" or "json"`, s)
		}
		l.Format = s
	}
	if s, ok := c.text("log.file", r.File.v); ok {
		switch {
		case s == "":
		case strings.IndexByte(s, 0) >= 0:
			c.errorf("log.file", "%q contains a NUL byte", s)
		case !filepath.IsAbs(s):
			c.errorf("log.file", "%q is not an absolute path", s)
		}
		l.File = s
	}
	if s, ok := c.text("log.level", r.Level.v); ok {
		switch s {
		case "debug", "info", "warn", "error":
		default:
			c.errorf("log.level", `%q is not "debug", "info", "warn" or "error"`, s)
		}
		l.Level = s
	}
	return l
}

// metrics validates [metrics].
func (c *checker) metrics(r *rawMetrics) Metrics {
	var m Metrics
	if s, ok := c.text("metrics.listen", r.Listen.v); ok && s != "" { // "": off, as Format writes it
		a, msg := parseListen(s)
		if msg != "" {
			c.errorf("metrics.listen", "%s", msg)
		}
		m.Listen = a
	}
	if r.PerMember.v != nil {
		b, ok := r.PerMember.v.(bool)
		if !ok {
			c.errorf("metrics.per_member", "want true or false, got %s", describe(r.PerMember.v))
		}
		m.PerMember = b
	}
	return m
}

// source validates [source] but its groups.
func (c *checker) source(r *rawSource) *Source {
	s := &Source{}
	if name, ok := c.text("source.interface", r.Interface.v); ok {
		if msg := ifNameProblem(name); msg != "" {
			c.errorf("source.interface", "%s", msg)
		}
		s.Interface = name
	}
	list, _ := c.array("source.join_from", r.JoinFrom.v)
	seen := map[netip.Prefix]bool{}
	for j, x := range list {
		key := elemKey("source.join_from", j)
		str, ok := c.text(key, x)
		if !ok {
			continue
		}
		p, msg := parseJoinFrom(str)
		switch {
		case msg != "":
			c.errorf(key, "%s", msg)
		case seen[p]:
			c.warnf(key, "%s is listed twice; using it once", str)
		default:
			seen[p] = true
			s.JoinFrom = append(s.JoinFrom, p)
		}
	}
	return s
}

// joinsAllowed reports whether the config file lets hosts join groups themselves: then a
// group may be declared without members.
func joinsAllowed(cfg *Config) bool { return cfg.Source != nil && len(cfg.Source.JoinFrom) > 0 }

// checkedGroup is a validated [[source.group]] with what the checks across groups need.
type checkedGroup struct {
	Group
	c       *checker // the file that defines it
	i       int      // its index there: source.group[i]
	ok      bool     // address and port are valid, and no earlier entry has both
	indices []int    // index in the file of each of Group.Members; nil when it is its own
}

// memberKey is the key path of g.Members[j].
func (g *checkedGroup) memberKey(j int) string {
	if g.indices != nil {
		j = g.indices[j]
	}
	return elemKey(groupKey(g.i)+".members", j)
}

// groupKey is the key path of [[source.group]] number i: "source.group[2]".
func groupKey(i int) string { return elemKey("source.group", i) }

// elemKey is the key path of element i of the array at key: "member.sources[1]".
func elemKey(key string, i int) string { return key + "[" + strconv.Itoa(i) + "]" }

// groups validates each [[source.group]] of the file on its own. With joins allowed
// (source.join_from), a group may have no members.
func (c *checker) groups(rs []rawGroup, tunnelPort uint16, joins bool) []checkedGroup {
	out := make([]checkedGroup, len(rs))
	seen := map[netip.AddrPort]bool{} // reused by each group
	for i := range rs {
		out[i] = c.group(i, &rs[i], tunnelPort, seen, joins)
	}
	return out
}

// group validates one [[source.group]]. seen is scratch space for finding members listed twice.
func (c *checker) group(i int, r *rawGroup, tunnelPort uint16, seen map[netip.AddrPort]bool, joins bool) checkedGroup {
	key := groupKey(i)
	g := checkedGroup{c: c, i: i, ok: true}
	g.Origin = c.origin(key)
	if r.Address.v == nil {
		c.errorf(key+".address", "missing; each group needs a multicast address")
		g.ok = false
	} else if a, ok := c.multicast(key+".address", r.Address.v); ok {
		g.Address = a
	} else {
		g.ok = false
	}
	if r.Port.v != nil {
		if n, ok := c.integer(key+".port", r.Port.v, 1, math.MaxUint16); ok {
			g.Port = uint16(n)
		} else {
			g.ok = false
		}
	}

	key += ".members"
	list, ok := c.array(key, r.Members.v)
	if (r.Members.v == nil || ok && len(list) == 0) && !joins {
		c.errorf(key, "no members; a group without members needs source.join_from, from where members join it themselves")
	}
	clear(seen)
	g.Members = make([]netip.AddrPort, 0, len(list))
	for j, x := range list {
		// There may be millions of members: build an element's key only for a problem.
		m, s, ok := c.member1(key, j, x, tunnelPort)
		if ok && seen[m] {
			c.warnf(elemKey(key, j), "%s is listed twice; using it once", s)
			ok = false
		}
		if !ok {
			if g.indices == nil { // from here on, the indices differ
				g.indices = make([]int, len(g.Members), len(list))
				for k := range g.indices {
					g.indices[k] = k
				}
			}
			continue
		}
		seen[m] = true
		g.Members = append(g.Members, m)
		if g.indices != nil {
			g.indices = append(g.indices, j)
		}
	}
	return g
}

// member1 validates x, element j of the members array at key, and returns it as written too.
func (c *checker) member1(key string, j int, x any, tunnelPort uint16) (m netip.AddrPort, s string, ok bool) {
	s, ok = x.(string)
	if !ok {
		c.errorf(elemKey(key, j), "want a string, got %s", describe(x))
		return netip.AddrPort{}, "", false
	}
	m, msg := parseMember(s, tunnelPort)
	if msg != "" {
		c.errorf(elemKey(key, j), "%s", msg)
		return netip.AddrPort{}, s, false
	}
	return m, s, true
}

// checkGroups applies the rules across groups to groups, the config file's followed by the
// managed file's, and returns them as Groups. A problem is recorded at the later of two
// entries, in its file, and names the earlier one's place.
func checkGroups(groups []checkedGroup) []Group {
	if len(groups) == 0 {
		return nil
	}
	type entry struct {
		addr netip.Addr
		port uint16 // 0: no port
	}
	entries := make(map[entry]*checkedGroup, len(groups)) // -> its first [[source.group]]
	perAddress := make(map[netip.Addr]int, len(groups))
	out := make([]Group, len(groups))
	for i := range groups {
		g := &groups[i]
		out[i] = g.Group
		if !g.ok {
			continue
		}
		e := entry{g.Address, g.Port}
		if first, dup := entries[e]; dup {
			g.c.errorf(groupKey(g.i), "%s is already defined at %s", groupName(g.Address, g.Port), first.Origin)
			g.ok = false // one problem is enough for this entry
			continue
		}
		entries[e] = g
		perAddress[g.Address]++
	}
	oneEntryPerAddress(groups, perAddress)
	return out
}

// groupName names a group by address and port: "224.1.2.3 port 5000", "224.1.2.3 with no
// port".
func groupName(a netip.Addr, port uint16) string {
	if port == 0 {
		return a.String() + " with no port"
	}
	return a.String() + " port " + strconv.Itoa(int(port))
}

// oneEntryPerAddress reports a member that is in two groups with the same address. A member
// keeps one sequence space per source and group address, so two entries for one address, each
// numbering its own packets, would look to it like loss and reordering.
func oneEntryPerAddress(groups []checkedGroup, perAddress map[netip.Addr]int) {
	type membership struct {
		group  netip.Addr
		member netip.AddrPort
	}
	var first map[membership]*checkedGroup // -> the group that has it first
	for i := range groups {
		g := &groups[i]
		if !g.ok || perAddress[g.Address] < 2 {
			continue
		}
		if first == nil {
			first = map[membership]*checkedGroup{}
		}
		for j, m := range g.Members {
			k := membership{g.Address, m}
			if f, ok := first[k]; ok {
				g.c.errorf(g.memberKey(j), "%s is also a member of %s, defined at %s; a member may be in one group per address",
					m, groupName(f.Address, f.Port), f.Origin)
				continue
			}
			first[k] = g
		}
	}
}

// member validates [member] but its sources.
func (c *checker) member(r *rawMember) *Member {
	m := &Member{TUN: DefaultTUN, MTU: DefaultMTU}
	if name, ok := c.text("member.tun", r.TUN.v); ok {
		if name == "" {
			c.errorf("member.tun", "empty; leave it out for the default %s", DefaultTUN)
		} else if msg := ifNameProblem(name); msg != "" {
			c.errorf("member.tun", "%s", msg)
		}
		m.TUN = name
	}
	if n, ok := c.integer("member.mtu", r.MTU.v, 576, math.MaxUint16); ok {
		m.MTU = int(n)
	}

	list, _ := c.array("member.groups", r.Groups.v)
	seen := map[netip.Addr]bool{}
	for j, x := range list {
		key := elemKey("member.groups", j)
		a, ok := c.multicast(key, x)
		if !ok {
			continue
		}
		if seen[a] {
			c.warnf(key, "%s is listed twice; using it once", a)
			continue
		}
		seen[a] = true
		m.Groups = append(m.Groups, a)
	}
	return m
}

// checkedSource is a validated element of member.sources.
type checkedSource struct {
	addr   netip.Addr
	s      string   // as written
	c      *checker // the file that lists it
	j      int      // its index there: member.sources[j]
	ok     bool
	origin Origin
}

// sources validates each element of member.sources, v, on its own.
func (c *checker) sources(v any) []checkedSource {
	list, _ := c.array("member.sources", v)
	out := make([]checkedSource, len(list))
	for j, x := range list {
		key := elemKey("member.sources", j)
		out[j] = checkedSource{c: c, j: j, origin: c.origin(key)}
		s, ok := c.text(key, x)
		if !ok {
			continue
		}
		a, msg := parseSource(s)
		if msg != "" {
			c.errorf(key, "%s", msg)
			continue
		}
		out[j].addr, out[j].s, out[j].ok = a, s, true
	}
	return out
}

// checkSources returns the valid sources, the config file's followed by the managed file's,
// each once, with where each is listed. A source listed again is a warning at the later place.
func checkSources(sources []checkedSource) ([]netip.Addr, []Origin) {
	var addrs []netip.Addr
	var origins []Origin
	first := map[netip.Addr]*checkedSource{}
	for i := range sources {
		s := &sources[i]
		if !s.ok {
			continue
		}
		if f, dup := first[s.addr]; dup {
			key := elemKey("member.sources", s.j)
			if f.c == s.c {
				s.c.warnf(key, "%s is listed twice; using it once", s.s)
			} else {
				s.c.warnf(key, "%s is already listed at %s; using it once", s.s, f.origin)
			}
			continue
		}
		first[s.addr] = s
		addrs = append(addrs, s.addr)
		origins = append(origins, s.origin)
	}
	return addrs, origins
}

// integer checks that v, when present, is an integer in lo..hi. ok is false when v is absent or
// wrong.
func (c *checker) integer(key string, v any, lo, hi int64) (n int64, ok bool) {
	if v == nil {
		return 0, false
	}
	n, ok = v.(int64)
	if !ok {
		c.errorf(key, "want an integer, got %s", describe(v))
		return 0, false
	}
	if msg := rangeProblem(n, lo, hi); msg != "" {
		c.errorf(key, "%s", msg)
		return 0, false
	}
	return n, true
}

// text checks that v, when present, is a string. ok is false when v is absent or not a string.
func (c *checker) text(key string, v any) (s string, ok bool) {
	if v == nil {
		return "", false
	}
	s, ok = v.(string)
	if !ok {
		c.errorf(key, "want a string, got %s", describe(v))
	}
	// A copy: the decoder's strings are slices of the whole file, which one kept string would
	// keep in memory for as long as the config (a MiB with 65,536 members).
	return strings.Clone(s), ok
}

// array checks that v, when present, is an array. ok is false when v is absent or not an array.
func (c *checker) array(key string, v any) (list []any, ok bool) {
	if v == nil {
		return nil, false
	}
	list, ok = v.([]any)
	if !ok {
		c.errorf(key, "want an array of strings, got %s", describe(v))
	}
	return list, ok
}

// multicast checks that v is a string holding an IPv4 multicast address, 224.0.0.0/4.
func (c *checker) multicast(key string, v any) (netip.Addr, bool) {
	s, ok := c.text(key, v)
	if !ok {
		return netip.Addr{}, false
	}
	a, msg := parseMulticast(s)
	if msg != "" {
		c.errorf(key, "%s", msg)
		return netip.Addr{}, false
	}
	return a, true
}

// ifNameProblem says what makes name unusable as a Linux interface name, or returns "". These
// are the kernel's dev_valid_name rules, plus no control characters; "" is left to the caller.
func ifNameProblem(name string) string {
	switch {
	case len(name) > 15:
		return fmt.Sprintf("%q is longer than 15 bytes", name)
	case name == "." || name == "..":
		return fmt.Sprintf("%q is not a valid interface name", name)
	}
	for _, r := range name {
		switch {
		case r == '/' || r == ':':
			return fmt.Sprintf("%q contains %q", name, r)
		case unicode.IsSpace(r):
			return fmt.Sprintf("%q contains whitespace", name)
		case unicode.IsControl(r):
			return fmt.Sprintf("%q contains a control character", name)
		}
	}
	return ""
}

// describe names the TOML type of a decoded value, and the value itself when it is short.
func describe(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("a string (%q)", v)
	case int64:
		return fmt.Sprintf("an integer (%d)", v)
	case float64:
		return fmt.Sprintf("a float (%v)", v)
	case bool:
		return fmt.Sprintf("a boolean (%v)", v)
	case time.Time:
		return "a date-time"
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	}
	return fmt.Sprintf("%T", v)
}
