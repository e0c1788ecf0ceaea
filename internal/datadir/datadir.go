// Package datadir keeps the secrets eventsd generates in its data directory, the JWT secret
// and the embedded NATS server's password: each is created once, readable by its owner only,
// and read back on every later start and by eventsctl.
package datadir

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The embedded NATS server's credentials: it knows one user, whose password eventsd generates
// into NATSPasswordFile.
const (
	NATSUser         = "eventsd"
	NATSPasswordFile = "nats-password"
)

// ErrEmpty is returned for a secret file that holds nothing.
var ErrEmpty = errors.New("datadir: empty secret file")

// ErrExposed is returned for a secret file that users other than its owner may read.
var ErrExposed = errors.New("datadir: secret file readable by other users")

// Read returns the secret in the file name inside dir, without surrounding white space. A file
// that others may read is refused: the secret in it is no longer one.
func Read(dir, name string) (string, error) {
	path := filepath.Join(dir, name)
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("datadir: read %s: %w", name, err)
	}
	defer f.Close()
	// The mode of the file read, not of whatever the path names a moment later.
	if fi, err := f.Stat(); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%w: %s has mode %04o: chmod 600 it (and replace the secret if others may have read it)", ErrExposed, path, fi.Mode().Perm())
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return "", fmt.Errorf("datadir: read %s: %w", name, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%w: %s", ErrEmpty, path)
	}
	return s, nil
}

// ReadOrCreate returns the secret in the file name inside dir, generating a random one (64 hex
// digits, safe in a URL) on first use, mode 0600. Processes racing to create it all end up with
// the one secret that won: it is written to a temporary file first and then linked in place,
// which, like O_EXCL, fails when the file exists, and unlike it never shows a half-written file.
func ReadOrCreate(dir, name string) (string, error) {
	if s, err := Read(dir, name); err == nil || !errors.Is(err, os.ErrNotExist) {
		return s, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("datadir: %w", err)
	}
	raw := make([]byte, 32)
	_, _ = rand.Read(raw) // never fails: see crypto/rand.Read
	s := hex.EncodeToString(raw)
	tmp, err := os.CreateTemp(dir, "."+name+".*") // mode 0600
	if err != nil {
		return "", fmt.Errorf("datadir: create %s: %w", name, err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(s + "\n")
	if serr := tmp.Sync(); err == nil {
		err = serr
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Link(tmp.Name(), filepath.Join(dir, name))
		if err != nil && !errors.Is(err, os.ErrExist) {
			// A file system without hard links: create the file exclusively instead.
			err = writeExclusive(filepath.Join(dir, name), s)
		}
	}
	if errors.Is(err, os.ErrExist) { // another process won the race
		return readSettled(dir, name)
	}
	if err != nil {
		return "", fmt.Errorf("datadir: create %s: %w", name, err)
	}
	return s, nil
}

// writeExclusive writes s to a new file at path, mode 0600, failing if the file exists. The
// file shows empty until it is written (readSettled waits that out), and is removed if it
// cannot be written whole.
func writeExclusive(path, s string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString(s + "\n")
	if serr := f.Sync(); err == nil {
		err = serr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
	}
	return err
}

// readSettled reads a secret another process has just created: where the file system has no
// hard links, that process may still be writing it, so an empty file is read again a few times
// (for at most about a second) before it counts as empty.
func readSettled(dir, name string) (string, error) {
	for wait := time.Millisecond; ; wait *= 2 {
		s, err := Read(dir, name)
		if !errors.Is(err, ErrEmpty) || wait > 512*time.Millisecond {
			return s, err
		}
		time.Sleep(wait)
	}
}
