package sse_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eventsd/eventsd/auth"
	"github.com/eventsd/eventsd/bus"
	"github.com/eventsd/eventsd/embedded"
	"github.com/eventsd/eventsd/internal/testplane"
	"github.com/eventsd/eventsd/routing"
	"github.com/eventsd/eventsd/sse"
)

// postKeyed publishes body with an Idempotency-Key and returns the status and the answer.
func (p *plane) postKeyed(t testing.TB, path, tok, key, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, p.url+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var answer map[string]any
	decode(t, resp, &answer)
	return resp.StatusCode, answer
}

// TestIdempotencyKeyPerUserAndChannel: a key de-duplicates only the same user's retry on the
// same channel. Another user's key does not drop their event or reveal the first user's
// sequence, and an agui and an a2a event sent with one key both reach the contexts channel,
// which holds them in one stream.
func TestIdempotencyKeyPerUserAndChannel(t *testing.T) {
	p := newPlane(t, sse.Config{})
	alice, bob := token(t, "alice"), token(t, "bob")
	contexts := p.open(t, "/api/v1/stream/contexts?types=CUSTOM,TASK_SUBMITTED", alice, nil)
	code, first := p.postKeyed(t, "/api/v1/events/agui", alice, "order-42", `{"type":"CUSTOM","name":"alice","value":1}`)
	if code != http.StatusOK || first["duplicate"] != false {
		t.Fatalf("alice's first publish: %d %v", code, first)
	}
	code, ans := p.postKeyed(t, "/api/v1/events/agui", bob, "order-42", `{"type":"CUSTOM","name":"bob","value":2}`)
	if code != http.StatusOK || ans["duplicate"] != false || ans["seq"] == first["seq"] {
		t.Fatalf("bob's publish with alice's key: %d %v, want his own event stored", code, ans)
	}
	code, ans = p.postKeyed(t, "/api/v1/events/agui", alice, "order-42", `{"type":"CUSTOM","name":"alice","value":1}`)
	if code != http.StatusOK || ans["duplicate"] != true || ans["seq"] != first["seq"] {
		t.Fatalf("alice's retry: %d %v, want a duplicate of seq %v", code, ans, first["seq"])
	}
	code, ans = p.postKeyed(t, "/api/v1/events/a2a", alice, "order-42", `{"type":"TASK_SUBMITTED","taskId":"t","contextId":"c","agentName":"a"}`)
	if code != http.StatusOK || ans["duplicate"] != false {
		t.Fatalf("alice's a2a publish with her agui key: %d %v, want it stored", code, ans)
	}
	// The fan-in copies each source stream on its own, so the two may arrive in either order.
	var protocols []string
	for range 2 {
		var f struct{ Protocol string }
		if err := json.Unmarshal([]byte(contexts.next(t).Data), &f); err != nil {
			t.Fatal(err)
		}
		protocols = append(protocols, f.Protocol)
	}
	if slices.Sort(protocols); !slices.Equal(protocols, []string{"a2a", "agui"}) {
		t.Fatalf("contexts showed %v, want the agui and the a2a event", protocols)
	}
}

