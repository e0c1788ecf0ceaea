package sse_test

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/eventsd/eventsd/auth"
	"github.com/eventsd/eventsd/internal/testplane"
	"github.com/eventsd/eventsd/routing"
	"github.com/eventsd/eventsd/sse"
)

func TestStreamHeaders(t *testing.T) {
	p := newPlane(t, sse.Config{})
	c := p.open(t, "/api/v1/stream/agui", token(t, "alice"), nil)
	for k, want := range map[string]string{
		"Content-Type":      "text/event-stream",
		"Cache-Control":     "no-cache",
		"X-Accel-Buffering": "no",
	} {
		if got := c.resp.Header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
}

// TestStreamOverHTTP2: where the connection cannot be taken over (HTTP/2), the handler
// goroutine serves the stream: the same headers and frames (the prelude, events, heartbeats),
// and the client leaving ends it, its consumer and its count.
func TestStreamOverHTTP2(t *testing.T) {
	p := newPlane(t, sse.Config{})
	m := &countingMetrics{}
	h, err := sse.NewHandler(sse.Config{Broker: p.bus, Verifier: auth.NewVerifier(testplane.Secret),
		Heartbeat: 300 * time.Millisecond, WriteTimeout: 50 * time.Millisecond, Metrics: m}) // idle for six write timeouts between frames
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(h)
	ts.EnableHTTP2 = true
	ts.StartTLS()
	t.Cleanup(ts.Close)
	t.Cleanup(h.Close)
	tok := token(t, "alice")
	count := func() int {
		req, _ := http.NewRequest(http.MethodGet, ts.URL+"/api/v1/connections", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var c struct{ Count int }
		decode(t, resp, &c)
		return c.Count
	}

	// A cursor of another epoch: the stream opens with the stream_recreated resync frame.
	c, err := openStream(ts.Client(), ts.URL+"/api/v1/stream/a2a?last_event_id=0-0", tok, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.close)
	if c.resp.ProtoMajor != 2 {
		t.Fatalf("stream served over %s, want HTTP/2", c.resp.Proto)
	}
	for k, want := range map[string]string{"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"} {
		if got := c.resp.Header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if f := c.next(t); f.Event != "resync" || !strings.Contains(f.Data, `"reason":"stream_recreated"`) {
		t.Fatalf("first frame %+v, want a stream_recreated resync", f)
	}
	for range 2 { // an HTTP/2 write deadline left armed would reset the idle stream first
		select {
		case f := <-c.frames:
			if f.Event != "heartbeat" || f.Data != `{"type":"heartbeat"}` {
				t.Fatalf("idle stream sent %+v, want a heartbeat", f)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no heartbeat")
		}
	}
	p.publishNATS(t, "a2a.alice.CUSTOM", `{"over":"h2"}`)
	if f := c.next(t); f.Data != `{"over":"h2"}` || f.ID == "" {
		t.Fatalf("frame %+v, want the event", f)
	}
	if n := count(); n != 1 {
		t.Fatalf("connections = %d with the stream open, want 1", n)
	}

	c.close()
	waitFor(t, "the stream to end", func() bool { return m.get("closed a2a client") == 1 })
	if n := count(); n != 0 {
		t.Fatalf("connections = %d after the client left, want 0", n)
	}
	waitFor(t, "its consumer deleted", func() bool { return p.consumers(t, routing.StreamA2A) == hubConsumers() })
}

// TestStreamSurvivesRecreatedStream deletes the AGUI stream under an open stream: once the bus
// has recreated it, the same connection gets the stream_recreated resync frame, naming the last
// event it had, then the new stream's events.
func TestStreamSurvivesRecreatedStream(t *testing.T) {
	m := &countingMetrics{}
	p := newPlane(t, sse.Config{Metrics: m})
	ctx := ctxFor(t)
	c := p.open(t, "/api/v1/stream/agui", token(t, "alice"), nil)
	p.publishNATS(t, "agui.alice.CUSTOM", `{"old":1}`)
	last := c.next(t)
	if last.Data != `{"old":1}` {
		t.Fatalf("frame %+v, want the first event", last)
	}
	if err := p.js.DeleteStream(ctx, routing.StreamAGUI); err != nil {
		t.Fatal(err)
	}
	// A publish finds no stream until the bus has recreated it; the message id keeps a retry
	// whose answer was lost from storing the event twice.
	waitFor(t, "the stream recreated", func() bool {
		_, err := p.js.Publish(ctx, "agui.alice.CUSTOM", []byte(`{"new":1}`), jetstream.WithMsgID("new-1"))
		return err == nil
	})
	f := c.next(t)
	if f.Event != "resync" || !strings.Contains(f.Data, `"reason":"stream_recreated","last_event_id":"`+last.ID+`"`) {
		t.Fatalf("after the stream was recreated: %+v, want a stream_recreated resync from %s", f, last.ID)
	}
	if f := c.next(t); f.Data != `{"new":1}` || !strings.HasPrefix(f.ID, "1-") || f.ID == last.ID {
		t.Fatalf("after the resync frame: %+v, want the new stream's first event", f)
	}
	if opened, closed := m.get("opened agui"), m.get("closed agui nats")+m.get("closed agui feed"); opened != 1 || closed != 0 {
		t.Fatalf("streams opened %d, closed %d; want the one stream open throughout", opened, closed)
	}
}

// TestNATSNativeRouting publishes straight to NATS, as producers that bypass eventsd do, and
// checks which SSE channels each event reaches.
func TestNATSNativeRouting(t *testing.T) {
	p := newPlane(t, sse.Config{})
	tok := token(t, "alice")
	clients := map[routing.Channel]*client{}
	for _, ch := range []routing.Channel{routing.AGUI, routing.A2A, routing.Contexts, routing.Analytics} {
		clients[ch] = p.open(t, streamPath(ch), tok, nil)
	}
	if f := clients[routing.Contexts].next(t); !strings.Contains(f.Data, `"type":"CONTEXTS_SNAPSHOT"`) {
		t.Fatalf("first contexts frame %+v, want the snapshot", f)
	}
	// Core NATS publish (not JetStream) is stored too: the stream captures the subject.
	if err := p.nc.Publish("agui.alice.RUN_STARTED", []byte(`{"type":"RUN_STARTED","n":1}`)); err != nil {
		t.Fatal(err)
	}
	p.publishNATS(t, "a2a.alice.TASK_SUBMITTED", `{"type":"TASK_SUBMITTED","n":2}`)
	p.publishNATS(t, "context.system.alice.CONTEXT_CREATED", `{"type":"CONTEXT_CREATED","n":3}`)
	p.publishNATS(t, "analytics.alice.PAGE_VIEW", `{"type":"PAGE_VIEW","n":4}`)
	p.publishNATS(t, "agui.bob.RUN_STARTED", `{"type":"RUN_STARTED","n":5}`)

	want := map[routing.Channel][]string{
		routing.AGUI: {`{"type":"RUN_STARTED","n":1}`},
		routing.A2A:  {`{"type":"TASK_SUBMITTED","n":2}`},
		routing.Contexts: {
			`{"protocol":"agui","event":{"type":"RUN_STARTED","n":1}}`,
			`{"protocol":"a2a","event":{"type":"TASK_SUBMITTED","n":2}}`,
			`{"protocol":"system","event":{"type":"CONTEXT_CREATED","n":3}}`,
		},
		routing.Analytics: {`{"type":"PAGE_VIEW","n":4}`},
	}
	for ch, frames := range want {
		got := map[string]bool{}
		for range frames {
			f := clients[ch].next(t)
			if f.ID == "" || f.Event != "" {
				t.Errorf("%s: frame %+v, want an id and no event name", ch, f)
			}
			got[f.Data] = true
		}
		for _, w := range frames {
			if !got[w] {
				t.Errorf("%s: got %v, want %s among them", ch, got, w)
			}
		}
	}
	// A marker on every channel, published last, must be each stream's next frame: nothing
	// else (bob's event, other channels' events) was queued for alice.
	p.publishNATS(t, "agui.alice.MARKER", `{"m":1}`)
	p.publishNATS(t, "a2a.alice.MARKER", `{"m":2}`)
	p.publishNATS(t, "analytics.alice.MARKER", `{"m":3}`)
	for ch, want := range map[routing.Channel]string{
		routing.AGUI: `{"m":1}`, routing.A2A: `{"m":2}`, routing.Analytics: `{"m":3}`,
	} {
		if f := clients[ch].next(t); f.Data != want {
			t.Errorf("%s: next frame %q, want the marker %s", ch, f.Data, want)
		}
	}
	// The two fan-in sources interleave in either order.
	got := map[string]bool{clients[routing.Contexts].next(t).Data: true, clients[routing.Contexts].next(t).Data: true}
	if !got[`{"protocol":"agui","event":{"m":1}}`] || !got[`{"protocol":"a2a","event":{"m":2}}`] {
		t.Errorf("contexts: next frames %v, want the agui and a2a markers", got)
	}
}

// TestUserIsolation gives users whose ids hold subject syntax their own streams: each sees only
// its own events.
func TestUserIsolation(t *testing.T) {
	p := newPlane(t, sse.Config{})
	users := []string{"*", ">", "a.b", "a", "b", "a.*", " ", "~YQ", "alice@example.com"}
	clients := make([]*client, len(users))
	for i, u := range users {
		clients[i] = p.open(t, "/api/v1/stream/agui", token(t, u), nil)
	}
	for i, u := range users {
		code, ans := p.post(t, "/api/v1/events/agui", token(t, u), "application/json", fmt.Sprintf(`{"type":"CUSTOM","name":"n","value":%d}`, i))
		if code != http.StatusOK {
			t.Fatalf("publish for %q = %d %v", u, code, ans)
		}
	}
	for i, u := range users {
		f := clients[i].next(t)
		if !strings.Contains(f.Data, fmt.Sprintf(`"value":%d}`, i)) {
			t.Errorf("user %q got %s, want its own event %d", u, f.Data, i)
		}
		select {
		case f := <-clients[i].frames:
			t.Errorf("user %q got a second frame %+v", u, f)
		default:
		}
	}
}

func TestHeartbeat(t *testing.T) {
	p := newPlane(t, sse.Config{Heartbeat: 20 * time.Millisecond})
	c := p.open(t, "/api/v1/stream/a2a", token(t, "alice"), nil)
	select {
	case f := <-c.frames:
		if f.Event != "heartbeat" || f.Data != `{"type":"heartbeat"}` || f.ID != "" {
			t.Fatalf("first frame on an idle stream = %+v, want a heartbeat", f)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no heartbeat")
	}

	// On agui the heartbeat is an SSE comment, which AG-UI clients skip.
	resp := p.get(t, "/api/v1/stream/agui", token(t, "alice"), nil)
	defer resp.Body.Close()
	want := ": heartbeat\n\n"
	got := make([]byte, len(want))
	if _, err := io.ReadFull(resp.Body, got); err != nil || string(got) != want {
		t.Fatalf("agui stream began with %q, %v, want %q", got, err, want)
	}
}

func TestTypesFilter(t *testing.T) {
	p := newPlane(t, sse.Config{})
	tok := token(t, "alice")
	c := p.open(t, "/api/v1/stream/contexts?types=RUN_FINISHED,CONTEXT_CREATED", tok, nil)
	p.publishNATS(t, "agui.alice.RUN_STARTED", `{"n":1}`)
	p.publishNATS(t, "agui.alice.RUN_FINISHED", `{"n":2}`)
	p.publishNATS(t, "context.system.alice.CONTEXT_DELETED", `{"n":3}`)
	p.publishNATS(t, "context.system.alice.CONTEXT_CREATED", `{"n":4}`)
	// The AG-UI event reaches CONTEXT through the fan-in, so the two may arrive in either order.
	got := map[string]bool{c.next(t).Data: true, c.next(t).Data: true}
	for _, want := range []string{`{"protocol":"agui","event":{"n":2}}`, `{"protocol":"system","event":{"n":4}}`} {
		if !got[want] {
			t.Fatalf("filtered stream gave %v, want %s among them", got, want)
		}
	}
	for _, bad := range []string{"*", ">", "A.B", "a", "A,", "RUN_STARTED,agui.>"} {
		resp := p.get(t, "/api/v1/stream/agui?types="+bad, tok, nil)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("types=%s: status %d, want 400", bad, resp.StatusCode)
		}
	}
}

// TestPayloadsThatBypassIngress covers NATS-native payloads eventsd did not check: bad ones are
// skipped, counted and logged once per subject and interval; the stream goes on.
func TestPayloadsThatBypassIngress(t *testing.T) {
	m := &countingMetrics{}
	var logs testplane.SyncBuffer
	p := newPlane(t, sse.Config{MaxEvent: 100, Metrics: m, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	c := p.open(t, "/api/v1/stream/agui", token(t, "alice"), nil)
	p.publishNATS(t, "agui.alice.X", "not json")
	p.publishNATS(t, "agui.alice.X", "{\"a\":\xff}")
	p.publishNATS(t, "agui.alice.X", "{\"a\":\"\xff\"}") // JSON, but not UTF-8
	p.publishNATS(t, "agui.alice.X", `{"big":"`+strings.Repeat("x", 100)+`"}`)
	p.publishNATS(t, "agui.alice.Y", "also not json")
	p.publishNATS(t, "agui.alice.X", "{\n  \"a\": 1,\r\n  \"b\": \"x y\"\n}")
	if f := c.next(t); f.Data != `{"a":1,"b":"x y"}` {
		t.Fatalf("frame = %q, want the multi-line event compacted, and the bad ones skipped", f.Data)
	}
	if got := m.get("skipped agui not_json"); got != 4 {
		t.Errorf("skipped not_json = %d, want 4", got)
	}
	if got := m.get("skipped agui too_large"); got != 1 {
		t.Errorf("skipped too_large = %d, want 1", got)
	}
	if n := strings.Count(logs.String(), "stored event not sent"); n != 2 {
		t.Errorf("%d log lines for skipped events, want 2 (one per subject):\n%s", n, logs.String())
	}
}

// countingMetrics records what the handler counts.
type countingMetrics struct {
	mu sync.Mutex
	n  map[string]int
}

func (m *countingMetrics) add(key string) { m.addN(key, 1) }

func (m *countingMetrics) addN(key string, n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.n == nil {
		m.n = map[string]int{}
	}
	m.n[key] += n
}

func (m *countingMetrics) get(key string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.n[key]
}

func (m *countingMetrics) StreamOpened(c routing.Channel) { m.add("opened " + string(c)) }
func (m *countingMetrics) StreamClosed(c routing.Channel, reason string) {
	m.add("closed " + string(c) + " " + reason)
}
func (m *countingMetrics) Delivered(c routing.Channel, n int) { m.addN("delivered "+string(c), n) }
func (m *countingMetrics) Skipped(c routing.Channel, reason string) {
	m.add("skipped " + string(c) + " " + reason)
}
func (m *countingMetrics) ConsumerCreated(time.Duration) {}
func (m *countingMetrics) ConsumerDeleted(time.Duration) {}
func (m *countingMetrics) ViewSkipped(view, reason string) {
	m.add("view skipped " + view + " " + reason)
}
func (m *countingMetrics) Heartbeat(c routing.Channel) { m.add("heartbeat " + string(c)) }
func (m *countingMetrics) Published(c routing.Channel, outcome string, _ time.Duration) {
	m.add("published " + string(c) + " " + outcome)
}

func TestResume(t *testing.T) {
	p := newPlane(t, sse.Config{})
	tok := token(t, "alice")
	const total = 400
	published := make(chan error, 1)
	go func() {
		for i := range total {
			if _, err := p.js.Publish(ctxFor(t), "agui.alice.STEP", fmt.Appendf(nil, `{"i":%d}`, i)); err != nil {
				published <- err
				return
			}
		}
		published <- nil
	}()
	var got []int
	lastID := ""
	for round := 0; len(got) < total; round++ {
		hdr := map[string]string{}
		if lastID != "" {
			hdr["Last-Event-ID"] = lastID
		}
		path := "/api/v1/stream/agui"
		if round == 0 {
			// The first client starts from the beginning with the query form of the cursor.
			path += "?last_event_id=0-" + strconv.FormatUint(p.epoch(t, routing.StreamAGUI), 36)
		}
		c := p.open(t, path, tok, hdr)
		for range 1 + round*37%90 {
			if len(got) == total {
				break
			}
			f := c.next(t)
			var i int
			if _, err := fmt.Sscanf(f.Data, `{"i":%d}`, &i); err != nil {
				t.Fatalf("frame %q: %v", f.Data, err)
			}
			got = append(got, i)
			lastID = f.ID
		}
		c.close()
	}
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	for i, v := range got {
		if v != i {
			t.Fatalf("event %d is %d: lost, duplicated or out of order (%v)", i, v, got[max(0, i-3):i+1])
		}
	}
}

func (p *plane) epoch(t testing.TB, stream string) uint64 {
	t.Helper()
	s, err := p.js.Stream(ctxFor(t), stream)
	if err != nil {
		t.Fatal(err)
	}
	return uint64(s.CachedInfo().Created.UnixNano())
}

func TestResumeNotices(t *testing.T) {
	p := newPlane(t, sse.Config{})
	tok := token(t, "alice")
	for i := range 3 {
		p.publishNATS(t, "agui.alice.STEP", fmt.Sprintf(`{"i":%d}`, i))
	}
	epoch := strconv.FormatUint(p.epoch(t, routing.StreamAGUI), 36)

	c := p.open(t, "/api/v1/stream/agui", tok, map[string]string{"Last-Event-ID": "1-" + strconv.FormatUint(7, 36)})
	if f := c.next(t); f.Event != "resync" || !strings.Contains(f.Data, `"reason":"stream_recreated"`) {
		t.Fatalf("cursor from another stream epoch: first frame %+v, want a stream_recreated resync", f)
	}
	if f := c.next(t); f.Data != `{"i":0}` || f.ID != "1-"+epoch {
		t.Fatalf("after the resync frame %+v, want the stream's first event", f)
	}
	c.close()

	purgeBefore(t, p, 3)
	c = p.open(t, "/api/v1/stream/agui", tok, map[string]string{"Last-Event-ID": "1-" + epoch})
	if f := c.next(t); f.Event != "resync" || !strings.Contains(f.Data, `{"type":"resync","reason":"cursor_expired","last_event_id":"1-`+epoch+`","first_seq":3}`) {
		t.Fatalf("expired cursor: first frame %+v, want a cursor_expired resync", f)
	}
	if f := c.next(t); f.Data != `{"i":2}` {
		t.Fatalf("after the resync frame %+v, want the oldest retained event", f)
	}

	for cursor, want := range map[string]int{
		"abc": 400, "-1-" + epoch: 400, "1": 400, "99-" + epoch: 400, "18446744073709551616-1": 400,
	} {
		resp := p.get(t, "/api/v1/stream/agui", tok, map[string]string{"Last-Event-ID": cursor})
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Last-Event-ID %q: status %d, want %d", cursor, resp.StatusCode, want)
		}
	}
}

// purgeBefore drops the AGUI stream's events before seq, as retention limits would.
func purgeBefore(t *testing.T, p *plane, seq uint64) {
	t.Helper()
	s, err := p.js.Stream(ctxFor(t), routing.StreamAGUI)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Purge(ctxFor(t), jetstream.WithPurgeSequence(seq)); err != nil {
		t.Fatal(err)
	}
}

// TestConnectionLeak opens and closes many streams, then checks that the server's consumer
// count and the goroutine count come back to where they started.
func TestConnectionLeak(t *testing.T) {
	p := newPlane(t, sse.Config{})
	tok := token(t, "alice")
	// The shared feed holds one consumer per stream once used (the view projectors' consumers
	// are not counted).
	for _, ch := range []routing.Channel{routing.AGUI, routing.Contexts} {
		p.open(t, streamPath(ch), tok, nil).close()
	}
	waitFor(t, "consumers gone", func() bool {
		return p.consumers(t, routing.StreamAGUI) == hubConsumers() && p.consumers(t, routing.StreamContext) == hubConsumers()
	})
	http.DefaultClient.CloseIdleConnections()
	baseline := goleak.IgnoreCurrent()

	for i := range 300 {
		ch := []routing.Channel{routing.AGUI, routing.Contexts}[i%2]
		c := p.open(t, streamPath(ch), tok, nil)
		c.close()
	}
	waitFor(t, "consumers deleted", func() bool {
		a, c := p.consumers(t, routing.StreamAGUI), p.consumers(t, routing.StreamContext)
		if a != hubConsumers() || c != hubConsumers() {
			t.Logf("consumers: AGUI %d (want %d), CONTEXT %d (want %d)", a, hubConsumers(), c, hubConsumers())
			return false
		}
		return true
	})
	http.DefaultClient.CloseIdleConnections()
	// goleak retries until the goroutines started since the baseline are gone. The embedded
	// server's own goroutines are left out: the stream's source consumers start when they
	// please, and per-connection consumers are counted above.
	if err := goleak.Find(baseline,
		goleak.IgnoreAnyFunction("github.com/nats-io/nats-server/v2/server.(*Server).startGoRoutine.func1"),
		goleak.IgnoreAnyFunction("github.com/nats-io/nats-server/v2/server.(*consumer).setLeader.func2"),
		goleak.IgnoreAnyFunction("github.com/nats-io/nats-server/v2/server.(*consumer).setLeader.func3"),
	); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds, failing the test after 20 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestManyConnections holds 1,200 streams open at once, more than nats-server's default
// per-stream consumer limit, and delivers one event to all of them.
func TestManyConnections(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 1,200 connections")
	}
	p := newPlane(t, sse.Config{})
	const n = 1200
	tok := token(t, "crowd")
	clients := make([]*client, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 64)
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			c, err := p.tryOpen("/api/v1/stream/agui", tok, nil)
			if err != nil {
				errs <- err
				return
			}
			clients[i] = c
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, c := range clients {
		t.Cleanup(c.close)
	}
	want := n
	if sharedMode() {
		want = 1 // the shared feed's
	}
	if got := p.consumers(t, routing.StreamAGUI); got != want {
		t.Fatalf("%d consumers, want %d", got, want)
	}
	p.publishNATS(t, "agui.crowd.PING", `{"ping":true}`)
	for i, c := range clients {
		if f := c.next(t); f.Data != `{"ping":true}` {
			t.Fatalf("client %d got %+v", i, f)
		}
	}
}

func TestAllUsersAndSince(t *testing.T) {
	p := newPlane(t, sse.Config{})
	before := time.Now().Add(-time.Second).UTC().Format(time.RFC3339Nano)
	p.publishNATS(t, "a2a.alice.OLD", `{"n":0}`)

	resp := p.get(t, "/api/v1/stream/a2a?all_users=true", token(t, "alice"), nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("all_users=true without admin: %d, want 403", resp.StatusCode)
	}
	admin := p.open(t, "/api/v1/stream/a2a?all_users=true", token(t, "root", auth.RoleAdmin), nil)
	p.publishNATS(t, "a2a.alice.X", `{"n":1}`)
	p.publishNATS(t, "a2a.~YUBi.X", `{"n":2}`)
	for _, want := range []string{`{"n":1}`, `{"n":2}`} {
		if f := admin.next(t); f.Data != want {
			t.Fatalf("admin all-users stream gave %s, want %s", f.Data, want)
		}
	}

	since := p.open(t, "/api/v1/stream/a2a?since="+url.QueryEscape(before), token(t, "alice"), nil)
	for _, want := range []string{`{"n":0}`, `{"n":1}`} {
		if f := since.next(t); f.Data != want {
			t.Fatalf("since stream gave %s, want %s", f.Data, want)
		}
	}
	resp = p.get(t, "/api/v1/stream/a2a?since=yesterday", token(t, "alice"), nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("since=yesterday: %d, want 400", resp.StatusCode)
	}
}

// TestReconnectStorm opens 2,000 streams at the same moment, as clients do when a node comes
// back; consumer creation is queued rather than overflowing the JetStream API. All must succeed,
// receive an event, and leave no consumer behind.
func TestReconnectStorm(t *testing.T) {
	if raceEnabled {
		t.Skip("2,000 streams pass the race detector's goroutine limit: .ci/run runs this test without -race")
	}
	p := newPlane(t, sse.Config{})
	const n = 2000
	tok := token(t, "storm")
	clients := make([]*client, n)
	errs := make(chan error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			c, err := p.tryOpen("/api/v1/stream/agui", tok, nil)
			if err != nil {
				errs <- err
				return
			}
			clients[i] = c
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	p.publishNATS(t, "agui.storm.PING", `{"ping":true}`)
	for i, c := range clients {
		if f := c.next(t); f.Data != `{"ping":true}` {
			t.Fatalf("client %d got %+v", i, f)
		}
	}
	for _, c := range clients {
		c.close()
	}
	waitFor(t, "every consumer deleted", func() bool { return p.consumers(t, routing.StreamAGUI) == hubConsumers() })
}

// TestStalledClient stops reading one stream while events flow: that connection is cut after
// the write timeout and its consumer deleted, while another stream of the same user gets every
// event.
func TestStalledClient(t *testing.T) {
	m := &countingMetrics{}
	p := newPlane(t, sse.Config{WriteTimeout: 300 * time.Millisecond, Metrics: m})
	tok := token(t, "alice")
	conn, err := net.Dial("tcp", strings.TrimPrefix(p.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprintf(conn, "GET /api/v1/stream/agui HTTP/1.1\r\nHost: eventsd\r\nAuthorization: Bearer %s\r\n\r\n", tok)
	waitFor(t, "the stalled stream's consumer", func() bool { return p.consumers(t, routing.StreamAGUI) == 1 })
	reader := p.open(t, "/api/v1/stream/agui", tok, nil)

	const n = 3000
	payload := fmt.Sprintf(`{"pad":%q}`, strings.Repeat("x", 2000))
	published := make(chan error, 1)
	go func() {
		for range n {
			if _, err := p.js.PublishAsync("agui.alice.BIG", []byte(payload)); err != nil {
				published <- err
				return
			}
		}
		select {
		case <-p.js.PublishAsyncComplete():
			published <- nil
		case <-time.After(30 * time.Second):
			published <- fmt.Errorf("publishes not acknowledged")
		}
	}()
	for i := range n {
		if f := reader.next(t); f.Data != payload {
			t.Fatalf("event %d: %.40s", i, f.Data)
		}
	}
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the stalled stream to be cut", func() bool { return m.get("closed agui write") == 1 })
	waitFor(t, "its consumer deleted", func() bool { return p.consumers(t, routing.StreamAGUI) == 1 })
}
