package config

import (
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"
)

// Every key of the schema is documented once, as what it is, and nothing else is: a key added
// to the schema without an entry in Reference fails here.
func TestReferenceCoversSchema(t *testing.T) {
	keys := Keys()
	seen := map[string]bool{}
	for i, k := range Reference {
		kind, ok := keys[k.Key]
		switch {
		case !ok:
			t.Errorf("Reference[%d]: %q is not a key of the schema (config/parse.go)", i, k.Key)
			continue
		case seen[k.Key]:
			t.Errorf("Reference[%d]: %q is documented twice", i, k.Key)
		case (kind == Value) != (k.Kind == Value):
			t.Errorf("Reference[%d]: %q: the schema says value %t, Reference kind %d", i, k.Key, kind == Value, k.Kind)
		}
		seen[k.Key] = true
		if strings.TrimSpace(k.Doc) == "" {
			t.Errorf("Reference[%d]: %q has no Doc", i, k.Key)
		}
		if k.Kind == Value && (k.Default == "" || k.Example == "") {
			t.Errorf("Reference[%d]: %q needs a Default (in words) and an Example (a TOML value)", i, k.Key)
		}
		if k.Kind != Value && (k.Default != "" || k.Example != "") {
			t.Errorf("Reference[%d]: table %q has a Default or Example", i, k.Key)
		}
		if strings.Contains(k.Doc, "|") || strings.Contains(k.Default, "|") {
			t.Errorf("Reference[%d]: %q: a | would break the README's table", i, k.Key)
		}
	}
	// The order TOML needs (and the example file relies on): top-level values first, then
	// each table followed by its own values.
	table := ""
	for i, k := range Reference {
		parent := ""
		if j := strings.LastIndex(k.Key, "."); j >= 0 {
			parent = k.Key[:j]
		}
		if k.Kind != Value {
			table = k.Key
			continue
		}
		if parent != table {
			t.Errorf("Reference[%d]: %q must come right after the entries of [%s] (top-level keys before every table)", i, k.Key, parent)
		}
	}
	for k := range keys {
		if !seen[k] {
			t.Errorf("config key %q has no entry in config.Reference (config/reference.go): add one (a value: Default, Doc, Example; a table: Kind and Doc) and its row to the README (TestReadmeReference prints the table)", k)
		}
	}
}

// The example the packages install is TOML as it ships (every key commented out, so mctun
// refuses it only for having no role), and every key uncommented at once is a valid config
// with no warning: each Example is a valid value, in a place where TOML puts it.
func TestExampleIsValid(t *testing.T) {
	ex := Example()
	_, _, err := Parse("mctun.toml", []byte(ex))
	var cerr *Error
	if !errors.As(err, &cerr) || len(cerr.Problems) != 1 || !strings.Contains(cerr.Problems[0].Msg, "no [source] or [member]") {
		t.Errorf("the example as shipped: want only the missing role, got %v", err)
	}

	setting := regexp.MustCompile(`^#(\[|[a-z_]+ = )`)
	var lines []string
	for _, l := range strings.Split(ex, "\n") {
		if setting.MatchString(l) {
			l = l[1:]
		}
		lines = append(lines, l)
	}
	uncommented := strings.Join(lines, "\n")
	cfg, warnings, err := Parse("mctun.toml", []byte(uncommented))
	if err != nil || len(warnings) > 0 {
		t.Fatalf("every key uncommented: %v %v\n%s", err, warnings, uncommented)
	}
	if cfg.Source == nil || cfg.Member == nil || cfg.SecretFile == "" || len(cfg.Source.Groups) != 1 {
		t.Errorf("every key uncommented: some key was not set:\n%s", cfg.Format())
	}
	for _, k := range Reference {
		if !strings.Contains(ex, "#"+k.Name()) && !strings.Contains(ex, "#"+k.Key[strings.LastIndex(k.Key, ".")+1:]+" = ") {
			t.Errorf("the example lacks %s", k.Name())
		}
	}
}

// The README's configuration reference is Reference, row for row, word for word.
func TestReadmeReference(t *testing.T) {
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "\n## Configuration reference\n")
	if !ok {
		t.Fatal("README.md has no section ## Configuration reference")
	}
	start := strings.Index(section, "\n| key |")
	if start < 0 {
		t.Fatal("README.md: no table in ## Configuration reference")
	}
	table := section[start+1:]
	if end := strings.Index(table, "\n\n"); end >= 0 {
		table = table[:end+1]
	}
	if want := ReferenceMarkdown(); table != want {
		t.Errorf("README.md's configuration reference differs from config.Reference; the table should read:\n\n%s", want)
	}
}