// TestIngressRateLimitIsPerTargetUser: a service publishing for many users is limited per
// user, not as one caller; one user is limited whoever publishes for them.
func TestIngressRateLimitIsPerTargetUser(t *testing.T) {
	p := newPlane(t, sse.Config{IngressRate: 5, IngressBurst: 10})
	svc := token(t, "agent-runtime", auth.RoleService)
	// alice may not publish for user-0: her refused attempts spend none of user-0's budget.
	for range 20 {
		if code, _ := p.post(t, "/api/v1/events/agui?user=user-0", token(t, "alice"), "application/json", `{"type":"CUSTOM","name":"n","value":1}`); code != http.StatusForbidden {
			t.Fatalf("alice publishing for user-0: %d, want 403", code)
		}
	}
	for u := range 8 {
		for range 10 {
			if code, ans := p.post(t, fmt.Sprintf("/api/v1/events/agui?user=user-%d", u), svc, "application/json", `{"type":"CUSTOM","name":"n","value":1}`); code != http.StatusOK {
				t.Fatalf("service publish %d for user-%d: %d %v, want 200 (each user has a budget of its own)", u, u, code, ans)
			}
		}
	}
	// user-0's budget is spent: alice's own token and the service both get 429 for them.
	if code, _ := p.post(t, "/api/v1/events/agui?user=user-0", svc, "application/json", `{"type":"CUSTOM","name":"n","value":1}`); code != http.StatusTooManyRequests {
		t.Fatalf("the 11th publish at once for user-0: %d, want 429", code)
	}
	if code, _ := p.post(t, "/api/v1/events/agui", token(t, "user-0"), "application/json", `{"type":"CUSTOM","name":"n","value":1}`); code != http.StatusTooManyRequests {
		t.Fatalf("user-0's own publish after the service spent the budget: %d, want 429", code)
	}
	// Past the limit the body is not read: a malformed one gets 429, not 400.
	if code, _ := p.post(t, "/api/v1/events/agui", token(t, "user-0"), "application/json", `{"type":`); code != http.StatusTooManyRequests {
		t.Fatalf("malformed body past the limit: %d, want 429 before the body is read", code)
	}
}

// trickle opens a raw connection, sends a POST's head announcing a body of 100 bytes and one
// byte of it, and returns what the server sends until it closes the connection.
func trickle(t *testing.T, addr, path, tok string) string {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	head := "POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n"
	if tok != "" {
		head += "Authorization: Bearer " + tok + "\r\n"
	}
	if _, err := io.WriteString(conn, head+"\r\n{"); err != nil {
		t.Fatal(err)
	}
	// The bound only keeps a broken server from hanging the test; the server cuts the body
	// off after its read timeout (200 ms here).
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	got, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("the server kept a trickling body's connection open: %v (read %q)", err, got)
	}
	return string(got)
}

// TestReadTimeout: a body that trickles in is cut off after --read-timeout, authenticated or
// not; a stream, which reads nothing, outlives it.
func TestReadTimeout(t *testing.T) {
	p := newPlane(t, sse.Config{ReadTimeout: 200 * time.Millisecond, Heartbeat: 300 * time.Millisecond})
	addr := strings.TrimPrefix(p.url, "http://")
	for _, tt := range []struct{ what, path, tok, status string }{
		{"authenticated", "/api/v1/events/agui", token(t, "alice"), "408"},
		{"unauthenticated", "/api/v1/webhook/agui", "", "401"},
		{"to no endpoint", "/api/v1/nope", "", "404"},
		{"to a stream", "/api/v1/stream/agui", "", "405"},
		{"with a query over the limit", "/api/v1/events/agui?x=" + strings.Repeat("a", 5000), "", "414"},
	} {
		if got := trickle(t, addr, tt.path, tt.tok); !strings.HasPrefix(got, "HTTP/1.1 "+tt.status) {
			t.Errorf("%s trickling body: %q, want %s and the connection closed", tt.what, got, tt.status)
		}
	}
	if n := p.msgs(t, routing.StreamAGUI); n != 0 {
		t.Fatalf("%d events stored from cut-off bodies, want 0", n)
	}
	c := p.open(t, "/api/v1/stream/a2a", token(t, "alice"), nil)
	for range 3 { // three heartbeats: about 0.9 s, well past the read timeout
		if f := <-c.frames; f.Event != "heartbeat" {
			t.Fatalf("idle stream sent %+v, want a heartbeat", f)
		}
	}
	p.publishNATS(t, "a2a.alice.CUSTOM", `{"still":"open"}`)
	if f := c.next(t); f.Data != `{"still":"open"}` {
		t.Fatalf("stream after the read timeout: %+v", f)
	}
}

