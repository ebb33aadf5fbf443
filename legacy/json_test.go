package legacy

import (
	"strings"
	"testing"
)

func TestParseJSONLines(t *testing.T) {
	n, err := parseJSON([]byte("\xef\xbb\xbf{\n  \"a\": [\n    1,\n    \"x\"\n  ],\n  \"a\": {\"b\": null}\n}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if n.kind != kindObject || len(n.fields) != 2 || n.line != 1 {
		t.Fatalf("root = %+v", n)
	}
	a := n.fields[0]
	if a.key != "a" || a.line != 2 || a.val.kind != kindArray || a.val.line != 2 {
		t.Errorf("first field = %+v", a)
	}
	if e := a.val.elems; len(e) != 2 || e[0].line != 3 || e[0].num != "1" || e[1].line != 4 || e[1].str != "x" {
		t.Errorf("array elements = %+v %+v", e[0], e[1])
	}
	if f := n.fields[1]; f.key != "a" || f.line != 6 || f.val.fields[0].val.kind != kindNull {
		t.Errorf("the repeated field, kept = %+v", f)
	}
}

func TestParseJSONErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "empty"},
		{" \n\t", "empty"},
		{"{\n\"a\": 1,\n}", "line 3: column 1: not valid JSON"},
		{"{\"a\": [1, 2", "line 1: not valid JSON: the file ends in the middle of a value"},
		{"{} []", "more after the end"},
		{"{} x", "line 1: column 4: not valid JSON"},
		{strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1), "nested too deeply"},
		{"\"\xff\" x", "not valid JSON"},
	}
	for _, tt := range tests {
		_, err := parseJSON([]byte(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseJSON(%q) = %v, want an error containing %q", tt.in, err, tt.want)
		}
	}
	if _, err := parseJSON([]byte(strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth))); err != nil {
		t.Errorf("parseJSON of %d nested arrays: %v", maxDepth, err)
	}
	big := make([]byte, MaxFileSize+1)
	if _, err := parseJSON(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("parseJSON of %d bytes = %v", len(big), err)
	}
}

func TestKeyName(t *testing.T) {
	for in, want := range map[string]string{
		"group_ip": "group_ip", "Group-IP2": "Group-IP2", "": `""`, "a b": `"a b"`, "a\nb": `"a\nb"`, "é": `"é"`, "a.b": `"a.b"`,
	} {
		if got := keyName(in); got != want {
			t.Errorf("keyName(%q) = %s, want %s", in, got, want)
		}
	}
}
