package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadSecret(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name, content string
		mode          os.FileMode
		want, err     string
	}{
		{"private", "c2VjcmV0IHNlY3JldCBzZWNyZXQh\n", 0o600, "c2VjcmV0IHNlY3JldCBzZWNyZXQh", ""},
		{"read-only private", "abc", 0o400, "abc", ""},
		{"world-readable", "abc", 0o644, "", "readable by others than its owner (mode 0644): it must be readable only by root"},
		{"group-readable", "abc", 0o640, "", "mode 0640"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadSecret(write(tt.name, tt.content, tt.mode))
			if os.Geteuid() != 0 && tt.err == "" {
				// Owned by this user, not root: refused for that.
				if err == nil || !strings.Contains(err.Error(), "chown root") {
					t.Fatalf("ReadSecret of a file owned by uid %d = %v, want refused", os.Geteuid(), err)
				}
				return
			}
			switch {
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Fatalf("ReadSecret = %q, %v; want an error saying %q", got, err, tt.err)
			case tt.err == "" && (err != nil || string(got) != tt.want):
				t.Fatalf("ReadSecret = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	if _, err := ReadSecret(filepath.Join(dir, "absent")); err == nil || !strings.Contains(err.Error(), "secret_file") {
		t.Errorf("ReadSecret of a missing file = %v", err)
	}
	if os.Geteuid() == 0 {
		p := write("not root's", "abc", 0o600)
		os.Chown(p, 65534, 65534)
		if _, err := ReadSecret(p); err == nil || !strings.Contains(err.Error(), "owned by uid 65534") {
			t.Errorf("ReadSecret of a file owned by nobody = %v", err)
		}
	}
}