// TestBodyDeadlineSparesLongAnswers: once a POST's body is read, its answer may take longer
// than the read timeout.
func TestBodyDeadlineSparesLongAnswers(t *testing.T) {
	const timeout = 100 * time.Millisecond
	h := sse.BodyDeadline(timeout)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		for i := range 3 { // an answer that goes on for 3 read timeouts, as a run's stream does
			fmt.Fprintf(w, "%s %d\n", body, i)
			http.NewResponseController(w).Flush()
			<-time.After(timeout)
		}
	}))
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	resp, err := http.Post(ts.URL, "text/plain", strings.NewReader("run"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil || string(got) != "run 0\nrun 1\nrun 2\n" {
		t.Fatalf("long answer: %q, %v; want all three lines", got, err)
	}
}

// TestEventOverPayloadLimit: an event that fits --max-body but not, with what ingress adds,
// NATS's payload limit is a 413 naming the limit, not a 500; nothing is stored.
func TestEventOverPayloadLimit(t *testing.T) {
	p := newPlane(t, sse.Config{MaxBody: 2 * embedded.DefaultMaxPayload})
	body := `{"type":"CUSTOM","name":"n","value":"` + strings.Repeat("x", embedded.DefaultMaxPayload-60) + `"}` // under the limit
	code, ans := p.post(t, "/api/v1/events/agui", token(t, "alice"), "application/json", body)
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(fmt.Sprint(ans["error"]), fmt.Sprint(p.bus.MaxPayload())) {
		t.Fatalf("%d-byte event: %d %v, want 413 naming the limit of %d", len(body), code, ans, p.bus.MaxPayload())
	}
	if n := p.msgs(t, routing.StreamAGUI); n != 0 {
		t.Fatalf("%d events stored, want 0", n)
	}
	// With the default --max-body, the same body is refused before it is read in full.
	q := newPlane(t, sse.Config{})
	if code, _ := q.post(t, "/api/v1/events/agui", token(t, "alice"), "application/json", body); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("default max body: %d, want 413", code)
	}
}

// TestStreamByteLimit: a stream past --max-bytes discards its oldest events and goes on
// storing; a client resuming from a discarded event gets the cursor_expired resync frame.
func TestStreamByteLimit(t *testing.T) {
	opts := routing.DefaultStreamOptions
	opts.MaxBytes = 64 << 10
	tp := testplane.StartWith(t, sse.Config{}, bus.Config{Delivery: delivery, Streams: opts})
	p := &plane{Plane: tp, url: tp.URL, bus: tp.Bus, nc: tp.NC, js: tp.JS}
	alice := token(t, "alice")
	c := p.open(t, "/api/v1/stream/agui", alice, nil)
	payload := `{"type":"CUSTOM","name":"n","value":"` + strings.Repeat("x", 1000) + `"}`
	for i := range 200 { // about 200 KB into a 64 KiB stream
		if code, ans := p.post(t, "/api/v1/events/agui", alice, "application/json", payload); code != http.StatusOK {
			t.Fatalf("publish %d: %d %v, want 200: a full stream discards old events", i, code, ans)
		}
	}
	first := c.next(t)
	st, err := p.bus.Stream(ctxFor(t), routing.StreamAGUI)
	if err != nil {
		t.Fatal(err)
	}
	if st.Bytes > uint64(opts.MaxBytes) || st.FirstSeq == 1 || st.LastSeq != 200 {
		t.Fatalf("stream holds %d bytes, sequences %d-%d; want at most %d bytes, the oldest gone, 200 last",
			st.Bytes, st.FirstSeq, st.LastSeq, opts.MaxBytes)
	}
	r := p.open(t, "/api/v1/stream/agui", alice, map[string]string{"Last-Event-ID": first.ID})
	if f := r.next(t); f.Event != "resync" || !strings.Contains(f.Data, `"reason":"cursor_expired"`) ||
		!strings.Contains(f.Data, fmt.Sprintf(`"first_seq":%d`, st.FirstSeq)) {
		t.Fatalf("resume from the discarded first event: %+v, want a cursor_expired resync naming %d", f, st.FirstSeq)
	}
	if f := r.next(t); !strings.HasPrefix(f.ID, fmt.Sprint(st.FirstSeq)+"-") {
		t.Fatalf("after the resync: %s, want the oldest event kept (%d)", f.ID, st.FirstSeq)
	}
}
