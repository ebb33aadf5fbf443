package config

import (
	"strconv"
	"strings"
)

// Problem is one thing wrong with a config file: an error that makes it unusable, or a warning
// about something Parse worked around.
type Problem struct {
	File string // the name given to Parse
	Line int    // 1-based; 0 when not known
	Key  string // the key path, e.g. "source.group[0].members[2]"; empty for the file as a whole
	Msg  string
}

// String formats p as "FILE:LINE: KEY: MSG", leaving out "LINE:" when the line is not known and
// "KEY: " when the problem is with the file as a whole.
func (p Problem) String() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		b.WriteByte(':')
	}
	if p.Line > 0 {
		b.WriteString(strconv.Itoa(p.Line))
		b.WriteByte(':')
	}
	if b.Len() > 0 {
		b.WriteByte(' ')
	}
	if p.Key != "" {
		b.WriteString(p.Key)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Error is the error Parse returns when a config is unusable. It holds every error found, in
// the order found; warnings are not among them.
type Error struct {
	Problems []Problem
}

// Error returns the problems one per line.
func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}
