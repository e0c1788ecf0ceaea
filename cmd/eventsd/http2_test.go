package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsd/eventsd/auth"
	"github.com/eventsd/eventsd/client"
	"github.com/eventsd/eventsd/internal/testplane"
	"github.com/eventsd/eventsd/routing"
)

// h2Mode is one way eventsd serves HTTP/2: over TLS, negotiated by ALPN, or in clear text
// with --h2c.
type h2Mode struct {
	name string
	// set turns the mode on in c and returns the CA that signs the server's certificate (nil
	// in clear text).
	set func(t *testing.T, c *config) *testplane.CA
}

var (
	tlsMode = h2Mode{"TLS", func(t *testing.T, c *config) *testplane.CA {
		ca := testplane.NewCA(t)
		c.tlsCert, c.tlsKey = ca.Issue(t, "127.0.0.1")
		return ca
	}}
	h2cMode = h2Mode{"h2c", func(_ *testing.T, c *config) *testplane.CA {
		c.h2c = true
		return nil
	}}
)

// forH2Modes runs test as a subtest in each mode.
func forH2Modes(t *testing.T, test func(t *testing.T, m h2Mode)) {
	for _, m := range []h2Mode{tlsMode, h2cMode} {
		t.Run(m.name, func(t *testing.T) { test(t, m) })
	}
}

// h2Plane is an eventsd started in one mode, and a token of alice's.
type h2Plane struct {
	d        *daemon
	ca       *testplane.CA // nil in clear text
	tok      string
	stderr   *testplane.SyncBuffer // the daemon's log, at level info
	shutdown func() error          // the daemon's, once; the test's end calls it too
	js       jetstream.JetStream   // a NATS client of the daemon's server, once consumers asks
}

