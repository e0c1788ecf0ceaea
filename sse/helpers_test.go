package sse_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/eventsd/eventsd/internal/testplane"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsd/eventsd/bus"
	sseclient "github.com/eventsd/eventsd/client"
	"github.com/eventsd/eventsd/routing"
)

var secret = testplane.Secret

// plane is eventsd's HTTP API on a real embedded JetStream server.
type plane struct {
	*testplane.Plane
	url string
	bus *bus.Bus
	nc  *nats.Conn
	js  jetstream.JetStream
}

func token(t testing.TB, user string, roles ...string) string {
	t.Helper()
	return testplane.Token(t, user, roles...)
}

func ctxFor(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// publishNATS publishes data on subject through JetStream, as a NATS-native producer.
func (p *plane) publishNATS(t testing.TB, subject, data string) uint64 {
	t.Helper()
	ack, err := p.js.Publish(ctxFor(t), subject, []byte(data))
	if err != nil {
		t.Fatalf("publish %s: %v", subject, err)
	}
	return ack.Sequence
}

func (p *plane) msgs(t testing.TB, stream string) uint64 { return p.Msgs(t, stream) }

func (p *plane) consumers(t testing.TB, stream string) int { return p.Consumers(t, stream) }

// client is one open SSE connection; its frames arrive on a channel read by a goroutine.
type client struct {
	resp   *http.Response
	frames chan sseclient.Frame
	cancel context.CancelFunc
	done   chan struct{}
}

// streamPath returns the SSE path of a channel.
func streamPath(c routing.Channel) string {
	if c == routing.Analytics {
		return "/api/v1/analytics/stream"
	}
	return "/api/v1/stream/" + string(c)
}

// get sends an authenticated GET; it returns the response with its body open.
func (p *plane) get(t testing.TB, path, tok string, hdr map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, p.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// open connects to an SSE endpoint and fails the test unless it answers 200.
func (p *plane) open(t testing.TB, path, tok string, hdr map[string]string) *client {
	t.Helper()
	c, err := p.tryOpen(path, tok, hdr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.close)
	return c
}

// tryOpen connects to an SSE endpoint; it is safe to call from any goroutine.
func (p *plane) tryOpen(path, tok string, hdr map[string]string) (*client, error) {
	return openStream(http.DefaultClient, p.url+path, tok, hdr)
}

// openStream connects to the SSE endpoint at url through hc; it is safe to call from any
// goroutine.
func openStream(hc *http.Client, url, tok string, hdr map[string]string) (*client, error) {
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := hc.Do(req)
	if err != nil {
		cancel()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		return nil, fmt.Errorf("GET %s = %d %s", url, resp.StatusCode, body)
	}
	c := &client{resp: resp, frames: make(chan sseclient.Frame, 1024), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		defer close(c.frames)
		r := sseclient.NewReader(bufio.NewReader(resp.Body), 1<<20)
		for {
			f, err := r.Next()
			if err != nil {
				return
			}
			c.frames <- f
		}
	}()
	return c, nil
}

func (c *client) close() {
	c.cancel()
	c.resp.Body.Close()
	<-c.done
}

// next returns the next frame that is not a heartbeat.
func (c *client) next(t testing.TB) sseclient.Frame {
	t.Helper()
	for {
		select {
		case f, ok := <-c.frames:
			if !ok {
				t.Fatal("stream ended")
			}
			if f.Event == "heartbeat" {
				continue
			}
			return f
		case <-time.After(15 * time.Second):
			t.Fatal("no frame within 15s")
		}
	}
}

// post sends a JSON body with a token and returns the status and decoded answer.
func (p *plane) post(t testing.TB, path, tok, contentType, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, p.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var answer map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		t.Fatalf("POST %s: answer is not JSON: %v", path, err)
	}
	return resp.StatusCode, answer
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func decode(t testing.TB, resp *http.Response, v any) {
	t.Helper()
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("decode answer: %v", err)
	}
}
