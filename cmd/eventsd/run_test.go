package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/eventsd/eventsd/auth"
	"github.com/eventsd/eventsd/client"
	"github.com/eventsd/eventsd/internal/testplane"
	"github.com/eventsd/eventsd/sse"
)

func testConfig(dir string) config {
	return config{
		listen: "127.0.0.1:0", dataDir: dir, natsListen: "0",
		heartbeat: time.Minute, retention: time.Hour, maxBody: sse.DefaultMaxBody,
		writeTimeout: 10 * time.Second, logFormat: "text", logLevel: "error",
		replicas: 1, maxConnsPerUser: 10, maxConns: 1000, ingressRate: 100, inactiveThreshold: 10 * time.Second,
	}
}

// stream opens an SSE stream and returns a function that reads its next data frame.
func stream(t *testing.T, url, tok, lastID string) (next func() client.Frame, body io.ReadCloser) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url+"/api/v1/stream/agui", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("open stream: %v %v", resp, err)
	}
	frames := make(chan client.Frame, 100)
	go func() {
		defer close(frames)
		r := client.NewReader(resp.Body, 1<<20)
		for {
			f, err := r.Next()
			if err != nil {
				return
			}
			frames <- f
		}
	}()
	return func() client.Frame {
		t.Helper()
		select {
		case f, ok := <-frames:
			if !ok {
				return client.Frame{}
			}
			return f
		case <-time.After(30 * time.Second):
			t.Fatal("no frame in 30 s")
			return client.Frame{}
		}
	}, resp.Body
}

func post(t *testing.T, url, tok, body string) {
	t.Helper()
	postOn(t, url, tok, "agui", body)
}

// postOn publishes an event on a channel for the token's user.
func postOn(t *testing.T, url, tok, channel, body string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url+"/api/v1/events/"+channel, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("publish: %v %v", resp, err)
	}
	resp.Body.Close()
}

