package main

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/eventsd/eventsd/internal/datadir"
	"github.com/eventsd/eventsd/internal/testplane"
)

// TestEmbeddedNATSNeedsPassword: eventsd generates the embedded server's password into its data
// directory (mode 0600) and keeps it across restarts; a client without it, or with another, is
// refused, and one with it is accepted.
func TestEmbeddedNATSNeedsPassword(t *testing.T) {
	dir := t.TempDir()
	var password string
	for restart := range 2 {
		d, err := start(context.Background(), testConfig(dir), io.Discard, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(filepath.Join(dir, "nats-password"))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("start %d: password file %v, %v; want mode 0600", restart, fi, err)
		}
		got, err := datadir.Read(dir, datadir.NATSPasswordFile)
		if err != nil {
			t.Fatal(err)
		}
		if restart == 0 {
			password = got
		} else if got != password {
			t.Fatalf("after a restart the password is %q, want the first one, %q", got, password)
		}
		if strings.Contains(d.natsURL, password) {
			t.Fatalf("eventsd's NATS URL %q holds the password: it is printed", d.natsURL)
		}
		for _, tc := range []struct {
			name string
			opts []nats.Option
			ok   bool
		}{
			{"no credentials", nil, false},
			{"wrong password", []nats.Option{nats.UserInfo("eventsd", password[1:])}, false},
			{"password file's", []nats.Option{nats.UserInfo("eventsd", password)}, true},
		} {
			nc, err := nats.Connect(d.natsURL, append(tc.opts, nats.MaxReconnects(0))...)
			switch {
			case tc.ok && err != nil:
				t.Errorf("start %d, %s: %v, want accepted", restart, tc.name, err)
			case !tc.ok && !errors.Is(err, nats.ErrAuthorization):
				t.Errorf("start %d, %s: %v, want %v", restart, tc.name, err, nats.ErrAuthorization)
			}
			if nc != nil {
				nc.Close()
			}
		}
		if err := d.shutdown(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestEmbeddedNATSBeyondLoopbackWarns: listening beyond loopback is allowed, with a warning that
// the password travels in clear text.
func TestEmbeddedNATSBeyondLoopbackWarns(t *testing.T) {
	for _, tc := range []struct {
		listen string
		warn   bool
	}{
		{"127.0.0.1:0", false},
		{"0.0.0.0:0", true},
	} {
		var logs testplane.SyncBuffer
		c := testConfig(t.TempDir())
		c.natsListen, c.logLevel = tc.listen, "warn"
		d, err := start(context.Background(), c, io.Discard, &logs)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.shutdown(); err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(logs.String(), "clear text"); got != tc.warn {
			t.Errorf("--nats-listen %s: warned %v, want %v; logs:\n%s", tc.listen, got, tc.warn, logs.String())
		}
	}
}
