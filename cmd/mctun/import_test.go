package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mctun/config"
)

var update = flag.Bool("update", false, "rewrite the golden files of mctun import")

// Each directory of testdata/import holds the original's files of one host and golden.txt,
// what mctun import prints for them: its exit status, stdout and stderr. go test -update
// rewrites golden.txt. Every config mctun import prints must be one mctun check accepts.
func TestImportGolden(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join("testdata", "import", "*"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no test cases: %v", err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			names, err := filepath.Glob(filepath.Join(dir, "*.json"))
			if err != nil || len(names) == 0 {
				t.Fatalf("no input files in %s", dir)
			}
			for i, n := range names {
				names[i] = filepath.Base(n)
			}
			golden, err := filepath.Abs(filepath.Join(dir, "golden.txt"))
			if err != nil {
				t.Fatal(err)
			}
			t.Chdir(dir)
			var stdout, stderr bytes.Buffer
			code := importFiles(names, "", false, &stdout, &stderr)
			got := fmt.Sprintf("$ mctun import %s\nexit %d\n-- stdout --\n%s-- stderr --\n%s", strings.Join(names, " "), code, stdout.String(), stderr.String())
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (go test -update writes it)", err)
			}
			if got != string(want) {
				t.Errorf("mctun import printed:\n%s\nwant (%s):\n%s", got, golden, want)
			}
			if strings.HasPrefix(filepath.Base(dir), "worked-example") && code != exitOK {
				t.Errorf("the worked example imports with exit %d, want %d (exactly)", code, exitOK)
			}
			switch code {
			case exitOK, exitInexact:
				checkAccepts(t, stdout.Bytes())
			default:
				if stdout.Len() > 0 {
					t.Errorf("exit %d, and printed a config", code)
				}
			}
		})
	}
}

// checkAccepts asserts that mctun check accepts the config: it loads as mctun check loads it.
func checkAccepts(t *testing.T, cfg []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mctun.toml")
	if err := os.WriteFile(path, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, ok := loadConfig("mctun check", path); !ok {
		t.Errorf("mctun check does not accept what mctun import printed:\n%s", cfg)
	}
}

func TestImportWrite(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "multis.json")
	if err := os.WriteFile(in, []byte(`{"multi_group_array": [{"group_ip": "224.1.2.3", "group_port": 65535,
		"server_port": 65535, "member_array": ["192.168.1.1"]}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "mctun.toml")
	run := func(force bool) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := importFiles([]string{in}, out, force, &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}

	code, stdout, stderr := run(false)
	data, err := os.ReadFile(out)
	if code != exitOK || err != nil || !strings.Contains(stdout, "wrote "+out) || stderr != "" {
		t.Fatalf("import -w: exit %d, stdout %q, stderr %q, read: %v", code, stdout, stderr, err)
	}
	if !bytes.Contains(data, []byte(`address = "224.1.2.3"`)) {
		t.Errorf("import -w wrote:\n%s", data)
	}
	if cfg, _, err := config.Load(out); err != nil || len(cfg.Source.Groups) != 1 {
		t.Errorf("the written file does not load: %v", err)
	}

	// Never over an existing file without --force: the file is left as it was.
	if err := os.WriteFile(out, []byte("# mine\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = run(false)
	if data, _ := os.ReadFile(out); code != exitFailed || string(data) != "# mine\n" || stdout != "" || !strings.Contains(stderr, "--force") {
		t.Errorf("import -w over a file: exit %d, stdout %q, stderr %q; file now %q", code, stdout, stderr, data)
	}
	if code, _, _ = run(true); code != exitOK {
		t.Errorf("import -w --force: exit %d", code)
	}
	if data, _ := os.ReadFile(out); !bytes.Contains(data, []byte("224.1.2.3")) {
		t.Errorf("import -w --force did not replace the file: %q", data)
	}

	// A managed file next to the target that defines the same group: the pair would not be
	// valid, so nothing is written.
	if err := os.WriteFile(config.ManagedPath(out), []byte("[[source.group]]\naddress = \"224.1.2.3\"\nport = 65535\nmembers = [\"192.168.1.9\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(out)
	code, _, stderr = run(false)
	if _, err := os.Stat(out); code != exitFailed || err == nil || !strings.Contains(stderr, "already defined") {
		t.Errorf("import -w next to a conflicting managed file: exit %d, stderr %q, stat: %v", code, stderr, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("import left files behind: %v", entries)
	}
}
