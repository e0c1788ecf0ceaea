// Package testplane starts the event plane for tests: a real embedded JetStream server, a Bus
// with its streams, and the HTTP API on a loopback port.
package testplane

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsd/eventsd/auth"
	"github.com/eventsd/eventsd/bus"
	"github.com/eventsd/eventsd/embedded"
	"github.com/eventsd/eventsd/internal/datadir"
	"github.com/eventsd/eventsd/routing"
	"github.com/eventsd/eventsd/sse"
	"github.com/eventsd/eventsd/threads"

	"net/http/httptest"
)

// Secret signs every token of a test plane.
var Secret = []byte("test-secret")

// NATSPassword is the embedded NATS server's password in a test plane, for the user
// datadir.NATSUser, as eventsd's would be in its data directory.
const NATSPassword = "test-nats-password"

// StartNATS runs an embedded JetStream server on store (and port, 0 for a free one) that takes
// the test credentials, until the test ends. Its AuthURL connects with them.
func StartNATS(t testing.TB, store string, port int) *embedded.Server {
	t.Helper()
	srv, err := embedded.Start(embedded.Options{Port: port, StoreDir: store, User: datadir.NATSUser, Password: NATSPassword})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

// Plane is a running event plane plus a plain NATS client, for publishing and inspecting as
// any NATS user would.
type Plane struct {
	conns   *connList
	URL     string // the HTTP API
	NATSURL string // the embedded NATS server, with its credentials
	Bus     *bus.Bus
	NC      *nats.Conn
	JS      jetstream.JetStream
}

// StartBus runs an embedded JetStream server and a Bus with its streams until the test ends,
// and returns the Bus and the server's URL with its credentials. cfg's URL is filled in.
func StartBus(t testing.TB, cfg bus.Config) (*bus.Bus, string) {
	t.Helper()
	srv := StartNATS(t, t.TempDir(), 0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg.URL = srv.AuthURL()
	b, err := bus.Connect(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	if err := b.EnsureStreams(ctx); err != nil {
		t.Fatal(err)
	}
	return b, srv.AuthURL()
}

// Start runs a plane, with the contexts projector, until the test ends. cfg's Broker and
// Verifier are filled in.
func Start(t testing.TB, cfg sse.Config) *Plane {
	t.Helper()
	return StartWith(t, cfg, bus.Config{})
}

// StartWith is Start with bus settings (the delivery mode, for one).
func StartWith(t testing.TB, cfg sse.Config, bc bus.Config) *Plane {
	t.Helper()
	b, natsURL := StartBus(t, bc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.StartContexts(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.StartThreads(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.StartTasks(ctx); err != nil {
		t.Fatal(err)
	}
	cfg.Broker = b
	cfg.Verifier = auth.NewVerifier(Secret)
	h, err := sse.NewHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(h)
	conns := &connList{Listener: ts.Listener}
	ts.Listener = conns
	ts.Start()
	t.Cleanup(ts.Close) // runs before the bus closes: streams end first
	t.Cleanup(h.Close)  // runs first: streams taken over from net/http, which ts.Close does not see
	nc, js := Client(t, natsURL)
	return &Plane{conns: conns, URL: ts.URL, NATSURL: natsURL, Bus: b, NC: nc, JS: js}
}

// Client connects a NATS client of the test's own, as a producer or an operator would, until
// the test ends.
func Client(t testing.TB, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// Token mints a token for user, valid for an hour.
func Token(t testing.TB, user string, roles ...string) string {
	t.Helper()
	tok, err := auth.Mint(Secret, user, roles, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Msgs returns how many events a stream holds.
func (p *Plane) Msgs(t testing.TB, stream string) uint64 {
	t.Helper()
	return p.state(t, stream).Msgs
}

// Consumers returns how many consumers a stream has for connections and shared feeds (see
// ConnectionConsumers).
func (p *Plane) Consumers(t testing.TB, stream string) int {
	t.Helper()
	return ConnectionConsumers(t, p.JS, stream)
}

// ConnectionConsumers returns how many consumers a stream has for connections and shared feeds:
// a view projector's (bus.ViewConsumerPrefix) are not counted.
func ConnectionConsumers(t testing.TB, js jetstream.JetStream, stream string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	names := s.ConsumerNames(ctx)
	for name := range names.Name() {
		if !strings.HasPrefix(name, bus.ViewConsumerPrefix) {
			n++
		}
	}
	if err := names.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

func (p *Plane) state(t testing.TB, stream string) bus.StreamState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := p.Bus.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// SyncBuffer is a bytes.Buffer that one goroutine writes (a logger, a command's stderr) while
// another reads.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write implements io.Writer.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// DropConnections closes every connection the plane's HTTP server has accepted, streams
// included, as a network failure would.
func (p *Plane) DropConnections() {
	p.conns.mu.Lock()
	defer p.conns.mu.Unlock()
	for _, c := range p.conns.accepted {
		c.Close()
	}
	p.conns.accepted = nil
}

// connList is a listener that remembers the connections it accepts.
type connList struct {
	net.Listener
	mu       sync.Mutex
	accepted []net.Conn
}

// Accept implements net.Listener.
func (l *connList) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.accepted = append(l.accepted, c)
		l.mu.Unlock()
	}
	return c, err
}

// Await fails the test unless ch is closed before ctx ends.
func Await(t testing.TB, ctx context.Context, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-ctx.Done():
		t.Fatalf("%s: not within the test's deadline", what)
	}
}

// AwaitThreadView waits until the view of a thread of user has applied the event at seq.
func AwaitThreadView(t testing.TB, js jetstream.JetStream, user, thread string, seq uint64) {
	t.Helper()
	awaitView(t, js, routing.BucketThreads, user, thread, seq)
}

// AwaitTaskView waits until the view of an A2A task of user has applied the event at seq.
func AwaitTaskView(t testing.TB, js jetstream.JetStream, user, task string, seq uint64) {
	t.Helper()
	awaitView(t, js, routing.BucketTasks, user, task, seq)
}

// awaitView waits until the view of id (a thread or a task) of user in bucket has applied the
// event at seq.
func awaitView(t testing.TB, js jetstream.JetStream, bucket, user, id string, seq uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := routing.UserToken(user)
	if err != nil {
		t.Fatal(err)
	}
	w, err := kv.Watch(ctx, threads.Key(tok, id))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	for {
		select {
		case e := <-w.Updates():
			var v struct {
				Seq uint64 `json:"seq"`
			}
			if e != nil && json.Unmarshal(e.Value(), &v) == nil && v.Seq >= seq {
				return
			}
		case <-ctx.Done():
			t.Fatalf("the view of %s in %s never reached %d", id, bucket, seq)
		}
	}
}
