package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/eventsd/eventsd/auth"
	"github.com/eventsd/eventsd/client"
	"github.com/eventsd/eventsd/internal/testplane"
	"github.com/eventsd/eventsd/routing"
	"github.com/eventsd/eventsd/sse"
)

// ctl runs eventsctl with args and returns its standard output.
func ctl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := newApp(strings.NewReader(""), &out, &errOut).RunContext(context.Background(), append([]string{"eventsctl"}, args...))
	return out.String(), err
}

// ctlIn runs eventsctl with standard input and returns standard output and error.
func ctlIn(t *testing.T, in string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := newApp(strings.NewReader(in), &out, &errOut).RunContext(context.Background(), append([]string{"eventsctl"}, args...))
	return out.String(), errOut.String(), err
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
		tailDone <- newApp(strings.NewReader(""), pw, io.Discard).RunContext(ctx, []string{"eventsctl", "tail", "--server", p.URL, "--token", tok, "--channel", "contexts", "--json"})
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
		{"tail", "--server", p.URL, "--token", tok, "--channel", "agui", "--since", "-1h"},
	} {
		if out, err := ctl(t, bad...); err == nil {
			t.Errorf("eventsctl %v = %q, want an error", bad, out)
		}
	}
	if n := p.Msgs(t, routing.StreamAGUI); n != 1 {
		t.Errorf("AGUI holds %d events after the bad publishes, want 1", n)
	}
	for args, want := range map[string]string{
		"--token bad":          "eventsd answered 401 Unauthorized: ",
		"--last-event-id nope": "eventsd answered 400 Bad Request: ",
	} {
		_, err := ctl(t, append([]string{"tail", "--server", p.URL, "--token", tok, "--channel", "agui"}, strings.Fields(args)...)...)
		if err == nil || !strings.HasPrefix(err.Error(), want) || strings.Contains(args, "token") != strings.HasSuffix(err.Error(), "(mint a token with 'eventsctl token --user <id>')") {
			t.Errorf("eventsctl tail %s: %v, want %q..., with the token hint only for a 401", args, err, want)
		}
	}
}

func TestPublishBulk(t *testing.T) {
	p := testplane.Start(t, sse.Config{})
	lines := `{"type":"STEP_STARTED","stepName":"a"}

{"type":"STEP_FINISHED","stepName":"a"}
{"type":"STEP_STARTED"}
{"type":"STEP_STARTED","stepName":"never"}
`
	out, _, err := ctlIn(t, lines, "publish", "--nats-url", p.NATSURL, "--channel", "agui", "--user", "alice", "--data", "-")
	if err == nil || !strings.Contains(err.Error(), "line 4") || !strings.Contains(err.Error(), "stepName") || out != "1\n2\n" {
		t.Fatalf("bulk publish = %q, %v; want sequences 1 and 2, then an error on line 4 naming stepName", out, err)
	}
	if n := p.Msgs(t, routing.StreamAGUI); n != 2 {
		t.Fatalf("AGUI holds %d events, want 2", n)
	}
}

