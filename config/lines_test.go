package config

import (
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// TestScanLines checks the line found for each key of a file that uses the layouts TOML allows.
func TestScanLines(t *testing.T) {
	file := strings.Join([]string{
		/* 1 */ `# a comment with key = "value" and [brackets]`,
		/* 2 */ `key = 7 # [not.a.table]`,
		/* 3 */ `port = 4754`,
		/* 4 */ ``,
		/* 5 */ `[source]`,
		/* 6 */ `interface = "eth#0 [x]" # the '#' is in the string`,
		/* 7 */ `  [[ source.group ]]   # spaces in the header`,
		/* 8 */ `address = '224.1.2.3'`,
		/* 9 */ `members = [ # a comment in the array`,
		/* 10 */ `  "198.18.1.1", "198.18.1.2",`,
		/* 11 */ ``,
		/* 12 */ `  # a comment line`,
		/* 13 */ `  "198.18.1.3",`,
		/* 14 */ `]`,
		/* 15 */ `[[source.group]]`,
		/* 16 */ `note = """`,
		/* 17 */ `[member]`,
		/* 18 */ `members = ["not", "a", "key"]`,
		/* 19 */ `\""" still in the string ""`,
		/* 20 */ `"""`,
		/* 21 */ `address = "224.1.2.4"`,
		/* 22 */ `literal = '''`,
		/* 23 */ `port = 1 \`,
		/* 24 */ `'''`,
		/* 25 */ `members = ["198.18.1.1"]`,
		/* 26 */ `[source.group.sub]`,
		/* 27 */ `"quoted.key" = 1`,
		/* 28 */ `[[source.group]]`,
		/* 29 */ `members = [`,
		/* 30 */ `  "a]", 'b,', "c\"]",`,
		/* 31 */ `  "d"]`,
		/* 32 */ `when = 1979-05-27 07:32:00Z`,
		/* 33 */ `nested = [[1, 2], [`,
		/* 34 */ `  3]]`,
		/* 35 */ `inline = { a = 1, b.c = "}", d = [`,
		/* 36 */ `  1] }`,
		/* 37 */ `[member]`,
		/* 38 */ `sources.x = "198.18.0.1"`,
		/* 39 */ `groups = [{ a = 1 },`,
		/* 40 */ `  { b = 2 }]`,
	}, "\n")
	tests := []struct {
		key  string
		line int
	}{
		{"key", 2},
		{"port", 3},
		{"source", 5},
		{"source.interface", 6},
		{"source.group", 7}, // the first [[source.group]]
		{"source.group[0]", 7},
		{"source.group[0].address", 8},
		{"source.group[0].members", 9},
		{"source.group[0].members[0]", 10},
		{"source.group[0].members[1]", 10},
		{"source.group[0].members[2]", 13},
		{"source.group[0].members[3]", 9}, // no such element: the array's line
		{"source.group[1]", 15},
		{"source.group[1].note", 16},
		{"source.group[1].address", 21},
		{"source.group[1].literal", 22},
		{"source.group[1].members", 25},
		{"source.group[1].members[0]", 25},
		{"source.group[1].port", 15}, // not in the file: the table's line
		{"source.group[1].sub", 26},
		{`source.group[1].sub."quoted.key"`, 27},
		{"source.group[2]", 28},
		{"source.group[2].members[2]", 30},
		{"source.group[2].members[3]", 31},
		{"source.group[2].when", 32},
		{"source.group[2].nested[1]", 33},
		{"source.group[2].nested[1][0]", 34},
		{"source.group[2].inline", 35},
		{"source.group[2].inline.b.c", 35},
		{"source.group[2].inline.d[0]", 36},
		{"source.group[3].address", 7}, // no such group: the first group's line
		{"member", 37},
		{"member.sources", 38},
		{"member.sources.x", 38},
		{"member.groups[1]", 40},
		{"member.groups[1].b", 40},
		{"member.tun", 37},
		{"nothing", 0},
		{"", 0},
	}
	var v map[string]any
	if _, err := toml.Decode(file, &v); err != nil {
		t.Fatalf("the test file is not valid TOML: %v", err)
	}
	ix := scanLines([]byte(file))
	for _, tt := range tests {
		if got := ix.line(tt.key); got != tt.line {
			t.Errorf("line(%q) = %d, want %d", tt.key, got, tt.line)
		}
	}
}

func TestScanLinesCRLF(t *testing.T) {
	ix := scanLines([]byte("port = 1\r\n[member]\r\nsources = [\r\n  \"198.18.0.1\",\r\n]\r\n"))
	if got := ix.line("member.sources[0]"); got != 4 {
		t.Errorf("line(member.sources[0]) = %d, want 4", got)
	}
}

func TestCutKey(t *testing.T) {
	tests := []struct {
		key, parent string
		index       int
		isElem      bool
	}{
		{"source.group[1].members[3]", "source.group[1].members", 3, true},
		{"source.group[1].members", "source.group[1]", 0, false},
		{"source.group[1]", "source.group", 1, true},
		{"port", "", 0, false},
		{`a."b]"`, "a", 0, false},
		{"a[-1]", "", 0, false},
	}
	for _, tt := range tests {
		parent, index, isElem := cutKey(tt.key)
		if parent != tt.parent || index != tt.index || isElem != tt.isElem {
			t.Errorf("cutKey(%q) = %q, %d, %v; want %q, %d, %v", tt.key, parent, index, isElem, tt.parent, tt.index, tt.isElem)
		}
	}
}
