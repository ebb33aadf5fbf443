package legacy

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"mctun/config"
	"mctun/internal/words"
)

// File is one of the original tool's config files.
type File struct {
	Name string // as the operator named it: problems and the header say it
	Data []byte
}

// Result is what Import made of the original's files: one mctun config, and what of the
// files it could not carry over exactly.
type Result struct {
	// Config has a Source if a server file was given, a Member if a client file was. Its
	// groups and sources have the JSON file and line they come from as their Origin. TOML
	// writes it; config.Parse accepts what TOML writes.
	Config *config.Config
	Files  []FileInfo
	// Problems are everything not carried over exactly, each with the reason, in the order
	// of the files and lines. Empty: the config does what the files did.
	Problems []config.Problem

	serverPorts []int // the valid server_ports, each once, for the header
}

// FileInfo is what Import recognised a file as, and what it took from it.
type FileInfo struct {
	Name    string
	Server  bool // it has multi_group_array: the server's file
	Client  bool // it has multi_server_info_array: a client's file
	Groups  int  // groups it defines that are in the config (a group defined again counts once)
	Servers int  // servers it names that are in the config as sources (each once)
}

// The keys of the original's files.
const (
	serverArray = "multi_group_array"
	clientArray = "multi_server_info_array"
)

var (
	serverFields = []string{"group_ip", "group_port", "server_port", "member_array"}
	clientFields = []string{"server_ip", "server_port", "group_ip", "group_port"}
)

// Import reads the original's server and client files, recognising each by its content, and
// returns the mctun config that does what they did, with everything it could not carry over
// exactly. The files are those of one host: a host that ran the server and a client gets a
// config with both [source] and [member].
//
// A file that is not JSON, or not one of the original's files, is an error: then there is no
// Result, and the error (a *config.Error) names every such file.
func Import(files []File) (*Result, error) {
	im := &importer{
		res:         &Result{Config: &config.Config{Port: config.DefaultPort}},
		byEntry:     map[groupEntry]*config.Group{},
		memberOf:    map[netip.Addr]map[netip.Addr]membership{},
		sources:     map[netip.Addr]bool{},
		groups:      map[netip.Addr]bool{},
		pairs:       map[[2]netip.Addr]bool{},
		entries:     map[clientEntry]config.Origin{},
		serverPorts: map[int]bool{},
	}
	var fatal []config.Problem
	for _, f := range files {
		root, err := parseJSON(f.Data)
		if err != nil {
			p := config.Problem{File: f.Name, Msg: err.Error()}
			var jerr *jsonError
			if errors.As(err, &jerr) {
				p.Line, p.Msg = jerr.line, jerr.msg
			}
			fatal = append(fatal, p)
			continue
		}
		if p, ok := im.file(f.Name, root); !ok {
			fatal = append(fatal, p)
		}
	}
	if len(fatal) > 0 {
		return nil, &config.Error{Problems: fatal}
	}
	im.checkPairs()
	res := im.res
	if s := res.Config.Source; s != nil {
		for _, g := range im.groupList {
			s.Groups = append(s.Groups, *g)
		}
	}
	for p := range im.serverPorts {
		res.serverPorts = append(res.serverPorts, p)
	}
	slices.Sort(res.serverPorts)
	// The result must be what mctun itself accepts. Anything else is a bug here.
	if _, _, err := config.Parse("imported", []byte(res.TOML())); err != nil {
		return nil, fmt.Errorf("mctun import made a config mctun does not accept (a bug in mctun import): %w", err)
	}
	return res, nil
}

// importer carries what Import learnt from the files read so far.
type importer struct {
	res  *Result
	info *FileInfo // of the file being read

	// The server's groups: by address and port, and, per group address, which group each
	// member is in (a member may be in one group per address).
	groupList []*config.Group // in file order; the config gets them at the end
	byEntry   map[groupEntry]*config.Group
	memberOf  map[netip.Addr]map[netip.Addr]membership

	// The clients' servers and groups, which servers sent which groups, and each entry once.
	sources     map[netip.Addr]bool
	groups      map[netip.Addr]bool
	pairs       map[[2]netip.Addr]bool
	entries     map[clientEntry]config.Origin
	clientFiles []string
	fileServers map[netip.Addr]bool // the servers of the client file being read

	serverPorts map[int]bool // every valid server_port, of both kinds of file
}

