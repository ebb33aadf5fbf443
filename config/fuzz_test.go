package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzParse checks that Parse never panics, that it returns either a Config or an *Error with
// problems, and that a Config it returns survives Format and Parse unchanged, but for where
// things come from. The seed corpus is in testdata/fuzz/FuzzParse, plus the worked example.
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
		if !reflect.DeepEqual(withoutOrigins(again), withoutOrigins(cfg)) {
			t.Fatalf("round trip changed the config:\n%s\nwant\n%s\nFormat:\n%s", dump(again), dump(cfg), out)
		}
	})
}

// FuzzMerge checks Merge as FuzzParse checks Parse, and that the managed part of a Config it
// returns survives Managed().Format() and Merge unchanged. Problems must name one of the two
// files, the config file's first, each file's in line order.
func FuzzMerge(f *testing.F) {
	example, err := os.ReadFile(filepath.Join("testdata", "mctun.toml"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example, []byte(""))
	f.Add(example, []byte("[[source.group]]\naddress = \"239.1.1.1\"\nmembers = [\"192.168.1.1\"]\n[member]\nsources = [\"192.168.1.11\"]\n"))
	f.Add(example, []byte("[[source.group]]\naddress = \"224.1.2.3\"\nport = 65535\nmembers = [\"192.168.1.9\"]\n"))
	f.Add(example, []byte("port = 1\n[source]\ninterface = \"x\"\n[member]\nsources = [\"192.168.1.10\", \"1.1.1.1:1\"]\n"))
	f.Add([]byte(mergeMain), []byte(mergeManaged))
	f.Add([]byte("[member]\n"), []byte("[[source.group]]\naddress = \"224.1.2.3\"\nmembers = [\"198.18.1.1\"]\n"))
	f.Add([]byte("[source]\n"), []byte("source = { group = [{ address = \"224.0.0.251\", port = 5353, members = [\"198.18.1.1:1\"] }] }\n"))
	f.Fuzz(func(t *testing.T, main, managed []byte) {
		const name, managedName = "fuzz.toml", "fuzz.managed.toml"
		cfg, warns, err := Merge(name, main, managed)
		var errs []Problem
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || len(e.Problems) == 0 {
				t.Fatalf("error %T %q, want an *Error with problems", err, err)
			}
			if cfg != nil {
				t.Fatalf("a Config and an error")
			}
			errs = e.Problems
		}
		for _, ps := range [][]Problem{errs, warns} {
			for i, p := range ps {
				if p.File != name && p.File != managedName {
					t.Fatalf("problem in file %q: %v", p.File, p)
				}
				if i > 0 {
					q := ps[i-1]
					if q.File == managedName && p.File == name || q.File == p.File && q.Line > p.Line {
						t.Fatalf("problems out of order: %v before %v", q, p)
					}
				}
			}
		}
		if err != nil {
			return
		}

		if cfg.Source != nil {
			for _, g := range cfg.Source.Groups {
				if o := g.Origin; o.Managed != (o.File == managedName) || o.File != name && o.File != managedName {
					t.Fatalf("group %v has origin %+v", g.Address, o)
				}
			}
		}
		if m := cfg.Member; m != nil && len(m.SourceOrigins) != len(m.Sources) {
			t.Fatalf("%d sources, %d origins", len(m.Sources), len(m.SourceOrigins))
		}
		managedRoundTrip(t, cfg, main)
		out := cfg.Format()
		again, _, err := Parse(name, []byte(out))
		if err != nil {
			t.Fatalf("Format output does not parse: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(withoutOrigins(again), withoutOrigins(cfg)) {
			t.Fatalf("round trip changed the config:\n%s\nwant\n%s\nFormat:\n%s", dump(again), dump(cfg), out)
		}
	})
}

// FuzzScanLines checks that the line scanner ends, without panicking, on any input, TOML or
// not, and that the index for origins agrees with the full one on every line it has.
func FuzzScanLines(f *testing.F) {
	f.Add([]byte("[[a.b]]\nc = [1, \"x\",\n{ d = '''\n''' }]\n"))
	f.Add([]byte("a = \"\"\"\\"))
	f.Add([]byte("[[source.group]]\nmembers = [\"a\",\n\"b\", [1,\n2]]\n[member]\nsources = [\n'x',\n\"y\\\"\"]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ix := scanLines(data)
		for key := range ix.keys {
			if n := ix.line(key); n < 1 {
				t.Fatalf("line(%q) = %d", key, n)
			}
		}
		light := scanOrigins(data)
		if !reflect.DeepEqual(light.keys, ix.keys) {
			t.Fatalf("keys differ:\n%v\n%v", light.keys, ix.keys)
		}
		for path, lines := range light.elems {
			if !reflect.DeepEqual(lines, ix.elems[path]) {
				t.Fatalf("elems[%q] = %v, want %v", path, lines, ix.elems[path])
			}
		}
	})
}
