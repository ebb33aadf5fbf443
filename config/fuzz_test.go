package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzParse checks that Parse never panics, that it returns either a Config or an *Error with
// problems, and that a Config it returns survives Format and Parse unchanged. The seed corpus is
// in testdata/fuzz/FuzzParse, plus the worked example.
func FuzzParse(f *testing.F) {
	example, err := os.ReadFile(filepath.Join("testdata", "mctun.toml"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, warns, err := Parse("fuzz.toml", data)
		for _, p := range warns {
			_ = p.String()
		}
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || len(e.Problems) == 0 {
				t.Fatalf("error %T %q, want an *Error with problems", err, err)
			}
			if cfg != nil {
				t.Fatalf("a Config and an error")
			}
			_ = err.Error()
			return
		}
		out := cfg.Format()
		again, _, err := Parse("fuzz.toml", []byte(out))
		if err != nil {
			t.Fatalf("Format output does not parse: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(again, cfg) {
			t.Fatalf("round trip changed the config:\n%#v\nwant\n%#v\nFormat:\n%s", again, cfg, out)
		}
	})
}

// FuzzScanLines checks that the line scanner ends, without panicking, on any input, TOML or not.
func FuzzScanLines(f *testing.F) {
	f.Add([]byte("[[a.b]]\nc = [1, \"x\",\n{ d = '''\n''' }]\n"))
	f.Add([]byte("a = \"\"\"\\"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ix := scanLines(data)
		for key := range ix.keys {
			if n := ix.line(key); n < 1 {
				t.Fatalf("line(%q) = %d", key, n)
			}
		}
	})
}
