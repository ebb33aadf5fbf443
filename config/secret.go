package config

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"syscall"
)

// ReadSecret reads the secret of secret_file. The file must be readable by root alone: owned
// by root, with no permission for group or others. Surrounding whitespace is not part of the
// secret, so a file written by `head -c 32 /dev/urandom | base64 > FILE` works as is.
func ReadSecret(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("secret_file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("secret_file: %w", err)
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("secret_file %s: not a regular file", path)
	case fi.Mode().Perm()&0o077 != 0:
		return nil, fmt.Errorf("secret_file %s: readable by others than its owner (mode %#o): it must be readable only by root (chmod 600 %s)", path, fi.Mode().Perm(), path)
	case st != nil && st.Uid != 0:
		return nil, fmt.Errorf("secret_file %s: owned by uid %d: it must be readable only by root (chown root %s)", path, st.Uid, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return nil, fmt.Errorf("secret_file %s: %w", path, err)
	}
	return bytes.TrimSpace(data), nil
}