// startH2 starts eventsd in mode m until the test ends, with edit's changes (if any) to the
// test configuration.
func startH2(t *testing.T, m h2Mode, edit func(*config)) *h2Plane {
	t.Helper()
	c := testConfig(t.TempDir())
	c.logLevel = "info"
	p := &h2Plane{ca: m.set(t, &c), stderr: &testplane.SyncBuffer{}}
	if edit != nil {
		edit(&c)
	}
	d, err := start(context.Background(), c, io.Discard, p.stderr)
	if err != nil {
		t.Fatal(err)
	}
	p.d, p.shutdown = d, sync.OnceValue(d.shutdown)
	t.Cleanup(func() { _ = p.shutdown() })
	secret, err := auth.LoadSecret(c.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if p.tok, err = auth.Mint(secret, "alice", nil, time.Hour); err != nil {
		t.Fatal(err)
	}
	return p
}

// client returns a client of the plane on connections of its own, speaking HTTP/2 only (HTTP/1.1
// only if http1), with h2's settings (nil: the defaults).
func (p *h2Plane) client(t *testing.T, http1 bool, h2 *http.HTTP2Config) *http.Client {
	t.Helper()
	var protocols http.Protocols
	switch {
	case http1:
		protocols.SetHTTP1(true)
	case p.ca != nil:
		protocols.SetHTTP2(true)
	default:
		protocols.SetUnencryptedHTTP2(true)
	}
	tr := &http.Transport{Protocols: &protocols, HTTP2: h2, ForceAttemptHTTP2: true}
	if p.ca != nil {
		tr.TLSClientConfig = &tls.Config{RootCAs: p.ca.Pool}
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// request opens alice's stream of channel over c, after lastID if given, until ctx is done or
// the test ends.
func (p *h2Plane) request(t *testing.T, ctx context.Context, c *http.Client, channel routing.Channel, lastID string) *http.Response {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.d.httpURL+"/api/v1/stream/"+string(channel), nil)
	req.Header.Set("Authorization", "Bearer "+p.tok)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if err := client.CheckResponse(resp); err != nil {
		resp.Body.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// readFrames reads body's frames, heartbeats included, onto the channel it returns, which is
// closed when the body ends.
func readFrames(t *testing.T, body io.Reader) <-chan client.Frame {
	frames, done := make(chan client.Frame), make(chan struct{})
	t.Cleanup(func() { close(done) })
	go func() {
		defer close(frames)
		r := client.NewReader(body, 1<<20)
		for {
			f, err := r.Next()
			if err != nil {
				return
			}
			select {
			case frames <- f:
			case <-done:
				return
			}
		}
	}()
	return frames
}

// anyFrame returns the next frame, heartbeats included, or the zero Frame once the stream has
// ended. It fails the test rather than wait forever.
func anyFrame(t *testing.T, frames <-chan client.Frame) client.Frame {
	t.Helper()
	select {
	case f := <-frames:
		return f
	case <-time.After(30 * time.Second):
		t.Fatal("no frame, and no end of the stream, in 30 s")
		return client.Frame{}
	}
}

// nextFrame is anyFrame, heartbeats left out.
func nextFrame(t *testing.T, frames <-chan client.Frame) client.Frame {
	t.Helper()
	for {
		if f := anyFrame(t, frames); f.Event != "heartbeat" {
			return f
		}
	}
}

// publish posts a STEP_STARTED event for alice over c for each step name, in order.
func (p *h2Plane) publish(t *testing.T, c *http.Client, steps ...string) {
	t.Helper()
	for _, step := range steps {
		body, _ := json.Marshal(map[string]string{"type": "STEP_STARTED", "stepName": step})
		req, _ := http.NewRequest(http.MethodPost, p.d.httpURL+"/api/v1/events/agui", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+p.tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		err = client.CheckResponse(resp)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("publish step %.20q: %v", step, err)
		}
	}
}

// stepOf returns the step name of a STEP_STARTED frame.
func stepOf(t *testing.T, f client.Frame) string {
	t.Helper()
	var ev struct{ StepName string }
	if err := json.Unmarshal([]byte(f.Data), &ev); err != nil {
		t.Fatalf("frame %+v: %v, want a STEP_STARTED event", f, err)
	}
	return ev.StepName
}

// streams returns how many streams alice has open, as /api/v1/connections says over c.
func (p *h2Plane) streams(t *testing.T, c *http.Client) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, p.d.httpURL+"/api/v1/connections", nil)
	req.Header.Set("Authorization", "Bearer "+p.tok)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var answer struct{ Count int }
	if err := client.CheckResponse(resp); err != nil {
		t.Fatal(err)
	}
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		t.Fatal(err)
	}
	return answer.Count
}

// consumers returns how many consumers the AGUI stream has on NATS for connections and shared
// feeds.
func (p *h2Plane) consumers(t *testing.T) int {
	t.Helper()
	if p.js == nil {
		_, p.js = testplane.Client(t, p.d.nats.AuthURL())
	}
	return testplane.ConnectionConsumers(t, p.js, routing.StreamAGUI)
}

// eventually polls cond until it holds, failing the test if it still does not after 30 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still not so after 30 s: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestHTTP2Stream follows streams over HTTP/2, with TLS and with --h2c: frames come in the
// order their events were published, a stream resumed with Last-Event-ID gets only what came
// after that id, an idle stream gets heartbeats, and no response has a Connection header
// (HTTP/2 forbids it).
func TestHTTP2Stream(t *testing.T) {
	forH2Modes(t, func(t *testing.T, m h2Mode) {
		p := startH2(t, m, func(c *config) { c.heartbeat = 50 * time.Millisecond })
		c := p.client(t, false, nil)
		resp := p.request(t, context.Background(), c, routing.AGUI, "")
		if resp.ProtoMajor != 2 {
			t.Fatalf("stream served over %s, want HTTP/2", resp.Proto)
		}
		if v, ok := resp.Header["Connection"]; ok {
			t.Fatalf("stream response has Connection: %q, want none over HTTP/2", v)
		}
		frames := readFrames(t, resp.Body)
		p.publish(t, c, "s0", "s1", "s2", "s3")
		var ids []string
		for i := range 4 {
			f := nextFrame(t, frames)
			if got, want := stepOf(t, f), fmt.Sprintf("s%d", i); got != want {
				t.Fatalf("frame %d is step %q, want %q", i, got, want)
			}
			ids = append(ids, f.ID)
		}

		resumed := readFrames(t, p.request(t, context.Background(), c, routing.AGUI, ids[1]).Body)
		p.publish(t, c, "s4")
		for _, want := range []string{"s2", "s3", "s4"} {
			if got := stepOf(t, nextFrame(t, resumed)); got != want {
				t.Fatalf("resumed after s1: step %q, want %q", got, want)
			}
		}
		if got := stepOf(t, nextFrame(t, frames)); got != "s4" {
			t.Fatalf("first stream after s3: step %q, want s4", got)
		}

		// The agui heartbeat is a comment, which a Reader skips; the a2a one is a frame.
		idle := readFrames(t, p.request(t, context.Background(), c, routing.A2A, "").Body)
		if f := anyFrame(t, idle); f.Event != "heartbeat" {
			t.Fatalf("idle a2a stream gave %+v, want a heartbeat", f)
		}
	})
}

// TestHTTP1BesideHTTP2: HTTP/1.1 clients are served on the same address in both modes (with
// TLS, those that offer only http/1.1 by ALPN), their streams on connections taken over from
// net/http, which close with the stream; with --h2c, a request to upgrade to h2c is answered
// over HTTP/1.1.
func TestHTTP1BesideHTTP2(t *testing.T) {
	forH2Modes(t, func(t *testing.T, m h2Mode) {
		p := startH2(t, m, nil)
		c := p.client(t, true, nil)
		resp := p.request(t, context.Background(), c, routing.AGUI, "")
		if resp.ProtoMajor != 1 || !resp.Close { // net/http takes "Connection: close" into resp.Close
			t.Fatalf("stream over %s, closing its connection: %v; want HTTP/1.1, closing", resp.Proto, resp.Close)
		}
		frames := readFrames(t, resp.Body)
		p.publish(t, c, "one")
		if got := stepOf(t, nextFrame(t, frames)); got != "one" {
			t.Fatalf("step %q, want one", got)
		}
		if p.ca == nil { // --h2c
			// net/http does not switch to HTTP/2 on an HTTP/1.1 request asking to upgrade to
			// h2c (RFC 9113 deprecates it); such a request is answered over HTTP/1.1.
			req, _ := http.NewRequest(http.MethodGet, p.d.httpURL+"/healthz", nil)
			req.Header.Set("Connection", "Upgrade, HTTP2-Settings")
			req.Header.Set("Upgrade", "h2c")
			req.Header.Set("HTTP2-Settings", "AAMAAABkAAQCAAAAAAIAAAAA")
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 1 {
				t.Fatalf("request to upgrade to h2c: %s over %s, want 200 OK over HTTP/1.1", resp.Status, resp.Proto)
			}
		}
	})
}

// TestHTTP2DisconnectCleanup: when an HTTP/2 client cancels its stream, the stream's consumer
// goes from NATS and the stream from the connection count.
func TestHTTP2DisconnectCleanup(t *testing.T) {
	forH2Modes(t, func(t *testing.T, m h2Mode) {
		p := startH2(t, m, func(c *config) { c.delivery = "consumer" })
		c := p.client(t, false, nil)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		p.request(t, ctx, c, routing.AGUI, "")
		eventually(t, "the stream's consumer is on NATS", func() bool { return p.consumers(t) == 1 })
		if n := p.streams(t, c); n != 1 {
			t.Fatalf("%d streams counted with one open, want 1", n)
		}
		cancel()
		eventually(t, "no consumer is left after the client cancelled", func() bool { return p.consumers(t) == 0 })
		eventually(t, "no stream is counted after the client cancelled", func() bool { return p.streams(t, c) == 0 })
	})
}

// TestHTTP2Shutdown: shutting eventsd down ends an open HTTP/2 stream, which its client sees
// end, and the shutdown returns; the stream is counted as ended by the shutdown, not by its
// client.
func TestHTTP2Shutdown(t *testing.T) {
	forH2Modes(t, func(t *testing.T, m h2Mode) {
		p := startH2(t, m, nil)
		c := p.client(t, false, nil)
		frames := readFrames(t, p.request(t, context.Background(), c, routing.AGUI, "").Body)
		p.publish(t, c, "before")
		if got := stepOf(t, nextFrame(t, frames)); got != "before" {
			t.Fatalf("step %q, want before", got)
		}
		shut := make(chan error, 1)
		go func() { shut <- p.shutdown() }()
		if f := nextFrame(t, frames); f != (client.Frame{}) {
			t.Fatalf("after shutdown the stream gave %+v, want its end", f)
		}
		shutDown(t, shut)
		if log := p.stderr.String(); !strings.Contains(log, "reason=shutdown") {
			t.Fatalf("log %q, want the stream closed for the shutdown", log)
		}
	})
}

// TestHTTP2SlowClientCut: a client that stops reading its HTTP/2 stream lets its stream's flow
// control window fill; eventsd's next write then waits past --write-timeout, and the stream is
// cut off, on the server and for the client.
func TestHTTP2SlowClientCut(t *testing.T) {
	forH2Modes(t, func(t *testing.T, m h2Mode) {
		p := startH2(t, m, func(c *config) { c.writeTimeout = 200 * time.Millisecond })
		const window, eventSize = 64 << 10, 16 << 10
		slow := p.client(t, false, &http.HTTP2Config{MaxReceiveBufferPerStream: window})
		resp := p.request(t, context.Background(), slow, routing.AGUI, "") // never read until cut
		c := p.client(t, false, nil)
		if n := p.streams(t, c); n != 1 {
			t.Fatalf("%d streams counted with one open, want 1", n)
		}
		var steps []string
		for i := range 4 * window / eventSize {
			steps = append(steps, fmt.Sprintf("%d %s", i, strings.Repeat("x", eventSize)))
		}
		p.publish(t, c, steps...)
		eventually(t, "the stream that stopped reading is cut off", func() bool { return p.streams(t, c) == 0 })
		if log := p.stderr.String(); !strings.Contains(log, "reason=write") {
			t.Fatalf("log %q, want the stream closed for its write (a slow client), not for its client leaving", log)
		}
		// The client, which has not left, reads what came through, then the stream's reset.
		if _, err := io.Copy(io.Discard, resp.Body); err == nil {
			t.Fatal("the stream cut off ended as if complete, want it reset")
		}
	})
}

// TestHTTP2ClientStopsReading: a client that stops reading its connection altogether (not one
// stream's window: the socket) lets the connection's buffers fill, where a stream's write
// deadline cannot reset the stream; the connection is closed once it takes no byte for
// --write-timeout, its streams with it, and a shutdown does not wait for them.
func TestHTTP2ClientStopsReading(t *testing.T) {
	forH2Modes(t, func(t *testing.T, m h2Mode) {
		p := startH2(t, m, func(c *config) { c.writeTimeout, c.ingressRate = 200*time.Millisecond, 0 })
		stall := make(chan struct{})
		// Windows far larger than the socket buffers: flow control never stops eventsd.
		const window = 256 << 20
		slow := p.client(t, false, &http.HTTP2Config{MaxReceiveBufferPerStream: window, MaxReceiveBufferPerConnection: window})
		slow.Transport.(*http.Transport).DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &stallConn{Conn: c, stall: stall, closed: make(chan struct{})}, nil
		}
		p.request(t, context.Background(), slow, routing.AGUI, "")
		close(stall)
		c := p.client(t, false, nil)
		big := strings.Repeat("x", 64<<10)
		steps := make([]string, 300) // 19 MiB, more than loopback's socket buffers hold
		for i := range steps {
			steps[i] = fmt.Sprintf("%d %s", i, big)
		}
		p.publish(t, c, steps...)
		eventually(t, "the stream of a client that reads nothing is cut off", func() bool { return p.streams(t, c) == 0 })
		shut := make(chan error, 1)
		go func() { shut <- p.shutdown() }()
		shutDown(t, shut)
	})
}