type groupEntry struct {
	addr netip.Addr
	port uint16
}

type membership struct {
	group *config.Group
	at    config.Origin // where the member is listed
}

type clientEntry struct {
	server, group netip.Addr
	port          int
}

// problem records what of the file could not be carried over exactly.
func (im *importer) problem(line int, key, format string, args ...any) {
	im.res.Problems = append(im.res.Problems, config.Problem{File: im.info.Name, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)})
}

// file reads one file's root value. It returns false, with the problem, when the file is not
// one of the original's.
func (im *importer) file(name string, root *node) (config.Problem, bool) {
	not := func(format string, args ...any) (config.Problem, bool) {
		return config.Problem{File: name, Line: root.line, Msg: fmt.Sprintf(format, args...)}, false
	}
	const which = "want the original tool's server file ({\"" + serverArray + "\": [...]}) or client file ({\"" + clientArray + "\": [...]})"
	if root.kind != kindObject {
		return not("%s, got %s", which, root.describe())
	}
	var srv, cli *field
	for i := range root.fields {
		f := &root.fields[i]
		switch {
		case f.key == serverArray && srv == nil:
			srv = f
		case f.key == clientArray && cli == nil:
			cli = f
		}
	}
	if srv == nil && cli == nil {
		return not("%s; it has neither", which)
	}
	for _, f := range []*field{srv, cli} {
		if f != nil && f.val.kind != kindArray {
			return config.Problem{File: name, Line: f.line, Key: f.key, Msg: "want an array, got " + f.val.describe()}, false
		}
	}
	im.res.Files = append(im.res.Files, FileInfo{Name: name})
	im.info = &im.res.Files[len(im.res.Files)-1]
	im.fields(root, "", []string{serverArray, clientArray}) // for the unknown and repeated ones
	if srv != nil {
		im.info.Server = true
		im.server(srv.val)
	}
	if cli != nil {
		im.info.Client = true
		im.client(cli.val)
	}
	return config.Problem{}, true
}

// fields returns the object's known fields by name (the first, when one is there twice), and
// records each unknown and repeated field as a problem. prefix is the object's key path.
func (im *importer) fields(obj *node, prefix string, known []string) map[string]*field {
	out := map[string]*field{}
	for i := range obj.fields {
		f := &obj.fields[i]
		key := keyName(f.key)
		if prefix != "" {
			key = prefix + "." + key
		}
		switch first, seen := out[f.key]; {
		case seen:
			im.problem(f.line, key, "given twice (first on line %d); using the first", first.line)
		case !slices.Contains(known, f.key):
			im.problem(f.line, key, "unknown field, not part of the original's %s; ignored", fileKind(prefix, known))
		default:
			out[f.key] = f
		}
	}
	return out
}

// fileKind names, for a problem, what holds the fields known.
func fileKind(prefix string, known []string) string {
	switch {
	case prefix == "":
		return "files"
	case slices.Equal(known, serverFields):
		return "groups (" + strings.Join(serverFields, ", ") + ")"
	}
	return "server entries (" + strings.Join(clientFields, ", ") + ")"
}

// server reads the server file's multi_group_array: each group becomes a [[source.group]].
func (im *importer) server(arr *node) {
	cfg := im.res.Config
	if cfg.Source == nil {
		cfg.Source = &config.Source{}
	}
	for i, e := range arr.elems {
		im.serverGroup(fmt.Sprintf("%s[%d]", serverArray, i), e)
	}
}

