package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eventsd/eventsd/auth"
	"github.com/eventsd/eventsd/internal/testplane"
	"github.com/eventsd/eventsd/routing"
	"github.com/eventsd/eventsd/sse"
)

// ctl runs eventsctl with args and returns its standard output.
func ctl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := newApp(&out, &errOut).RunContext(context.Background(), append([]string{"eventsctl"}, args...))
	return out.String(), err
}

func TestToken(t *testing.T) {
	dir := t.TempDir()
	secret, err := auth.LoadOrCreateSecret(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, auth.SecretFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file: %v, %v; want mode 0600", fi, err)
	}
	out, err := ctl(t, "token", "--user", "alice", "--role", "service", "--ttl", "1m", "--data-dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	id, err := auth.NewVerifier(secret).Verify(strings.TrimSpace(out))
	if err != nil || id.User != "alice" || !id.Has(auth.RoleService) {
		t.Fatalf("token verifies as %+v, %v; want alice with the service role", id, err)
	}
	if _, err := ctl(t, "token", "--user", "alice", "--data-dir", t.TempDir()); err == nil || !strings.Contains(err.Error(), "--secret") {
		t.Fatalf("token without a secret: %v, want advice to pass --secret", err)
	}
	if _, err := ctl(t, "token", "--user", "alice", "--secret", "s", "--role", "root"); err == nil {
		t.Fatal("token --role root: want an error")
	}
}

func TestSubject(t *testing.T) {
	out, err := ctl(t, "subject", "--channel", "agui", "--user", "alice@example.com", "--type", "RUN_STARTED")
	if err != nil || out != "agui.~YWxpY2VAZXhhbXBsZS5jb20.RUN_STARTED\n" {
		t.Fatalf("subject = %q, %v", out, err)
	}
	if _, err := ctl(t, "subject", "--channel", "contexts", "--user", "a", "--type", "X"); err == nil {
		t.Fatal("subject on contexts: want an error")
	}
}

func TestPublishAndTail(t *testing.T) {
	p := testplane.Start(t, sse.Config{})
	tok := testplane.Token(t, "alice")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	tailDone := make(chan error, 1)
	go func() {
		tailDone <- newApp(pw, io.Discard).RunContext(ctx, []string{"eventsctl", "tail", "--server", p.URL, "--token", tok, "--channel", "contexts", "--json"})
		pw.Close()
	}()
	lines := bufio.NewScanner(pr)
	// The tail is live once alice has a connection.

	if !lines.Scan() || !strings.Contains(lines.Text(), `"type":"CONTEXTS_SNAPSHOT"`) {
		t.Fatalf("tail printed %q first, want the contexts snapshot", lines.Text())
	}
	out, err := ctl(t, "publish", "--nats-url", p.NATSURL, "--channel", "system", "--user", "alice", "--type", "CONTEXT_CREATED", "--data", `{"contextId":"c1","name":"n"}`)
	if err != nil || out != "1\n" {
		t.Fatalf("publish over NATS = %q, %v; want sequence 1", out, err)
	}
	if !lines.Scan() || !strings.HasPrefix(lines.Text(), `{"protocol":"system","event":{"type":"CONTEXT_CREATED","timestamp":"`) {
		t.Fatalf("tail printed %q", lines.Text())
	}
	out, err = ctl(t, "publish", "--server", p.URL, "--token", tok, "--channel", "agui", "--user", "alice", "--type", "RUN_STARTED", "--data", `{"threadId":"t","runId":"r"}`)
	if err != nil || out != "1\n" {
		t.Fatalf("publish over HTTP = %q, %v; want sequence 1 of AGUI", out, err)
	}
	if !lines.Scan() || !strings.Contains(lines.Text(), `"threadId":"t","runId":"r"}}`) {
		t.Fatalf("tail printed %q", lines.Text())
	}
	cancel()
	if err := <-tailDone; err != nil {
		t.Fatalf("tail ended with %v", err)
	}

	for _, bad := range [][]string{
		{"publish", "--nats-url", p.NATSURL, "--channel", "agui", "--user", "alice", "--type", "X", "--data", "{"},
		{"publish", "--nats-url", p.NATSURL, "--channel", "agui", "--user", "alice", "--type", "X", "--data", `{"type":"Y"}`},
		{"publish", "--server", p.URL, "--token", "bad", "--channel", "agui", "--user", "alice", "--type", "X"},
		{"publish", "--server", p.URL, "--token", tok, "--channel", "agui", "--user", "bob", "--type", "X"},
		{"tail", "--server", p.URL, "--token", tok, "--channel", "agui", "--last-event-id", "nope"},
	} {
		if out, err := ctl(t, bad...); err == nil {
			t.Errorf("eventsctl %v = %q, want an error", bad, out)
		}
	}
	if n := p.Msgs(t, routing.StreamAGUI); n != 1 {
		t.Errorf("AGUI holds %d events after the bad publishes, want 1", n)
	}
}
