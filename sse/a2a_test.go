package sse_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	sseclient "github.com/eventsd/eventsd/client"
	"github.com/eventsd/eventsd/routing"
	"github.com/eventsd/eventsd/sse"
)

// TestA2AAgentCard: an agent's card names its JSON-RPC endpoint on this server, with streaming
// and a bearer JWT scheme.
func TestA2AAgentCard(t *testing.T) {
	p := newPlane(t, sse.Config{})
	resp := p.get(t, "/api/v1/a2a/echo/.well-known/agent-card.json", "", nil)
	var card struct {
		Name                string
		SupportedInterfaces []struct{ URL, ProtocolBinding, ProtocolVersion string }
		Capabilities        struct{ Streaming bool }
	}
	decode(t, resp, &card)
	if card.Name != "echo" || len(card.SupportedInterfaces) != 1 || card.SupportedInterfaces[0].URL != p.url+"/api/v1/a2a/echo" ||
		card.SupportedInterfaces[0].ProtocolBinding != "JSONRPC" || card.SupportedInterfaces[0].ProtocolVersion != "1.0" || !card.Capabilities.Streaming {
		t.Fatalf("card %+v", card)
	}
}

// TestA2AGetTask: GetTask gives the caller's task as A2A 1.0's Task; another user's is
// TaskNotFound; bad requests are JSON-RPC errors, not HTTP errors.
func TestA2AGetTask(t *testing.T) {
	p := newPlane(t, sse.Config{})
	p.publishNATS(t, "a2a."+userTok(t, "alice")+".TASK_SUBMITTED", `{"type":"TASK_SUBMITTED","timestamp":"2026-11-30T10:00:00Z","taskId":"task1","contextId":"c1","agentName":"echo"}`)
	c := p.open(t, streamPath(routing.A2A), token(t, "alice"), nil)
	p.publishNATS(t, "a2a."+userTok(t, "alice")+".TASK_STATUS_UPDATE", `{"type":"TASK_STATUS_UPDATE","timestamp":"2026-11-30T10:00:01Z","taskId":"task1","contextId":"c1","state":"TASK_STATE_COMPLETED"}`)
	c.next(t) // stored and delivered; the view follows the same stream
	rpc := func(user, body string) map[string]any {
		code, ans := p.post(t, "/api/v1/a2a/echo", token(t, user), "application/json", body)
		if code != http.StatusOK {
			t.Fatalf("%s: HTTP %d %v", body, code, ans)
		}
		return ans
	}
	var ans map[string]any
	for {
		ans = rpc("alice", `{"jsonrpc":"2.0","id":1,"method":"GetTask","params":{"id":"task1"}}`)
		if b, _ := json.Marshal(ans); strings.Contains(string(b), "TASK_STATE_COMPLETED") {
			break
		}
	}
	if ans["id"] != float64(1) {
		t.Fatalf("answer %v, want id 1", ans)
	}
	for _, tt := range []struct {
		user, body string
		code       float64
	}{
		{"bob", `{"jsonrpc":"2.0","id":2,"method":"GetTask","params":{"id":"task1"}}`, -32001},
		{"alice", `{"jsonrpc":"2.0","id":3,"method":"GetTask","params":{}}`, -32602},
		{"alice", `{"jsonrpc":"2.0","id":4,"method":"NoSuchMethod"}`, -32601},
		{"alice", `{"id":5,"method":"GetTask"}`, -32600},
		{"alice", `{`, -32700},
	} {
		ans := rpc(tt.user, tt.body)
		e, _ := ans["error"].(map[string]any)
		if e == nil || e["code"] != tt.code {
			t.Errorf("%s as %s: %v, want error %v", tt.body, tt.user, ans, tt.code)
		}
	}
}