// serverGroup reads one element of multi_group_array.
func (im *importer) serverGroup(key string, e *node) {
	if e.kind != kindObject {
		im.problem(e.line, key, "want an object (a group), got %s; left out", e.describe())
		return
	}
	f := im.fields(e, key, serverFields)
	const out = "the group is left out"
	addr, ok := im.groupAddr(e, f["group_ip"], key+".group_ip", out)
	if !ok {
		return
	}
	port, ok := im.port(e, f["group_port"], key+".group_port", out)
	if !ok {
		return
	}
	name := groupName(addr, uint16(port))
	mkey := key + ".member_array"
	ma := f["member_array"]
	g := im.byEntry[groupEntry{addr, uint16(port)}]
	again := g != nil
	switch {
	case again:
		im.problem(e.line, key, "%s is already defined at %s; its members are added to that group", name, g.Origin)
	default:
		g = &config.Group{Address: addr, Port: uint16(port), Origin: config.Origin{File: im.info.Name, Line: e.line}}
	}
	im.serverPort(e, f["server_port"], key+".server_port", addr, port)
	lost := "; " + out
	if again {
		lost = "; nothing is added to the group"
	}
	switch {
	case ma == nil:
		im.problem(e.line, mkey, "missing: no members%s", lost)
		return
	case ma.val.kind != kindArray:
		im.problem(ma.line, mkey, "want an array of addresses, got %s%s", ma.val.describe(), lost)
		return
	case len(ma.val.elems) == 0:
		im.problem(ma.line, mkey, "empty: the original forwarded the group nowhere%s", lost)
		return
	}
	in := im.memberOf[addr]
	if in == nil {
		in = map[netip.Addr]membership{}
		im.memberOf[addr] = in
	}
	added := 0
	for j, m := range ma.val.elems {
		ekey := fmt.Sprintf("%s[%d]", mkey, j)
		if m.kind != kindString {
			im.problem(m.line, ekey, "want a string (an address), got %s; left out", m.describe())
			continue
		}
		a, msg := memberAddr(m.str)
		if msg != "" {
			im.problem(m.line, ekey, "%s", msg)
			continue
		}
		here := config.Origin{File: im.info.Name, Line: m.line}
		if prev, ok := in[a]; ok {
			if prev.group == g {
				im.problem(m.line, ekey, "%s is listed twice (first at %s); using it once: the original skipped duplicates silently", a, prev.at)
			} else {
				im.problem(m.line, ekey, "%s is already a member of %s (at %s), and a member may be in one group per "+
					"address; left out of %s", a, groupName(prev.group.Address, prev.group.Port), prev.at, name)
			}
			continue
		}
		in[a] = membership{group: g, at: here}
		g.Members = append(g.Members, netip.AddrPortFrom(a, config.DefaultPort))
		added++
	}
	switch {
	case again:
	case added == 0:
		im.problem(ma.line, mkey, "no usable member%s", lost)
	default:
		im.byEntry[groupEntry{addr, uint16(port)}] = g
		im.groupList = append(im.groupList, g)
		im.info.Groups++
	}
}

// serverPort checks a group's server_port: the port the original sent the group to its
// members on, where mctun has one tunnel port for every group.
func (im *importer) serverPort(obj *node, f *field, key string, addr netip.Addr, port int) {
	if f == nil {
		im.problem(obj.line, key, "missing (the original needed it); not needed: mctun sends to its tunnel port, %d", config.DefaultPort)
		return
	}
	n, msg := portValue(f.val)
	switch {
	case msg != "":
		im.problem(f.line, key, "%s; ignored: mctun sends to its tunnel port, %d", msg, config.DefaultPort)
	case n != port:
		im.serverPorts[n] = true
		im.problem(f.line, key, "%d differs from group_port %d: the original rewrote the destination to member:%d; "+
			"mctun carries each packet unchanged, so the members' applications receive it on %s, as the source's "+
			"application sent it: one that listened on port %d must listen on %d", n, port, n, groupName(addr, uint16(port)), n, port)
	default:
		im.serverPorts[n] = true
	}
}

// client reads a client file's multi_server_info_array: each server becomes a source, each
// group an element of member.groups.
func (im *importer) client(arr *node) {
	cfg := im.res.Config
	if cfg.Member == nil {
		cfg.Member = &config.Member{Sources: []netip.Addr{}}
	}
	im.clientFiles = append(im.clientFiles, im.info.Name)
	im.fileServers = map[netip.Addr]bool{}
	for i, e := range arr.elems {
		im.clientEntry(fmt.Sprintf("%s[%d]", clientArray, i), e)
	}
	im.info.Servers = len(im.fileServers)
}

