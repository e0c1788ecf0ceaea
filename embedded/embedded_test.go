package embedded_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/eventsd/eventsd/embedded"
)

// TestCredentialsRequired: the server refuses a client without the password or with a wrong
// one, and takes one with it, by AuthURL or by user and password options.
func TestCredentialsRequired(t *testing.T) {
	srv, err := embedded.Start(embedded.Options{StoreDir: t.TempDir(), User: "eventsd", Password: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	if strings.Contains(srv.ClientURL(), "s3cret") {
		t.Fatalf("ClientURL() = %q, want it without the password", srv.ClientURL())
	}
	for _, tc := range []struct {
		name string
		url  string
		opts []nats.Option
		ok   bool
	}{
		{"no credentials", srv.ClientURL(), nil, false},
		{"wrong password", srv.ClientURL(), []nats.Option{nats.UserInfo("eventsd", "guess")}, false},
		{"wrong user", srv.ClientURL(), []nats.Option{nats.UserInfo("admin", "s3cret")}, false},
		{"wrong password in the URL", strings.Replace(srv.AuthURL(), "s3cret", "guess", 1), nil, false},
		{"AuthURL", srv.AuthURL(), nil, true},
		{"user and password", srv.ClientURL(), []nats.Option{nats.UserInfo("eventsd", "s3cret")}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := nats.Connect(tc.url, append(tc.opts, nats.MaxReconnects(0))...)
			if !tc.ok {
				if err == nil {
					nc.Close()
					t.Fatal("connected, want the server to refuse")
				}
				if !errors.Is(err, nats.ErrAuthorization) {
					t.Fatalf("connect error = %v, want %v", err, nats.ErrAuthorization)
				}
				return
			}
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			defer nc.Close()
			// JetStream answers an accepted client.
			if _, err := nc.Request("$JS.API.INFO", nil, nats.DefaultTimeout); err != nil {
				t.Fatalf("JetStream account info: %v", err)
			}
		})
	}
}

// TestStartRefusesNoCredentials: the server never runs open.
func TestStartRefusesNoCredentials(t *testing.T) {
	for _, o := range []embedded.Options{
		{StoreDir: t.TempDir()},
		{StoreDir: t.TempDir(), User: "eventsd"},
		{StoreDir: t.TempDir(), Password: "s3cret"},
	} {
		if srv, err := embedded.Start(o); !errors.Is(err, embedded.ErrNoCredentials) {
			if err == nil {
				srv.Shutdown()
			}
			t.Errorf("Start(user %q, password %q) error = %v, want ErrNoCredentials", o.User, o.Password, err)
		}
	}
}