func userTok(t *testing.T, user string) string {
	t.Helper()
	tok, err := routing.UserToken(user)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestA2ASubscribeToTask: SubscribeToTask answers the task first, then its updates, each a
// JSON-RPC response with the request's id and an id: cursor, and ends when the task is done; a
// re-subscribe with Last-Event-ID continues after it; a done task is UnsupportedOperation.
func TestA2ASubscribeToTask(t *testing.T) {
	p := newPlane(t, sse.Config{})
	subject := "a2a." + userTok(t, "alice") + "."
	p.publishNATS(t, subject+"TASK_SUBMITTED", `{"type":"TASK_SUBMITTED","timestamp":"2026-11-30T10:00:00Z","taskId":"task1","contextId":"c1","agentName":"echo"}`)
	body := `{"jsonrpc":"2.0","id":7,"method":"SubscribeToTask","params":{"id":"task1"}}`
	open := func(lastID string) *http.Response {
		for {
			req, _ := http.NewRequest(http.MethodPost, p.url+"/api/v1/a2a/echo", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+token(t, "alice"))
			req.Header.Set("Content-Type", "application/json")
			if lastID != "" {
				req.Header.Set("Last-Event-ID", lastID)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Header.Get("Content-Type") == "text/event-stream" {
				t.Cleanup(func() { resp.Body.Close() })
				return resp
			}
			resp.Body.Close() // the view has not the task yet
		}
	}
	frames := sseFrames(t, open(""))
	first := <-frames
	if !strings.Contains(first.Data, `"id":7`) || !strings.Contains(first.Data, `"result":{"task":{"id":"task1"`) || first.ID == "" {
		t.Fatalf("first frame %+v, want the task with id 7 and a cursor", first)
	}
	p.publishNATS(t, subject+"TASK_STATUS_UPDATE", `{"type":"TASK_STATUS_UPDATE","timestamp":"2026-11-30T10:00:01Z","taskId":"task1","contextId":"c1","state":"TASK_STATE_WORKING"}`)
	working := <-frames
	if !strings.Contains(working.Data, `"statusUpdate"`) || !strings.Contains(working.Data, "TASK_STATE_WORKING") {
		t.Fatalf("second frame %+v, want the working status", working)
	}
	p.publishNATS(t, subject+"TASK_STATUS_UPDATE", `{"type":"TASK_STATUS_UPDATE","timestamp":"2026-11-30T10:00:02Z","taskId":"task1","contextId":"c1","state":"TASK_STATE_COMPLETED"}`)
	if done := <-frames; !strings.Contains(done.Data, "TASK_STATE_COMPLETED") {
		t.Fatalf("third frame %+v, want completed", done)
	}
	if f, ok := <-frames; ok {
		t.Fatalf("after completed: %+v, want the answer's end", f)
	}
	for done := false; !done; {
		req, _ := http.NewRequest(http.MethodPost, p.url+"/api/v1/a2a/echo", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token(t, "alice"))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Header.Get("Content-Type") == "application/json" { // else the view has not the task done yet
			var ans struct{ Error struct{ Code int } }
			decode(t, resp, &ans)
			if done = ans.Error.Code == -32004; !done {
				t.Fatalf("subscribing to a done task: %+v, want UnsupportedOperation", ans)
			}
		}
		resp.Body.Close()
	}
	code, ans := p.post(t, "/api/v1/a2a/echo", token(t, "bob"), "application/json", body)
	if e, _ := ans["error"].(map[string]any); code != http.StatusOK || e == nil || e["code"] != float64(-32001) {
		t.Fatalf("bob subscribing to alice's task: %d %v, want TaskNotFound", code, ans)
	}
}

// sseFrames reads an answer's frames on a channel, closed at its end.
func sseFrames(t *testing.T, resp *http.Response) <-chan sseclient.Frame {
	t.Helper()
	out := make(chan sseclient.Frame, 16)
	go func() {
		defer close(out)
		r := sseclient.NewReader(resp.Body, 1<<20)
		for {
			f, err := r.Next()
			if err != nil {
				return
			}
			out <- f
		}
	}()
	return out
}