// clientEntry reads one element of multi_server_info_array.
func (im *importer) clientEntry(key string, e *node) {
	if e.kind != kindObject {
		im.problem(e.line, key, "want an object (a server), got %s; left out", e.describe())
		return
	}
	f := im.fields(e, key, clientFields)
	const out = "the entry is left out"
	var server netip.Addr
	switch sf := f["server_ip"]; {
	case sf == nil:
		im.problem(e.line, key+".server_ip", "missing; %s", out)
		return
	case sf.val.kind != kindString:
		im.problem(sf.line, key+".server_ip", "want a string (an address), got %s; %s", sf.val.describe(), out)
		return
	default:
		a, err := config.ParseSource(sf.val.str)
		if err != nil {
			im.problem(sf.line, key+".server_ip", "%s; %s", err, out)
			return
		}
		server = a
	}
	group, ok := im.groupAddr(e, f["group_ip"], key+".group_ip", out)
	if !ok {
		return
	}
	port, ok := im.port(e, f["group_port"], key+".group_port", out)
	if !ok {
		return
	}
	if sp := f["server_port"]; sp == nil {
		im.problem(e.line, key+".server_port", "missing (the original needed it); not needed: mctun receives on its tunnel port, %d", config.DefaultPort)
	} else if n, msg := portValue(sp.val); msg != "" {
		im.problem(sp.line, key+".server_port", "%s; ignored: mctun receives on its tunnel port, %d", msg, config.DefaultPort)
	} else {
		im.serverPorts[n] = true
		if n != port {
			im.problem(sp.line, key+".server_port", "%d differs from group_port %d: the original received group %s from %s "+
				"on port %d and sent it on to port %d; mctun delivers each packet as the source's application sent it, "+
				"to the port it chose: check that this is %d", n, port, group, server, n, port, port)
		}
	}

	ce := clientEntry{server, group, port}
	if at, dup := im.entries[ce]; dup {
		im.problem(e.line, key, "the same server, group and port as at %s; using it once", at)
		return
	}
	im.entries[ce] = config.Origin{File: im.info.Name, Line: e.line}
	m := im.res.Config.Member
	if !im.sources[server] {
		im.sources[server] = true
		m.Sources = append(m.Sources, server)
		m.SourceOrigins = append(m.SourceOrigins, config.Origin{File: im.info.Name, Line: f["server_ip"].line})
	}
	im.fileServers[server] = true
	if !im.groups[group] {
		im.groups[group] = true
		m.Groups = append(m.Groups, group)
	}
	im.pairs[[2]netip.Addr{server, group}] = true
}

// checkPairs reports what member.sources and member.groups let through that the original's
// clients did not: it paired each server with its own groups, mctun accepts every group
// from every source.
func (im *importer) checkPairs() {
	m := im.res.Config.Member
	if m == nil || len(m.Sources) < 2 {
		return
	}
	var extra []string
	for _, s := range m.Sources {
		for _, g := range m.Groups {
			if !im.pairs[[2]netip.Addr{s, g}] {
				extra = append(extra, fmt.Sprintf("%s from %s", g, s))
			}
		}
	}
	if len(extra) == 0 {
		return
	}
	if len(extra) > 3 {
		extra = append(extra[:3], fmt.Sprintf("and %d more", len(extra)-3))
	}
	file := ""
	if len(im.clientFiles) == 1 {
		file = im.clientFiles[0]
	}
	im.res.Problems = append(im.res.Problems, config.Problem{File: file, Key: clientArray, Msg: fmt.Sprintf(
		"the original paired each server with its own groups; mctun accepts every group of member.groups from every "+
			"source of member.sources, so it would also deliver %s: make sure each source sends only its own groups "+
			"(each source's [[source.group]] tables say what it sends)", strings.Join(extra, ", "))})
}

// groupAddr reads a group_ip. ok is false, and the problem recorded, when it is missing or not
// a multicast address; out says what happens then.
func (im *importer) groupAddr(obj *node, f *field, key, out string) (netip.Addr, bool) {
	switch {
	case f == nil:
		im.problem(obj.line, key, "missing; %s", out)
	case f.val.kind != kindString:
		im.problem(f.line, key, "want a string (a multicast address), got %s; %s", f.val.describe(), out)
	default:
		a, err := config.ParseGroup(f.val.str)
		if err == nil {
			return a, true
		}
		im.problem(f.line, key, "%s; %s", err, out)
	}
	return netip.Addr{}, false
}

// port reads a group_port. ok is false, and the problem recorded, when it is missing or not a
// port; out says what happens then.
func (im *importer) port(obj *node, f *field, key, out string) (int, bool) {
	if f == nil {
		im.problem(obj.line, key, "missing; %s", out)
		return 0, false
	}
	n, msg := portValue(f.val)
	if msg != "" {
		im.problem(f.line, key, "%s; %s", msg, out)
		return 0, false
	}
	return n, true
}

