package datadir_test

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/eventsd/eventsd/internal/datadir"
)

// TestReadOrCreate: the first call creates a 0600 file, later calls (a restart) read the same
// secret, and nothing else is left in the directory.
func TestReadOrCreate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	first, err := datadir.ReadOrCreate(dir, datadir.NATSPasswordFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 64 {
		t.Fatalf("ReadOrCreate = %q, want 64 hex digits", first)
	}
	fi, err := os.Stat(filepath.Join(dir, datadir.NATSPasswordFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("password file: %v, %v; want mode 0600", fi, err)
	}
	again, err := datadir.ReadOrCreate(dir, datadir.NATSPasswordFile)
	if err != nil || again != first {
		t.Fatalf("ReadOrCreate again = %q, %v; want %q", again, err, first)
	}
	if got, err := datadir.Read(dir, datadir.NATSPasswordFile); err != nil || got != first {
		t.Fatalf("Read = %q, %v; want %q", got, err, first)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("data directory holds %d files, want only %s", len(entries), datadir.NATSPasswordFile)
	}
}

// TestReadOrCreateRace: of many creators at once, every one gets the same secret.
func TestReadOrCreateRace(t *testing.T) {
	dir := t.TempDir()
	const n = 32
	got := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { got[i], errs[i] = datadir.ReadOrCreate(dir, "secret") })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || got[i] != got[0] {
			t.Fatalf("creator %d: %q, %v; want %q like creator 0", i, got[i], errs[i], got[0])
		}
	}
}

// TestRead: a missing file is os.ErrNotExist, an empty one ErrEmpty.
func TestRead(t *testing.T) {
	dir := t.TempDir()
	if _, err := datadir.Read(dir, "missing"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Read(missing) error = %v, want os.ErrNotExist", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "empty"), []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := datadir.Read(dir, "empty"); !errors.Is(err, datadir.ErrEmpty) {
		t.Fatalf("Read(empty) error = %v, want ErrEmpty", err)
	}
	if _, err := datadir.ReadOrCreate(dir, "empty"); !errors.Is(err, datadir.ErrEmpty) {
		t.Fatalf("ReadOrCreate(empty) error = %v, want ErrEmpty, not a new secret", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "exposed"), []byte("s3cret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if s, err := datadir.ReadOrCreate(dir, "exposed"); !errors.Is(err, datadir.ErrExposed) || s != "" {
		t.Fatalf("ReadOrCreate(a file others may read) = %q, %v; want ErrExposed and no secret", s, err)
	}
}