// stallConn is a client's connection that stops reading once stall is closed, as a client
// whose process hangs would; it reads again only to learn that it was closed.
type stallConn struct {
	net.Conn
	stall  chan struct{}
	closed chan struct{}
	once   sync.Once
}

func (c *stallConn) Read(b []byte) (int, error) {
	select {
	case <-c.stall:
		<-c.closed
		return 0, net.ErrClosed
	default:
		return c.Conn.Read(b)
	}
}

func (c *stallConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// shutDown waits for a shutdown's result on shut, and fails the test unless it returns nil
// within 30 s.
func shutDown(t *testing.T, shut <-chan error) {
	t.Helper()
	select {
	case err := <-shut:
		if err != nil {
			t.Fatalf("shutdown: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("shutdown has not returned after 30 s")
	}
}

// TestHTTP2StreamLimit: streams over one HTTP/2 connection count against the per-user limit as
// streams over HTTP/1.1 do: past it, 429 with Retry-After, and the streams already open go on.
func TestHTTP2StreamLimit(t *testing.T) {
	forH2Modes(t, func(t *testing.T, m h2Mode) {
		p := startH2(t, m, func(c *config) { c.maxConnsPerUser = 2 })
		c := p.client(t, false, nil)
		first := readFrames(t, p.request(t, context.Background(), c, routing.AGUI, "").Body)
		p.request(t, context.Background(), c, routing.A2A, "")
		req, _ := http.NewRequest(http.MethodGet, p.d.httpURL+"/api/v1/stream/contexts", nil)
		req.Header.Set("Authorization", "Bearer "+p.tok)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || resp.ProtoMajor != 2 {
			t.Fatalf("third stream over HTTP/2: %s %d, Retry-After %q; want HTTP/2 429 with Retry-After",
				resp.Proto, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
		p.publish(t, c, "after the refusal")
		if got := stepOf(t, nextFrame(t, first)); got != "after the refusal" {
			t.Fatalf("step %q on the first stream, want the one published after the refusal", got)
		}
	})
}