// TestTailReconnects drops the tail's connection on the server side and checks that it comes
// back with its last id, says so, and misses nothing.
func TestTailReconnects(t *testing.T) {
	p := testplane.Start(t, sse.Config{})
	tok := testplane.Token(t, "alice")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	var stderr testplane.SyncBuffer
	done := make(chan error, 1)
	go func() {
		done <- newApp(strings.NewReader(""), pw, &stderr).RunContext(ctx, []string{"eventsctl", "tail", "--server", p.URL, "--token", tok, "--channel", "a2a", "--json"})
		pw.Close()
	}()
	lines := bufio.NewScanner(pr)
	publish := func(i int) {
		t.Helper()
		if _, err := p.JS.Publish(ctx, "a2a.alice.AGENT_MESSAGE", []byte(fmt.Sprintf(`{"i":%d}`, i))); err != nil {
			t.Fatal(err)
		}
	}
	for p.Consumers(t, routing.StreamA2A) == 0 {
		time.Sleep(5 * time.Millisecond) // polling for the tail's consumer: an awaited event
	}
	publish(0)
	if !lines.Scan() || lines.Text() != `{"i":0}` {
		t.Fatalf("tail printed %q", lines.Text())
	}
	p.DropConnections()
	publish(1) // stored while the tail is away
	for i, want := range []string{`{"i":1}`, `{"i":2}`} {
		if i == 1 {
			publish(2)
		}
		if !lines.Scan() || lines.Text() != want {
			t.Fatalf("after the drop tail printed %q, want %s", lines.Text(), want)
		}
	}
	if !strings.Contains(stderr.String(), "reconnecting") || !strings.Contains(stderr.String(), "Last-Event-ID 1-") {
		t.Fatalf("stderr %q, want a reconnect notice with the last id", stderr.String())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestStreamsAndConnections(t *testing.T) {
	p := testplane.Start(t, sse.Config{})
	out, err := ctl(t, "streams", "--nats-url", p.NATSURL)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"STREAM", "AGUI", "agui.*.*", "A2A", "CONTEXT", "context.system.*.*", "ANALYTICS", "24h0m0s"} {
		if !strings.Contains(out, want) {
			t.Errorf("streams output lacks %q:\n%s", want, out)
		}
	}
	c := openStream(t, p.URL, testplane.Token(t, "alice"))
	defer c.Close()
	admin := testplane.Token(t, "root", "admin")

	// The server and token come from a config file here.
	cfg := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(cfg, []byte("# eventsctl defaults\nserver = "+p.URL+"\ntoken = \""+admin+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"EVENTSCTL_SERVER", "EVENTSCTL_TOKEN"} {
		t.Setenv(k, "") // restored when the test ends: the config file sets them for the process
		os.Unsetenv(k)
	}
	out, err = ctl(t, "--config", cfg, "connections")
	if err != nil || !strings.Contains(out, "alice") || !strings.Contains(out, "total") {
		t.Fatalf("connections = %q, %v", out, err)
	}
	out, err = ctl(t, "connections", "--server", p.URL, "--token", testplane.Token(t, "alice"))
	if err != nil || out != "alice\t1\n" {
		t.Fatalf("connections as alice = %q, %v", out, err)
	}
	if _, err := ctl(t, "--config", filepath.Join(t.TempDir(), "missing"), "connections"); err == nil {
		t.Fatal("a missing --config file: want an error")
	}
	if out, err := ctl(t, "completion", "bash"); err != nil || !strings.Contains(out, "complete -o bashdefault") {
		t.Fatalf("completion = %q, %v", out, err)
	}
}

// openStream opens an SSE stream and returns its body once the headers are in.
func openStream(t *testing.T, server, tok string) io.ReadCloser {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, server+"/api/v1/stream/agui", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("open stream: %v %v", resp, err)
	}
	return resp.Body
}

func TestHumanLine(t *testing.T) {
	for _, tt := range []struct {
		f    client.Frame
		want string
	}{
		{client.Frame{Data: `{"type":"RUN_STARTED","timestamp":1776680130123,"threadId":"t"}`}, `RUN_STARTED                   {"threadId":"t"}`},
		{client.Frame{Data: `{"protocol":"a2a","event":{"type":"AGENT_MESSAGE","timestamp":"2026-04-20T10:15:30Z","content":"hi"}}`}, `a2a AGENT_MESSAGE             {"content":"hi"}`},
	} {
		got := humanLine(tt.f, false)
		if _, rest, _ := strings.Cut(got, "  "); rest != tt.want {
			t.Errorf("humanLine(%s) = %q, want time then %q", tt.f.Data, got, tt.want)
		}
	}
}

func TestBench(t *testing.T) {
	p := testplane.Start(t, sse.Config{})
	base := []string{"bench", "--server", p.URL, "--nats-url", p.NATSURL, "--secret", string(testplane.Secret), "--conns", "2", "--events", "20"}
	out, err := ctl(t, append(base, "--scenario", "fanout,users,replay", "--via", "http", "--json")...)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("bench --json printed %q, want one line per scenario", out)
	}
	for _, line := range lines {
		var r struct {
			Scenario  string `json:"scenario"`
			Delivered int    `json:"delivered"`
			Lost      int    `json:"lost"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil || r.Delivered == 0 || r.Lost != 0 {
			t.Fatalf("bench line %q: %+v, %v", line, r, err)
		}
	}
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"--via", "carrier-pigeon"}, `--via "carrier-pigeon": want nats or http`},
		{[]string{"--scenario", "fanout,everything"}, `--scenario: unknown scenario "everything"`},
		{[]string{"--conns", "-5"}, "--conns -5: want 1 or more"},
		{[]string{"--events", "0"}, "--events 0: want 1 or more"},
		{[]string{"--window", "0"}, "--window 0: want 1 or more"},
		{[]string{"--rate", "-1"}, "--rate -1: want 0 or more"},
		{[]string{"--timeout", "0s"}, "--timeout 0s: want a positive duration"},
		{[]string{"--h2-conns", "0"}, "--h2-conns 0: want 1 or more"},
		{[]string{"--http2"}, `--http2 is for the idle scenario: add idle to --scenario "fanout,users,replay,context"`},
		{[]string{"--scenario", "idle", "--http2", "--conns", "1000", "--h2-conns", "3"}, "--conns 1000, --h2-conns 3: 1000 streams over 3 HTTP/2 connections is 334 a connection, more than the 250"},
	} {
		if out, err := ctl(t, append(base, bad.args...)...); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("eventsctl bench %v = %q, %v; want the error %q", bad.args, out, err, bad.want)
		}
	}
}

// TestNATSCredentials: the commands that connect to NATS take the embedded server's password
// from --data-dir, unless --nats-url or --nats-user and --nats-password carry credentials, and
// say what to do when the password file is missing.
func TestNATSCredentials(t *testing.T) {
	p := testplane.Start(t, sse.Config{})
	u, err := url.Parse(p.NATSURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = nil
	bare := u.String()
	dataDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dataDir, "nats-password"), []byte(testplane.NATSPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wrongDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(wrongDir, "nats-password"), []byte("guess\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	publish := []string{"publish", "--channel", "agui", "--user", "alice", "--type", "STEP_STARTED", "--data", `{"stepName":"s"}`}
	bench := []string{"bench", "--server", p.URL, "--secret", string(testplane.Secret), "--scenario", "replay", "--events", "2"}
	for _, tc := range []struct {
		name string
		args []string
		want string // in the error; "" for success
	}{
		{"streams, password from --data-dir", []string{"streams", "--nats-url", bare, "--data-dir", dataDir}, ""},
		{"publish, password from --data-dir", append(publish, "--nats-url", bare, "--data-dir", dataDir), ""},
		{"bench, password from --data-dir", append(bench, "--nats-url", bare, "--data-dir", dataDir), ""},
		{"credentials in --nats-url", []string{"streams", "--nats-url", p.NATSURL, "--data-dir", t.TempDir()}, ""},
		{"--nats-password", []string{"streams", "--nats-url", bare, "--nats-password", testplane.NATSPassword, "--data-dir", t.TempDir()}, ""},
		{"--nats-user and --nats-password", []string{"streams", "--nats-url", bare, "--nats-user", "eventsd", "--nats-password", testplane.NATSPassword}, ""},
		{"streams, no password file", []string{"streams", "--nats-url", bare, "--data-dir", t.TempDir()}, "nats-password"},
		{"publish, no password file", append(publish, "--nats-url", bare, "--data-dir", t.TempDir()), "pass the --data-dir of eventsd"},
		{"bench, no password file", append(bench, "--nats-url", bare, "--data-dir", t.TempDir()), "nats-password"},
		{"wrong password file", []string{"streams", "--nats-url", bare, "--data-dir", wrongDir}, "Authorization Violation"},
		{"wrong --nats-password", []string{"streams", "--nats-url", bare, "--nats-password", "guess"}, "Authorization Violation"},
		{"wrong --nats-user", []string{"streams", "--nats-url", bare, "--nats-user", "admin", "--nats-password", testplane.NATSPassword}, "Authorization Violation"},
		{"--nats-url alone, to a server that asks for credentials", []string{"streams", "--nats-url", bare}, "Authorization Violation"},
		{"a server that takes anyone (connected: it has no streams)", []string{"streams", "--nats-url", openServer(t)}, "stream not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := ctl(t, tc.args...)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("eventsctl %v: %v, want success", tc.args, err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("eventsctl %v = %q, %v; want an error with %q", tc.args, out, err, tc.want)
			}
		})
	}
}

// openServer runs a JetStream server that takes clients without credentials, as an operator's
// own might, and returns its URL.
func openServer(t *testing.T) string {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	return ns.ClientURL()
}

// TestNATSErrorsHidePasswords: a password in --nats-url never shows in what eventsctl prints.
func TestNATSErrorsHidePasswords(t *testing.T) {
	_, err := ctl(t, "streams", "--nats-url", "nats://eventsd:hunter2-secret@127.0.0.1:1")
	if err == nil || strings.Contains(err.Error(), "hunter2-secret") {
		t.Fatalf("eventsctl streams against a closed port: %v, want an error without the password", err)
	}
}

// apiServers serve one handler of the plane's API over HTTPS (HTTP/2 by ALPN) and over h2c.
type apiServers struct {
	https, h2c string               // base URLs
	ca         string               // the file of the CA that signed the HTTPS server's certificate
	seen       testplane.SyncBuffer // the protocol of each request, a line each
}

// serveAPI starts apiServers on p's bus until the test ends.
func serveAPI(t *testing.T, p *testplane.Plane) *apiServers {
	t.Helper()
	h, err := sse.NewHandler(sse.Config{Broker: p.Bus, Verifier: auth.NewVerifier(testplane.Secret)})
	if err != nil {
		t.Fatal(err)
	}
	s := &apiServers{}
	seeing := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(&s.seen, r.Proto)
		h.ServeHTTP(w, r)
	})
	ca := testplane.NewCA(t)
	s.https, s.h2c, s.ca = ca.Serve(t, seeing), testplane.ServeH2C(t, seeing), ca.File(t)
	t.Cleanup(h.Close) // runs first, as in testplane.StartWith
	return s
}

// TestHTTPSAndH2C: with --ca eventsctl publishes, tails and benchmarks over HTTPS, HTTP/2
// negotiated; with --h2c it speaks HTTP/2 without TLS; without the server's CA, or with a
// --ca that holds none, it sends nothing and says why.
func TestHTTPSAndH2C(t *testing.T) {
	p := testplane.Start(t, sse.Config{})
	api := serveAPI(t, p)
	tok := testplane.Token(t, "alice")
	notPEM := filepath.Join(t.TempDir(), "ca.txt")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing.pem")
	config := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(config, []byte("ca = "+api.ca+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("EVENTSCTL_CA", "") // restored when the test ends: the config file sets it for the process
	os.Unsetenv("EVENTSCTL_CA")

	publish := []string{"publish", "--token", tok, "--channel", "agui", "--user", "alice", "--type", "RUN_STARTED", "--data", `{"threadId":"t","runId":"r"}`}
	stored := uint64(0)
	for _, tc := range []struct {
		name   string
		global []string
		server string
		want   string // in the error; "" for success over HTTP/2
	}{
		{"https, --ca", []string{"--ca", api.ca}, api.https, ""},
		{"h2c", []string{"--h2c"}, api.h2c, ""},
		{"https, no --ca", nil, api.https, "certificate signed by unknown authority"},
		{"https, --ca of another CA", []string{"--ca", testplane.NewCA(t).File(t)}, api.https, "certificate signed by unknown authority"},
		{"--ca without a certificate", []string{"--ca", notPEM}, api.https, "--ca: client: no PEM certificate in CA file " + notPEM},
		{"--ca missing", []string{"--ca", missing}, api.https, "--ca: client: CA file: open " + missing},
		{"https, ca from the config file", []string{"--config", config}, api.https, ""}, // last: it sets EVENTSCTL_CA
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := api.seen.String()
			out, err := ctl(t, slices.Concat(tc.global, publish, []string{"--server", tc.server})...)
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) || api.seen.String() != before {
					t.Fatalf("publish = %q, %v; want an error with %q, nothing sent", out, err, tc.want)
				}
				return
			}
			stored++
			if err != nil || out != fmt.Sprintf("%d\n", stored) || api.seen.String() != before+"HTTP/2.0\n" {
				t.Fatalf("publish = %q, %v, over %q; want sequence %d over HTTP/2.0", out, err, strings.TrimPrefix(api.seen.String(), before), stored)
			}
		})
	}
	if n := p.Msgs(t, routing.StreamAGUI); n != stored {
		t.Fatalf("AGUI holds %d events, want %d", n, stored)
	}
	testTailHTTPS(t, api, tok)
	out, err := ctl(t, "--ca", api.ca, "bench", "--server", api.https, "--nats-url", p.NATSURL, "--secret", string(testplane.Secret), "--scenario", "replay", "--events", "5", "--json")
	if err != nil || !strings.Contains(out, `"proto":"HTTP/1.1+TLS","tcp_conns":1`) {
		t.Fatalf("bench replay over HTTPS = %q, %v; want its stream over HTTP/1.1 and TLS", out, err)
	}
}

// testTailHTTPS tails alice's agui stream over HTTPS from an hour ago, and while it is open
// counts her connections over h2c.
func testTailHTTPS(t *testing.T, api *apiServers, tok string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- newApp(strings.NewReader(""), pw, io.Discard).RunContext(ctx, []string{"eventsctl", "--ca", api.ca, "tail", "--server", api.https, "--token", tok, "--channel", "agui", "--since", "1h", "--json"})
		pw.Close()
	}()
	lines := bufio.NewScanner(pr)
	if !lines.Scan() || !strings.Contains(lines.Text(), `"threadId":"t","runId":"r"}`) {
		t.Fatalf("tail over HTTPS printed %q, want the event published", lines.Text())
	}
	if out, err := ctl(t, "--h2c", "connections", "--server", api.h2c, "--token", tok); err != nil || out != "alice\t1\n" {
		t.Errorf("connections over h2c = %q, %v; want alice's tail", out, err)
	}
	cancel()
	go io.Copy(io.Discard, pr) // the events after the first: the tail may be writing one
	if err := <-done; err != nil {
		t.Fatalf("tail ended with %v", err)
	}
}

// TestPublishToThread: --thread and --run attribute agui events to a thread and a run, which
// its thread stream then carries; an event naming another thread is refused, and so are the
// flags on another channel.
func TestPublishToThread(t *testing.T) {
	p := testplane.Start(t, sse.Config{})
	args := []string{"publish", "--nats-url", p.NATSURL, "--channel", "agui", "--user", "alice", "--thread", "t1", "--run", "r1"}
	if out, err := ctl(t, append(args, "--type", "RUN_STARTED")...); err != nil || out != "1\n" {
		t.Fatalf("RUN_STARTED to t1: %q, %v", out, err)
	}
	if out, err := ctl(t, append(args, "--data", `{"type":"STEP_STARTED","stepName":"s","threadId":"t2"}`)...); err == nil || !strings.Contains(err.Error(), "threadId") {
		t.Fatalf("an event of t2 with --thread t1: %q, %v; want it refused", out, err)
	}
	if _, err := ctl(t, "publish", "--nats-url", p.NATSURL, "--channel", "a2a", "--user", "alice", "--thread", "t1", "--type", "TASK_SUBMITTED"); err == nil {
		t.Fatal("--thread on a2a: accepted, want an error")
	}
	var ev struct{ ThreadID, RunID string }
	s, err := p.JS.Stream(t.Context(), "AGUI")
	if err != nil {
		t.Fatal(err)
	}
	msg, err := s.GetLastMsgForSubject(t.Context(), "agui.alice.RUN_STARTED")
	if err != nil || json.Unmarshal(msg.Data, &ev) != nil || ev.ThreadID != "t1" || ev.RunID != "r1" {
		t.Fatalf("stored %v (%v), want threadId t1 and runId r1", msg, err)
	}
}
