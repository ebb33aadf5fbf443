package config

import (
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// lineIndex maps key paths to the 1-based line of the file that writes them. The decoder keeps
// key positions to itself, so scanLines reads the file's layout a second time, best effort: the
// decoder, not the index, decides what the file means, and a key the index does not know just
// has no line.
type lineIndex struct {
	// keys holds keys, [tables] and [[array]] elements: "port", "source",
	// "source.group" (its first [[source.group]]), "source.group[1]", "source.group[1].members".
	keys map[string]int
	// elems holds the line of each element of an array value, by the array's key path:
	// "source.group[1].members" -> [8, 9, 10].
	elems map[string][]int
}

// line returns the line of key, else of its nearest ancestor the index knows, else 0. A key
// that is not in the file, such as a missing members, so gets the line of its table.
func (ix *lineIndex) line(key string) int {
	for key != "" {
		if n, ok := ix.keys[key]; ok {
			return n
		}
		parent, i, isElem := cutKey(key)
		if lines := ix.elems[parent]; isElem && i < len(lines) {
			return lines[i]
		}
		key = parent
	}
	return 0
}

// cutKey splits "a.b[3]" into "a.b", 3, true and "a.b.c" into "a.b", 0, false.
func cutKey(key string) (parent string, index int, isElem bool) {
	if strings.HasSuffix(key, "]") {
		if i := strings.LastIndexByte(key, '['); i >= 0 {
			if n, err := strconv.Atoi(key[i+1 : len(key)-1]); err == nil && n >= 0 {
				return key[:i], n, true
			}
		}
	}
	if i := strings.LastIndexByte(key, '.'); i >= 0 {
		return key[:i], 0, false
	}
	return "", 0, false
}

// scanner reads TOML statements — [table], [[array.of.tables]], key = value — far enough to
// know where each key, table and array element starts. It understands comments, every kind of
// string, arrays across lines and inline tables, and skips whatever else it meets to the end of
// the line.
type scanner struct {
	data   []byte
	pos    int
	line   int
	table  string         // key path of the current table, e.g. "source.group[1]"
	arrays map[string]int // entries so far of each array of tables, by key path
	ix     lineIndex
	// skipElems, if set, says which arrays not to record the elements of.
	skipElems func(path string) bool
}

// scanLines indexes the lines of data: TOML that the decoder has accepted, though any input
// gives some index.
func scanLines(data []byte) *lineIndex { return scan(data, nil) }

// scanOrigins indexes the lines of data but the elements of members arrays, which may number
// millions: what an Origin needs, the lines of groups and sources, faster.
func scanOrigins(data []byte) *lineIndex {
	return scan(data, func(path string) bool { return strings.HasSuffix(path, ".members") })
}

func scan(data []byte, skipElems func(path string) bool) *lineIndex {
	s := &scanner{
		data:      data,
		line:      1,
		arrays:    map[string]int{},
		ix:        lineIndex{keys: map[string]int{}, elems: map[string][]int{}},
		skipElems: skipElems,
	}
	for {
		s.skipBlank(true)
		if s.pos >= len(s.data) {
			return &s.ix
		}
		if s.peek() == '[' {
			s.header()
		} else {
			s.keyValue()
		}
		s.skipLine()
	}
}

// header reads "[a.b]" or "[[a.b]]" and makes it the current table.
func (s *scanner) header() {
	arrayOfTables := s.peekAt(1) == '['
	s.pos++
	if arrayOfTables {
		s.pos++
	}
	parts := s.key()
	path := ""
	for i, part := range parts {
		path = joinKey(path, part)
		n := s.arrays[path]
		switch {
		case arrayOfTables && i == len(parts)-1:
			s.arrays[path] = n + 1
			s.mark(path)
			path += "[" + strconv.Itoa(n) + "]"
		case n > 0: // inside the latest entry of an array of tables
			path += "[" + strconv.Itoa(n-1) + "]"
		}
		s.mark(path)
	}
	if parts != nil {
		s.table = path
	}
}

// keyValue reads "a.b = value" in the current table.
func (s *scanner) keyValue() {
	path, ok := s.keyEquals(s.table)
	if ok {
		s.value(path)
	}
}

// keyEquals reads a dotted key and the "=" after it, marks the key and returns its path below
// table.
func (s *scanner) keyEquals(table string) (path string, ok bool) {
	parts := s.key()
	s.skipBlank(false)
	if parts == nil || s.peek() != '=' {
		return "", false
	}
	s.pos++
	path = table
	for _, part := range parts {
		path = joinKey(path, part)
		s.mark(path)
	}
	s.skipBlank(false)
	return path, true
}

// mark records the current line for path, unless path already has one.
func (s *scanner) mark(path string) {
	if _, ok := s.ix.keys[path]; !ok {
		s.ix.keys[path] = s.line
	}
}

func joinKey(path, part string) string {
	if path == "" {
		return part
	}
	return path + "." + part
}

// key reads a dotted key, returning each part written as toml.Key writes it, or nil.
func (s *scanner) key() []string {
	var parts []string
	for {
		s.skipBlank(false)
		start := s.pos
		switch c := s.peek(); {
		case c == '"' || c == '\'':
			if !s.skipString() {
				return nil
			}
			quoted := string(s.data[start:s.pos])
			name := quoted[1 : len(quoted)-1]
			if u, err := strconv.Unquote(quoted); c == '"' && err == nil {
				name = u
			}
			parts = append(parts, toml.Key{name}.String())
		case isBareKey(c):
			for s.pos < len(s.data) && isBareKey(s.data[s.pos]) {
				s.pos++
			}
			parts = append(parts, string(s.data[start:s.pos]))
		default:
			return nil
		}
		s.skipBlank(false)
		if s.peek() != '.' {
			return parts
		}
		s.pos++
	}
}

func isBareKey(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-'
}

// value reads one value. path names it, for the arrays and inline tables in it; a scalar needs
// no path.
func (s *scanner) value(path string) {
	switch s.peek() {
	case '"', '\'':
		s.skipString()
	case '[':
		s.array(path)
	case '{':
		s.inlineTable(path)
	default: // a number, boolean or date-time, which may hold a space: 1979-05-27 07:32:00
		for s.pos < len(s.data) && !strings.ContainsRune(",]}#\r\n", rune(s.data[s.pos])) {
			s.pos++
		}
	}
}

// array reads "[a, b, ...]", across lines, recording the line of each element.
func (s *scanner) array(path string) {
	s.pos++ // [
	// An array may have millions of elements: keep its lines here, not in the map, meanwhile.
	// A key written twice, which the decoder refuses, keeps its first lines, as mark keeps its
	// first line; its elements count from 0 again either way, so that the arrays nested in it
	// get the same paths whether or not its own lines are recorded.
	_, seen := s.ix.elems[path]
	record := !seen && (s.skipElems == nil || !s.skipElems(path))
	var lines []int
	n := 0
	if record {
		defer func() {
			if lines != nil {
				s.ix.elems[path] = lines
			}
		}()
	}
	for {
		s.skipBlank(true)
		switch s.peek() {
		case ']':
			s.pos++
			return
		case ',':
			s.pos++
			continue
		}
		if record {
			lines = append(lines, s.line)
		}
		start := s.pos
		switch s.peek() {
		case '"', '\'':
			s.skipString()
		case '[', '{': // only arrays and inline tables need a path
			s.value(path + "[" + strconv.Itoa(n) + "]")
		default:
			s.value("")
		}
		if s.pos == start {
			return // not understood
		}
		n++
	}
}

// inlineTable reads "{ a = 1, b.c = 2 }", allowing the newlines TOML 1.1 allows.
func (s *scanner) inlineTable(path string) {
	s.pos++ // {
	for {
		s.skipBlank(true)
		switch s.peek() {
		case '}':
			s.pos++
			return
		case ',':
			s.pos++
			continue
		}
		key, ok := s.keyEquals(path)
		start := s.pos
		if !ok {
			return
		}
		s.value(key)
		if s.pos == start {
			return
		}
	}
}

// skipString moves past a basic, literal or multi-line string. It returns false if the string
// does not end.
func (s *scanner) skipString() bool {
	q := s.peek()
	if s.peekAt(1) != q || s.peekAt(2) != q {
		return s.skipLineString(q)
	}
	s.pos += 3
	for s.pos < len(s.data) {
		c := s.data[s.pos]
		switch {
		case c == '\\' && q == '"':
			s.advance()
			if s.pos < len(s.data) {
				s.advance()
			}
		case c == q && s.peekAt(1) == q && s.peekAt(2) == q:
			s.pos += 3
			// Up to two more quotes belong to the string: """a""""" is `a""`.
			for i := 0; i < 2 && s.peek() == q; i++ {
				s.pos++
			}
			return true
		default:
			s.advance()
		}
	}
	return false
}

// skipLineString moves past a basic or literal string that opens with quote q and must end on
// its line, the kind a config holds millions of. It returns false, at the newline, if the
// string does not end there.
func (s *scanner) skipLineString(q byte) bool {
	data := s.data
	for i := s.pos + 1; i < len(data); i++ {
		switch data[i] {
		case q:
			s.pos = i + 1
			return true
		case '\n':
			s.pos = i
			return false
		case '\\':
			if q == '"' {
				i++ // the escaped byte, which cannot end the string
				if i < len(data) && data[i] == '\n' {
					s.line++
				}
			}
		}
	}
	s.pos = len(data)
	return false
}

// skipBlank moves past spaces, tabs and comments, and past newlines if newlines is set.
func (s *scanner) skipBlank(newlines bool) {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\r':
			s.pos++
		case '\n':
			if !newlines {
				return
			}
			s.advance()
		case '#':
			for s.pos < len(s.data) && s.data[s.pos] != '\n' {
				s.pos++
			}
		default:
			return
		}
	}
}

// skipLine moves past the end of the current line: a comment, or what the scanner did not
// understand.
func (s *scanner) skipLine() {
	for s.pos < len(s.data) && s.data[s.pos] != '\n' {
		s.pos++
	}
	if s.pos < len(s.data) {
		s.advance()
	}
}

// advance moves one byte on, counting lines.
func (s *scanner) advance() {
	if s.data[s.pos] == '\n' {
		s.line++
	}
	s.pos++
}

// peek returns the current byte, or 0 at the end.
func (s *scanner) peek() byte { return s.peekAt(0) }

func (s *scanner) peekAt(n int) byte {
	if s.pos+n < len(s.data) {
		return s.data[s.pos+n]
	}
	return 0
}