// portValue reads n as a port. msg says what is wrong with it, or is "".
func portValue(n *node) (port int, msg string) {
	if n.kind != kindNumber {
		return 0, "want a number (a port), got " + n.describe()
	}
	v, err := strconv.ParseInt(string(n.num), 10, 64)
	switch {
	case errors.Is(err, strconv.ErrRange):
		return 0, fmt.Sprintf("%s is out of range 1..65535", n.num)
	case err != nil:
		return 0, fmt.Sprintf("%s is not a whole number", n.num)
	case v == 0:
		return 0, "0 is not a port (the original's client crashed on port 0)"
	case v < 0 || v > 65535:
		return 0, fmt.Sprintf("%d is out of range 1..65535", v)
	}
	return int(v), ""
}

// memberAddr reads an element of member_array: the IPv4 address of a host. msg says what is
// wrong with it and that it is left out, or is "".
func memberAddr(s string) (netip.Addr, string) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Sprintf("%q is not an IP address; left out (the original accepted it, and sent its copies nowhere)", s)
	}
	if _, err := config.ParseMember(s, config.DefaultPort); err != nil {
		if a.Is4() && a.IsMulticast() {
			return netip.Addr{}, fmt.Sprintf("%s; left out, as the original skipped it silently", err)
		}
		return netip.Addr{}, fmt.Sprintf("%s; left out (the original accepted it)", err)
	}
	return a, ""
}

// groupName names a group as mctun's messages do: "224.1.2.3:65535".
func groupName(a netip.Addr, port uint16) string {
	if port == 0 {
		return a.String()
	}
	return a.String() + ":" + strconv.Itoa(int(port))
}

// TOML returns the config as a file: a header that names the files it came from and lists
// what was not carried over exactly, then the config, written by config.FormatMinimal.
func (r *Result) TOML() string {
	var b strings.Builder
	b.WriteString("# mctun config imported by mctun import from the original multicast proxy's files:\n")
	for _, f := range r.Files {
		var parts []string
		if f.Server {
			parts = append(parts, fmt.Sprintf("server file, %s", words.Plural(f.Groups, "group")))
		}
		if f.Client {
			parts = append(parts, fmt.Sprintf("client file, %s", words.Plural(f.Servers, "server")))
		}
		comment(&b, "  %s: %s", f.Name, strings.Join(parts, "; "))
	}
	if r.Config.Source != nil || r.Config.Member != nil {
		text := fmt.Sprintf("mctun carries every group to one tunnel port, UDP %d", config.DefaultPort)
		if len(r.serverPorts) > 0 {
			ps := make([]string, len(r.serverPorts))
			for i, p := range r.serverPorts {
				ps[i] = strconv.Itoa(p)
			}
			text += fmt.Sprintf(", where the original used server_port %s", strings.Join(ps, ", "))
		}
		text += fmt.Sprintf(": allow UDP %d from each source host to its members (security group, firewall).", config.DefaultPort)
		paragraph(&b, text)
	}
	if m := r.Config.Member; m != nil && len(m.Groups) > 0 {
		paragraph(&b, "member.groups lists the groups the original's client forwarded; without it, this host delivers every group its sources send.")
	}
	if len(r.Problems) > 0 {
		b.WriteString("#\n")
		comment(&b, "Not carried over exactly (mctun import listed these on stderr too):")
		for _, p := range r.Problems {
			comment(&b, "  %s", p)
		}
	}
	b.WriteString("\n")
	b.WriteString(r.Config.FormatMinimal())
	return b.String()
}

// paragraph writes text as comment lines of at most 92 characters.
func paragraph(b *strings.Builder, text string) {
	line := ""
	for _, w := range strings.Fields(text) {
		if line != "" && len(line)+1+len(w) > 90 {
			comment(b, "%s", line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	if line != "" {
		comment(b, "%s", line)
	}
}

// comment writes one comment line, with any control character, which would end the comment
// or the line, escaped.
func comment(b *strings.Builder, format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	if strings.ContainsFunc(s, unicode.IsControl) {
		q := strconv.Quote(s)
		s = q[1 : len(q)-1]
	}
	b.WriteString("# ")
	b.WriteString(s)
	b.WriteString("\n")
}
