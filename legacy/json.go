package legacy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// The original's files are JSON, read here into a tree that remembers the line of every value
// and keeps every key of an object in file order, twice if it is there twice, so that each
// problem can be reported where it is.

// MaxFileSize is the largest file Import reads. The original's largest possible file (256
// groups of 256 members) is well under a megabyte.
const MaxFileSize = 16 << 20

// maxDepth is how deeply arrays and objects may nest. The original's files nest three deep.
const maxDepth = 32

type kind int

const (
	kindNull kind = iota
	kindBool
	kindNumber
	kindString
	kindArray
	kindObject
)

// node is one JSON value as read.
type node struct {
	kind   kind
	line   int         // 1-based: where the value starts
	str    string      // kindString
	num    json.Number // kindNumber, as written
	b      bool        // kindBool
	elems  []*node     // kindArray
	fields []field     // kindObject, in file order, duplicates kept
}

// field is one key of an object with its value.
type field struct {
	key  string
	line int
	val  *node
}

// describe names n's type, and n itself when it is short: "a string ("65535")".
func (n *node) describe() string {
	switch n.kind {
	case kindNull:
		return "null"
	case kindBool:
		return fmt.Sprintf("a boolean (%t)", n.b)
	case kindNumber:
		return fmt.Sprintf("a number (%s)", n.num)
	case kindString:
		if utf8.RuneCountInString(n.str) > 40 {
			return "a string"
		}
		return fmt.Sprintf("a string (%q)", n.str)
	case kindArray:
		return "an array"
	}
	return "an object"
}

// parseJSON reads data, one JSON value and nothing after it. A UTF-8 byte order mark at the
// start, as editors on other systems write, is skipped. Errors name the line.
func parseJSON(data []byte) (*node, error) {
	if len(data) > MaxFileSize {
		return nil, &jsonError{0, fmt.Sprintf("larger than %d MiB: not a config of the original tool", MaxFileSize>>20)}
	}
	bom := 0
	if bytes.HasPrefix(data, []byte("\xef\xbb\xbf")) {
		bom = 3
	}
	r := &jsonReader{data: data, bom: bom}
	for i, c := range data {
		if c == '\n' {
			r.newlines = append(r.newlines, i)
		}
	}
	r.dec = json.NewDecoder(bytes.NewReader(data[bom:]))
	r.dec.UseNumber()
	n, err := r.value(0)
	if err == nil {
		switch _, terr := r.dec.Token(); {
		case terr == nil:
			err = &jsonError{r.line(), "more after the end of the JSON value"}
		case terr != io.EOF:
			err = terr
		}
	}
	if err != nil {
		return nil, r.explain(err)
	}
	return n, nil
}

type jsonReader struct {
	dec      *json.Decoder
	data     []byte
	bom      int
	newlines []int // offsets of '\n' in data
}

// lineAt returns the line of the byte at offset in data.
func (r *jsonReader) lineAt(offset int) int {
	return 1 + sort.SearchInts(r.newlines, offset)
}

// line returns the line of the token the decoder returned last.
func (r *jsonReader) line() int {
	return r.lineAt(r.bom + int(r.dec.InputOffset()) - 1)
}

// jsonError is what is wrong with a file, and on which line (0: the file as a whole).
type jsonError struct {
	line int
	msg  string
}

func (e *jsonError) Error() string {
	if e.line == 0 {
		return e.msg
	}
	return fmt.Sprintf("line %d: %s", e.line, e.msg)
}

// value reads one value at depth.
func (r *jsonReader) value(depth int) (*node, error) {
	tok, err := r.dec.Token()
	if err != nil {
		return nil, err
	}
	n := &node{line: r.line()}
	switch t := tok.(type) {
	case nil:
		n.kind = kindNull
	case bool:
		n.kind, n.b = kindBool, t
	case json.Number:
		n.kind, n.num = kindNumber, t
	case string:
		n.kind, n.str = kindString, t
	case json.Delim:
		if depth >= maxDepth {
			return nil, &jsonError{n.line, "nested too deeply"}
		}
		switch t {
		case '[':
			n.kind = kindArray
			for r.dec.More() {
				e, err := r.value(depth + 1)
				if err != nil {
					return nil, err
				}
				n.elems = append(n.elems, e)
			}
		case '{':
			n.kind = kindObject
			for r.dec.More() {
				k, err := r.dec.Token()
				if err != nil {
					return nil, err
				}
				f := field{key: k.(string), line: r.line()} // the decoder allows nothing else here
				if f.val, err = r.value(depth + 1); err != nil {
					return nil, err
				}
				n.fields = append(n.fields, f)
			}
		}
		if _, err := r.dec.Token(); err != nil { // the closing ] or }
			return nil, err
		}
	}
	return n, nil
}

// explain turns a decoder error into one that says where.
func (r *jsonReader) explain(err error) error {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		// The decoder counts a token's offset from the start of the value it is in;
		// Unmarshal's check counts from the start of the input.
		var all *json.SyntaxError
		if errors.As(json.Unmarshal(r.data[r.bom:], new(any)), &all) {
			syn = all
		}
		off := r.bom + int(syn.Offset) - 1
		line := r.lineAt(max(off, 0))
		col := off + 1
		if line > 1 {
			col = off - r.newlines[line-2]
		}
		return &jsonError{line, fmt.Sprintf("column %d: not valid JSON: %s", col, syn.Error())}
	}
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		if len(bytes.TrimSpace(r.data[r.bom:])) == 0 {
			return &jsonError{0, "empty: not a config of the original tool"}
		}
		end := len(bytes.TrimRight(r.data, " \t\r\n"))
		return &jsonError{r.lineAt(end - 1), "not valid JSON: the file ends in the middle of a value"}
	}
	return err
}

// keyName writes an object key for a key path: as it is when it is a plain name, quoted
// otherwise, so that what a file holds cannot break the line a problem is printed on.
func keyName(k string) string {
	if k == "" {
		return `""`
	}
	for _, c := range k {
		if c != '_' && c != '-' && !unicode.IsLetter(c) && !unicode.IsDigit(c) || c > unicode.MaxASCII {
			return strconv.Quote(k)
		}
	}
	return k
}
