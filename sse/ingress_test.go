package sse_test

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/eventsd/eventsd/auth"
	"github.com/eventsd/eventsd/routing"
	"github.com/eventsd/eventsd/sse"
)

func TestIngressPublishes(t *testing.T) {
	p := newPlane(t, sse.Config{})
	alice, svc := token(t, "alice"), token(t, "svc", auth.RoleService)
	agui := p.open(t, "/api/v1/stream/agui", alice, nil)
	a2a := p.open(t, "/api/v1/stream/a2a", alice, nil)
	ctxs := p.open(t, "/api/v1/stream/contexts?types=CONTEXT_CREATED", alice, nil)
	analytics := p.open(t, "/api/v1/analytics/stream", alice, nil)

	tests := []struct {
		name, path, tok, body string
		stream                string
		c                     *client
		want                  string // the frame's data; "<ms>" and "<rfc3339>" stand for a filled timestamp
	}{
		{"agui fills epoch ms", "/api/v1/events/agui", alice, `{"runId":"r","type":"RUN_STARTED","threadId":"t"}`,
			routing.StreamAGUI, agui, `{"type":"RUN_STARTED","timestamp":<ms>,"runId":"r","threadId":"t"}`},
		{"agui converts RFC 3339", "/api/v1/events/agui", alice, `{"type":"RUN_ERROR","timestamp":"2026-04-20T10:15:30.123Z","message":"m"}`,
			routing.StreamAGUI, agui, `{"type":"RUN_ERROR","timestamp":1776680130123,"message":"m"}`},
		{"agui keeps epoch ms", "/api/v1/events/agui", alice, `{"type":"RUN_ERROR","timestamp":1776680130123,"message":"m"}`,
			routing.StreamAGUI, agui, `{"type":"RUN_ERROR","timestamp":1776680130123,"message":"m"}`},
		{"a2a fills RFC 3339", "/api/v1/events/a2a", alice, `{"type":"TASK_SUBMITTED","taskId":"1","contextId":"c","agentName":"a","x":{"keep":[1,2]}}`,
			routing.StreamA2A, a2a, `{"type":"TASK_SUBMITTED","timestamp":"<rfc3339>","taskId":"1","contextId":"c","agentName":"a","x":{"keep":[1,2]}}`},
		{"system for a user by a service", "/api/v1/events/system?user=alice", svc, `{"type":"CONTEXT_CREATED","contextId":"c","name":"n"}`,
			routing.StreamContext, ctxs, `{"protocol":"system","event":{"type":"CONTEXT_CREATED","timestamp":"<rfc3339>","contextId":"c","name":"n"}}`},
		{"analytics keeps nulls", "/api/v1/events/analytics?user=alice", alice, `{"type":"PAGE_VIEW","timestamp":"2026-01-02T03:04:05Z","session_id":"s","user_id":null}`,
			routing.StreamAnalytics, analytics, `{"type":"PAGE_VIEW","timestamp":"2026-01-02T03:04:05Z","session_id":"s","user_id":null}`},
		{"webhook drops user_id", "/api/v1/webhook/agui", alice, `{"type":"TEXT_MESSAGE_END","user_id":"alice","messageId":"m"}`,
			routing.StreamAGUI, agui, `{"type":"TEXT_MESSAGE_END","timestamp":<ms>,"messageId":"m"}`},
		{"webhook by a service", "/api/v1/webhook/a2a", svc, `{"type":"AGENT_MESSAGE","user_id":"alice","taskId":"t","contextId":"c","messageId":"m","content":"hi"}`,
			routing.StreamA2A, a2a, `{"type":"AGENT_MESSAGE","timestamp":"<rfc3339>","taskId":"t","contextId":"c","messageId":"m","content":"hi"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, ans := p.post(t, tt.path, tt.tok, "application/json", tt.body)
			if code != http.StatusOK || ans["status"] != "published" || ans["stream"] != tt.stream || ans["seq"] == nil {
				t.Fatalf("POST %s = %d %v, want published on %s", tt.path, code, ans, tt.stream)
			}
			f := tt.c.next(t)
			if !matchStamped(f.Data, tt.want) {
				t.Fatalf("frame = %s, want %s", f.Data, tt.want)
			}
			if !strings.HasPrefix(f.ID, fmt.Sprint(ans["seq"])+"-") && tt.stream != routing.StreamContext {
				t.Errorf("frame id %s, want it to start with the answered seq %v", f.ID, ans["seq"])
			}
		})
	}
}

// matchStamped compares a frame with a template in which <ms> and <rfc3339> stand for a
// timestamp filled in by the server.
func matchStamped(got, want string) bool {
	before, after, ok := strings.Cut(want, "<ms>")
	if ok {
		var ms int64
		rest, found := strings.CutPrefix(got, before)
		if !found {
			return false
		}
		n, _ := fmt.Sscanf(rest, "%d", &ms)
		return n == 1 && time.Since(time.UnixMilli(ms)).Abs() < time.Hour && strings.HasSuffix(rest, after) && len(rest) == len(fmt.Sprint(ms))+len(after)
	}
	before, after, ok = strings.Cut(want, "<rfc3339>")
	if ok {
		rest, found := strings.CutPrefix(got, before)
		ts, tail, _ := strings.Cut(rest, `"`)
		_, err := time.Parse(time.RFC3339Nano, ts)
		return found && err == nil && strings.HasSuffix(ts, "Z") && `"`+tail == after
	}
	return got == want
}

func TestIdempotencyKey(t *testing.T) {
	p := newPlane(t, sse.Config{})
	tok := token(t, "alice")
	var seqs []any
	for range 2 {
		req, _ := http.NewRequest(http.MethodPost, p.url+"/api/v1/events/agui", strings.NewReader(`{"type":"CUSTOM","name":"n","value":1}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", "k-1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		seqs = append(seqs, resp.StatusCode)
	}
	if n := p.msgs(t, routing.StreamAGUI); n != 1 {
		t.Fatalf("two posts with one Idempotency-Key stored %d events (%v), want 1", n, seqs)
	}
}

// TestIngressErrors checks each bad request's status and error field, and that nothing was
// stored.
func TestIngressErrors(t *testing.T) {
	p := newPlane(t, sse.Config{MaxBody: 200})
	alice := token(t, "alice")
	tests := []struct {
		name, path, tok, ct, body string
		status                    int
		field                     string
	}{
		{"not JSON", "/api/v1/events/agui", alice, "application/json", `{"type":`, 400, "type"},
		{"not JSON at all", "/api/v1/events/agui", alice, "application/json", `hello`, 400, ""},
		{"array", "/api/v1/events/agui", alice, "application/json", `[1]`, 400, ""},
		{"two values", "/api/v1/events/agui", alice, "application/json", `{"type":"A"}{}`, 400, ""},
		{"invalid UTF-8", "/api/v1/events/agui", alice, "application/json", "{\"type\":\"A\",\"x\":\"\xff\"}", 400, ""},
		{"no type", "/api/v1/events/agui", alice, "application/json", `{"x":1}`, 400, "type"},
		{"type not a string", "/api/v1/events/agui", alice, "application/json", `{"type":1}`, 400, "type"},
		{"type lower case", "/api/v1/events/agui", alice, "application/json", `{"type":"run"}`, 400, "type"},
		{"type with subject syntax", "/api/v1/events/agui", alice, "application/json", `{"type":"A.>"}`, 400, "type"},
		{"duplicate field", "/api/v1/events/agui", alice, "application/json", `{"type":"A","type":"B"}`, 400, "type"},
		{"timestamp not RFC 3339", "/api/v1/events/system", alice, "application/json", `{"type":"CONNECTED","timestamp":"yesterday","connectionId":"c"}`, 400, "timestamp"},
		{"numeric timestamp off AG-UI", "/api/v1/events/system", alice, "application/json", `{"type":"CONNECTED","timestamp":17,"connectionId":"c"}`, 400, "timestamp"},
		{"fractional ms", "/api/v1/events/agui", alice, "application/json", `{"type":"CUSTOM","name":"n","value":1,"timestamp":1.5}`, 400, "timestamp"},
		{"no token", "/api/v1/events/agui", "", "application/json", `{"type":"A"}`, 401, ""},
		{"other user without role", "/api/v1/events/agui?user=bob", alice, "application/json", `{"type":"A"}`, 403, "user"},
		{"webhook for another user", "/api/v1/webhook/agui", alice, "application/json", `{"type":"A","user_id":"bob"}`, 403, "user_id"},
		{"webhook without user_id", "/api/v1/webhook/agui", alice, "application/json", `{"type":"A"}`, 400, "user_id"},
		{"webhook user_id not a string", "/api/v1/webhook/agui", alice, "application/json", `{"type":"A","user_id":7}`, 400, "user_id"},
		{"too large", "/api/v1/events/agui", alice, "application/json", `{"type":"A","x":"` + strings.Repeat("x", 200) + `"}`, 413, ""},
		{"text/plain", "/api/v1/events/agui", alice, "text/plain", `{"type":"A"}`, 415, "Content-Type"},
		{"no content type", "/api/v1/events/agui", alice, "", `{"type":"A"}`, 415, "Content-Type"},
		{"unknown channel", "/api/v1/events/contexts", alice, "application/json", `{"type":"A"}`, 404, "channel"},
		{"webhook on analytics", "/api/v1/webhook/analytics", alice, "application/json", `{"type":"A","user_id":"alice"}`, 404, "channel"},
		{"unknown type for the channel", "/api/v1/events/agui", alice, "application/json", `{"type":"TASK_SUBMITTED"}`, 400, "type"},
		{"missing required field", "/api/v1/events/agui", alice, "application/json", `{"type":"RUN_STARTED","threadId":"t"}`, 400, "runId"},
		{"field of the wrong type", "/api/v1/events/a2a", alice, "application/json", `{"type":"ARTIFACT_UPDATED","taskId":"t","contextId":"c","artifactId":"a","append":"yes","lastChunk":true}`, 400, "append"},
		{"service names an invalid user", "/api/v1/events/agui?user=", token(t, "s", auth.RoleService), "application/json", `{"type":"A"}`, 400, "user"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, ans := p.post(t, tt.path, tt.tok, tt.ct, tt.body)
			if code != tt.status || ans["error"] == nil || ans["error"] == "" || fmt.Sprint(ans["field"]) != fmt.Sprint(orNil(tt.field)) {
				t.Fatalf("POST %s %s = %d %v, want %d with field %q", tt.path, tt.body, code, ans, tt.status, tt.field)
			}
		})
	}
	for _, s := range []string{routing.StreamAGUI, routing.StreamA2A, routing.StreamContext, routing.StreamAnalytics} {
		if n := p.msgs(t, s); n != 0 {
			t.Errorf("stream %s holds %d events after only bad requests", s, n)
		}
	}
}

func orNil(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// TestAuth checks every way a token can be wrong, on a stream and on ingress.
func TestAuth(t *testing.T) {
	p := newPlane(t, sse.Config{})
	now := time.Now()
	sign := func(key []byte, c jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." +
		base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf(`{"sub":"alice","exp":%d}`, now.Add(time.Hour).Unix()))) + "."
	tests := []struct {
		name   string
		header string
		cookie string
		status int
	}{
		{"no token", "", "", 401},
		{"not bearer", "Basic YWxpY2U6eA==", "", 401},
		{"malformed", "Bearer not.a.jwt", "", 401},
		{"alg none", "Bearer " + none, "", 401},
		{"wrong signature", "Bearer " + sign([]byte("other"), jwt.MapClaims{"sub": "alice", "exp": now.Add(time.Hour).Unix()}), "", 401},
		{"expired", "Bearer " + sign(secret, jwt.MapClaims{"sub": "alice", "exp": now.Add(-time.Minute).Unix()}), "", 401},
		{"no exp", "Bearer " + sign(secret, jwt.MapClaims{"sub": "alice"}), "", 401},
		{"not yet valid", "Bearer " + sign(secret, jwt.MapClaims{"sub": "alice", "exp": now.Add(time.Hour).Unix(), "nbf": now.Add(time.Hour).Unix()}), "", 401},
		{"no sub", "Bearer " + sign(secret, jwt.MapClaims{"exp": now.Add(time.Hour).Unix()}), "", 401},
		{"sub too long", "Bearer " + sign(secret, jwt.MapClaims{"sub": strings.Repeat("x", 10000), "exp": now.Add(time.Hour).Unix()}), "", 401},
		{"valid header", "Bearer " + token(t, "alice"), "", 200},
		{"valid cookie", "", token(t, "alice"), 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, path := range []string{"/api/v1/stream/agui", "/api/v1/connections"} {
				req, _ := http.NewRequest(http.MethodGet, p.url+path, nil)
				if tt.header != "" {
					req.Header.Set("Authorization", tt.header)
				}
				if tt.cookie != "" {
					req.AddCookie(&http.Cookie{Name: "access_token", Value: tt.cookie})
				}
				// A header that tries to choose the user must change nothing.
				req.Header.Set("X-User-Id", "bob")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != tt.status {
					t.Errorf("GET %s: status %d, want %d", path, resp.StatusCode, tt.status)
				}
				if tt.status == 401 && resp.Header.Get("Content-Type") != "application/json" {
					t.Errorf("GET %s: 401 with Content-Type %q, want JSON", path, resp.Header.Get("Content-Type"))
				}
			}
		})
	}
}

func TestConnections(t *testing.T) {
	p := newPlane(t, sse.Config{})
	p.open(t, "/api/v1/stream/agui", token(t, "alice"), nil)
	p.open(t, "/api/v1/stream/a2a", token(t, "alice"), nil)
	p.open(t, "/api/v1/stream/agui", token(t, "b.b"), nil)
	for _, tt := range []struct{ tok, want string }{
		{token(t, "alice"), `{"count":2,"user":"alice"}`},
		{token(t, "root", auth.RoleAdmin), `{"nodes":1,"total":3,"users":{"alice":2,"b.b":1}}`},
	} {
		resp := p.get(t, "/api/v1/connections", tt.tok, nil)
		var got map[string]any
		decode(t, resp, &got)
		if jsonOf(got) != tt.want {
			t.Errorf("connections = %s, want %s", jsonOf(got), tt.want)
		}
	}
}

func TestHealth(t *testing.T) {
	p := newPlane(t, sse.Config{})
	for path, want := range map[string]string{"/healthz": `{"status":"ok"}`, "/readyz": `{"status":"ready"}`} {
		var got map[string]any
		resp := p.get(t, path, "", nil)
		if resp.StatusCode != 200 {
			t.Errorf("GET %s = %d", path, resp.StatusCode)
		}
		decode(t, resp, &got)
		if jsonOf(got) != want {
			t.Errorf("GET %s = %s, want %s", path, jsonOf(got), want)
		}
	}
	resp := p.get(t, "/nope", "", nil)
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("GET /nope = %d, want 404", resp.StatusCode)
	}
}