// restart shuts d down and starts eventsd again on the same data directory.
func restart(t *testing.T, d *daemon, dir string) *daemon {
	t.Helper()
	if err := d.shutdown(); err != nil {
		t.Fatal(err)
	}
	d, err := start(context.Background(), testConfig(dir), io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// startAsAlice starts eventsd on dir and mints a token of alice's with its secret.
func startAsAlice(t *testing.T, dir string) (*daemon, string) {
	t.Helper()
	d, err := start(context.Background(), testConfig(dir), io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := auth.LoadSecret(dir)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := auth.Mint(secret, "alice", nil, time.Hour)
	return d, tok
}

// TestRestartKeepsEvents stores events, restarts eventsd on the same data directory, and resumes
// a client across the restart.
func TestRestartKeepsEvents(t *testing.T) {
	dir := t.TempDir()
	d, tok := startAsAlice(t, dir)
	next, body := stream(t, d.httpURL, tok, "")
	for i := range 3 {
		post(t, d.httpURL, tok, fmt.Sprintf(`{"type":"STEP_STARTED","stepName":"s%d"}`, i))
	}
	next()
	second := next()
	if f := next(); !strings.Contains(f.Data, `"s2"`) {
		t.Fatalf("third frame %+v, want step s2", f)
	}
	assertMetrics(t, d.httpURL, []string{
		`eventsd_sse_connections{channel="agui"} 1`,
		`eventsd_sse_connects_total{channel="agui"} 1`,
		`eventsd_events_published_total{channel="agui",outcome="published"} 3`,
		`eventsd_events_delivered_total{channel="agui"} 3`,
		`eventsd_nats_connected 1`,
		`eventsd_ingress_seconds_count{channel="agui"} 3`,
	})
	if err := d.shutdown(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if f := next(); f != (client.Frame{}) {
		t.Fatalf("after shutdown the stream gave %+v, want its end", f)
	}
	body.Close()

	d, err := start(context.Background(), testConfig(dir), io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer d.shutdown()
	post(t, d.httpURL, tok, `{"type":"STEP_STARTED","stepName":"s3"}`)
	next, body = stream(t, d.httpURL, tok, second.ID)
	defer body.Close()
	for _, want := range []string{"s2", "s3"} {
		if f := next(); !strings.Contains(f.Data, `"stepName":"`+want+`"`) || f.Event != "" {
			t.Fatalf("resumed after restart: %+v, want step %s", f, want)
		}
	}
}

// TestRun starts eventsd as main does, reads the addresses it prints, and stops it.
func TestRun(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"eventsd", "--listen", "127.0.0.1:0", "--nats-listen", "0", "--data-dir", dir, "--log-level", "error"}, pw, io.Discard)
		pw.Close()
	}()
	lines := bufio.NewScanner(pr)
	var printed []string
	for len(printed) < 3 && lines.Scan() {
		printed = append(printed, lines.Text())
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	url := regexp.MustCompile(`http://[0-9.:]+`).FindString(strings.Join(printed, "\n"))
	if url == "" || !strings.Contains(printed[1], "nats://127.0.0.1:") || !strings.Contains(printed[2], "eventsctl token --user alice --data-dir "+dir) {
		t.Fatalf("eventsd printed %q, want the HTTP and NATS addresses and the token command", printed)
	}
	resp, err := http.Get(url + "/readyz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("readyz: %v %v", resp, err)
	}
	resp.Body.Close()
	req, _ := http.NewRequest(http.MethodGet, url+"/healthz", nil)
	req.Header.Set("X-Padding", strings.Repeat("x", 100<<10))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("100 KB of headers: %v %v, want 431", resp, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run returned %v after cancel, want nil", err)
	}

	for _, args := range [][]string{
		{"eventsd", "--log-format", "xml"},
		{"eventsd", "--delivery", "carrier-pigeon", "--nats-listen", "0", "--listen", "127.0.0.1:0", "--data-dir", dir},
		{"eventsd", "--nats-listen", "nope", "--data-dir", dir},
		{"eventsd", "--nats-url", "nats://127.0.0.1:1", "--data-dir", dir},
	} {
		if err := run(context.Background(), args, io.Discard, io.Discard); err == nil {
			t.Errorf("run(%v) = nil, want an error", args)
		}
	}
}

// TestRunRefusesBadSettings: a setting that cannot work is refused with its flag named, before
// anything listens (the data directory stays empty).
func TestRunRefusesBadSettings(t *testing.T) {
	for _, tt := range []struct{ flag, value, want string }{
		{"--heartbeat", "-1s", "--heartbeat -1s: want a positive duration"},
		{"--heartbeat", "0", "--heartbeat 0s: want a positive duration"},
		{"--retention", "-1h", "--retention -1h0m0s: want a positive duration"},
		{"--write-timeout", "0s", "--write-timeout 0s: want a positive duration"},
		{"--nats-grace", "-2s", "--nats-grace -2s: want a positive duration"},
		{"--inactive-threshold", "0s", "--inactive-threshold 0s: want a positive duration"},
		{"--max-body", "0", "--max-body 0: want a positive number of bytes"},
		{"--queue", "-5", "--queue -5: want a positive number of events"},
		{"--replicas", "0", "--replicas 0: want 1 to 5 (JetStream's range)"},
		{"--replicas", "7", "--replicas 7: want 1 to 5 (JetStream's range)"},
		{"--max-conns", "-1", "--max-conns -1: want 0 (no limit) or more"},
		{"--max-conns-per-user", "-1", "--max-conns-per-user -1: want 0 (no limit) or more"},
		{"--ingress-rate", "-3", "--ingress-rate -3: want 0 (no limit) or more"},
		{"--ingress-burst", "100", "--ingress-burst 100: want at least --ingress-rate"},
		{"--max-bytes", "-1", "--max-bytes -1: want 0 (no limit) or a number of bytes"},
		{"--read-timeout", "0s", "--read-timeout 0s: want a positive duration"},
		{"--jwt-secret", "hunter2", "--jwt-secret of 7 bytes: want at least 32 bytes, best given in EVENTSD_JWT_SECRET, or none to use the one generated into the data directory"},
		{"--jwt-secret", strings.Repeat("k", 31), "--jwt-secret of 31 bytes: want at least 32 bytes, best given in EVENTSD_JWT_SECRET, or none to use the one generated into the data directory"},
	} {
		dir := t.TempDir()
		err := run(context.Background(), []string{"eventsd", "--data-dir", dir, "--nats-listen", "0", "--listen", "127.0.0.1:0", tt.flag, tt.value}, io.Discard, io.Discard)
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s %s: %v, want %q", tt.flag, tt.value, err, tt.want)
		}
		if entries, _ := os.ReadDir(dir); len(entries) > 0 {
			t.Errorf("%s %s: the data directory holds %d entries, want none", tt.flag, tt.value, len(entries))
		}
	}
}

// assertMetrics checks that /metrics holds each line.
func assertMetrics(t *testing.T, url string, lines []string) {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, l := range lines {
		if !strings.Contains(string(body), "\n"+l+"\n") {
			t.Errorf("/metrics lacks %q", l)
		}
	}
}

// TestNATSOutage takes NATS away under a running eventsd: open streams end, /readyz and
// ingress answer 503 (Retry-After 1), and all recovers by itself when NATS is back; the client resumes by id.
func TestNATSOutage(t *testing.T) {
	store := t.TempDir()
	ns := testplane.StartNATS(t, store, 0)
	port := ns.Port()
	c := testConfig(t.TempDir())
	c.natsURL = ns.AuthURL()
	d, err := start(context.Background(), c, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer d.shutdown()
	secret, _ := auth.LoadSecret(c.dataDir)
	tok, _ := auth.Mint(secret, "alice", nil, time.Hour)
	var retryAfter string // of the last answer
	status := func(method, path, body string) int {
		req, _ := http.NewRequest(method, d.httpURL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		retryAfter = resp.Header.Get("Retry-After")
		return resp.StatusCode
	}
	waitStatus := func(what, method, path, body string, want int) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for status(method, path, body) != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %s %s never answered %d", what, method, path, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	const ev = `{"type":"STEP_STARTED","stepName":"s"}`

	next, body := stream(t, d.httpURL, tok, "")
	post(t, d.httpURL, tok, ev)
	last := next()
	ns.Shutdown()
	if f := next(); f != (client.Frame{}) {
		t.Fatalf("with NATS gone the stream gave %+v, want its end", f)
	}
	body.Close()
	waitStatus("NATS down", "GET", "/readyz", "", http.StatusServiceUnavailable)
	if got := status("POST", "/api/v1/events/agui", ev); got != http.StatusServiceUnavailable || retryAfter != "1" {
		t.Fatalf("ingress with NATS down: %d, Retry-After %q; want 503, 1", got, retryAfter)
	}
	if got := status("GET", "/api/v1/stream/agui", ""); got != http.StatusServiceUnavailable || retryAfter != "1" {
		t.Fatalf("stream with NATS down: %d, Retry-After %q; want 503, 1", got, retryAfter)
	}

	testplane.StartNATS(t, store, port)
	waitStatus("NATS back", "GET", "/readyz", "", http.StatusOK)
	waitStatus("ingress back", "POST", "/api/v1/events/agui", `{"type":"STEP_STARTED","stepName":"after"}`, http.StatusOK)
	next, body = stream(t, d.httpURL, tok, last.ID)
	defer body.Close()
	if f := next(); !strings.Contains(f.Data, `"after"`) {
		t.Fatalf("resumed after the outage: %+v, want the event published after it", f)
	}
}
