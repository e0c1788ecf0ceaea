package sse_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/eventsd/eventsd/agentrt"
	"github.com/eventsd/eventsd/auth"
	"github.com/eventsd/eventsd/bus"
	sseclient "github.com/eventsd/eventsd/client"
	"github.com/eventsd/eventsd/event"
	"github.com/eventsd/eventsd/internal/testplane"
	"github.com/eventsd/eventsd/routing"
	"github.com/eventsd/eventsd/sse"
	"github.com/eventsd/eventsd/tasks"
)

// rpcAnswer is a JSON-RPC response, or one frame of a streamed one.
type rpcAnswer struct {
	ID     any `json:"id"`
	Result struct {
		tasks.Response
		tasks.Task
	} `json:"result"`
	Error *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	cursor string
}

// a2aPost posts a JSON-RPC body to the agent "echo" as user, with hdr.
func (p *plane) a2aPost(t testing.TB, user, body string, hdr map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctxFor(t), http.MethodPost, p.url+"/api/v1/a2a/echo", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token(t, user))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("A2A-Version", "1.0")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// call makes a unary JSON-RPC call, which must be answered 200 with JSON.
func (p *plane) call(t *testing.T, user, body string) rpcAnswer {
	t.Helper()
	resp := p.a2aPost(t, user, body, nil)
	var ans rpcAnswer
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("%s: HTTP %d %s, want 200 JSON", body, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	decode(t, resp, &ans)
	return ans
}

// stream makes a streaming JSON-RPC call, which must be answered with SSE, and gives its frames.
func (p *plane) stream(t testing.TB, user, body string, hdr map[string]string) <-chan rpcAnswer {
	t.Helper()
	resp := p.a2aPost(t, user, body, hdr)
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		var ans any
		decode(t, resp, &ans)
		t.Fatalf("%s: %s %v, want a stream", body, ct, ans)
	}
	out := make(chan rpcAnswer, 64)
	go func() {
		defer close(out)
		r := sseclient.NewReader(resp.Body, 1<<20)
		for {
			f, err := r.Next()
			if err != nil {
				return
			}
			var ans rpcAnswer
			if json.Unmarshal([]byte(f.Data), &ans) != nil {
				ans.Error = &struct {
					Code    int    `json:"code"`
					Message string `json:"message"`
				}{0, "not JSON: " + f.Data}
			}
			ans.cursor = f.ID
			out <- ans
		}
	}()
	return out
}

// what names a stream response: "task <state>", "status <state>", "artifact <text>", or the
// error.
func (a rpcAnswer) what() string {
	r := a.Result.Response
	switch {
	case a.Error != nil:
		return fmt.Sprintf("error %d", a.Error.Code)
	case r.Task != nil:
		return "task " + r.Task.Status.State
	case r.StatusUpdate != nil:
		return "status " + r.StatusUpdate.Status.State
	case r.ArtifactUpdate != nil:
		var texts []string
		for _, p := range r.ArtifactUpdate.Artifact.Parts {
			var part struct{ Text string }
			_ = json.Unmarshal(p, &part)
			texts = append(texts, part.Text)
		}
		return "artifact " + strings.Join(texts, "")
	}
	return "nothing"
}

// collect reads a stream to its end, checking that every frame carries the request's id.
func collect(t testing.TB, frames <-chan rpcAnswer, id float64) []rpcAnswer {
	t.Helper()
	var all []rpcAnswer
	for a := range frames {
		if a.ID != id {
			t.Errorf("frame %s has id %v, want %v", a.what(), a.ID, id)
		}
		all = append(all, a)
	}
	return all
}

func whats(as []rpcAnswer) string {
	var out []string
	for _, a := range as {
		out = append(out, a.what())
	}
	return strings.Join(out, ", ")
}

// echoTask answers a message with one artifact, "echo: " and its text; a message "?" asks for
// input.
func echoTask(ctx context.Context, task *agentrt.Task) error {
	if task.Text() == "?" {
		return task.Emit(ctx, event.InputRequired{Prompt: "say more"})
	}
	part, _ := json.Marshal(map[string]string{"text": "echo: " + task.Text()})
	return task.Emit(ctx, event.ArtifactCreated{Artifact: event.Artifact{ArtifactID: "a-" + task.TaskID(), Parts: []json.RawMessage{part}}})
}

func sendBody(method string, id int, text, taskID string) string {
	msg := map[string]any{"messageId": fmt.Sprint("m-", time.Now().UnixNano()), "role": "ROLE_USER", "parts": []any{map[string]string{"text": text}}}
	if taskID != "" {
		msg["taskId"] = taskID
	}
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "method": method, "params": map[string]any{"message": msg, "configuration": map[string]any{}}})
	return string(b)
}

// TestA2AAgentCard: an agent has a card once a runtime serves it over A2A, with the runtime's
// description, streaming, a bearer JWT scheme and its JSON-RPC endpoint on this server (or
// under --public-url); an agent no runtime serves over A2A has none.
func TestA2AAgentCard(t *testing.T) {
	for _, public := range []string{"", "https://events.example.com/prefix"} {
		p := newPlane(t, sse.Config{PublicURL: public})
		const path = "/api/v1/a2a/echo/.well-known/agent-card.json"
		if _, err := p.bus.RunQueue(ctxFor(t), "echo", bus.QueueConfig{Queue: routing.Tasks, Description: "Echoes."}); err != nil {
			t.Fatal(err)
		}
		// An AG-UI runtime of an agent gives it no A2A card.
		if _, err := p.bus.RunQueue(ctxFor(t), "aguionly", bus.QueueConfig{}); err != nil {
			t.Fatal(err)
		}
		for _, agent := range []string{"nobody", "aguionly"} {
			if resp := p.get(t, "/api/v1/a2a/"+agent+"/.well-known/agent-card.json", "", nil); resp.StatusCode != http.StatusNotFound {
				t.Fatalf("card of %s: HTTP %d, want 404", agent, resp.StatusCode)
			}
		}
		var card struct {
			Name, Description   string
			SupportedInterfaces []struct{ URL, ProtocolBinding, ProtocolVersion string }
			Capabilities        struct{ Streaming bool }
			SecuritySchemes     map[string]struct {
				HTTPAuthSecurityScheme struct{ Scheme, BearerFormat string }
			}
		}
		decode(t, p.get(t, path, "", nil), &card)
		wantURL := p.url + "/api/v1/a2a/echo"
		if public != "" {
			wantURL = public + "/api/v1/a2a/echo"
		}
		if card.Name != "echo" || card.Description != "Echoes." || len(card.SupportedInterfaces) != 1 || card.SupportedInterfaces[0].URL != wantURL ||
			card.SupportedInterfaces[0].ProtocolBinding != "JSONRPC" || card.SupportedInterfaces[0].ProtocolVersion != "1.0" || !card.Capabilities.Streaming ||
			card.SecuritySchemes["bearer"].HTTPAuthSecurityScheme.Scheme != "Bearer" {
			t.Fatalf("card %+v, want echo's at %s", card, wantURL)
		}
	}
}

// TestA2ASendStreamingMessage: a message starts a task that one runtime works on; the answer
// streams the task as submitted, then its updates to completion, each a JSON-RPC response with
// the request's id and a cursor; GetTask then gives the finished task with the user's message
// in its history, and SendMessage waits for the task and answers it.
func TestA2ASendStreamingMessage(t *testing.T) {
	p := newPlane(t, sse.Config{})
	p.taskRuntime(t, agentrt.Config{}, echoTask)
	got := collect(t, p.stream(t, "alice", sendBody("SendStreamingMessage", 7, "hi", ""), nil), 7)
	if w := whats(got); w != "task TASK_STATE_SUBMITTED, status TASK_STATE_WORKING, artifact echo: hi, status TASK_STATE_COMPLETED" {
		t.Fatalf("stream: %s", w)
	}
	for _, a := range got {
		if a.cursor == "" {
			t.Errorf("frame %s has no cursor", a.what())
		}
	}
	task := got[0].Result.Response.Task
	if task.ID == "" || task.ContextID == "" || len(task.History) != 1 || task.History[0].Role != tasks.RoleUser {
		t.Fatalf("the submitted task %+v, want ids and the user's message", task)
	}
	ans := p.call(t, "alice", fmt.Sprintf(`{"jsonrpc":"2.0","id":8,"method":"GetTask","params":{"id":%q}}`, task.ID))
	if ans.Error != nil || ans.ID != float64(8) || ans.Result.Task.Status.State != tasks.StateCompleted || len(ans.Result.Task.Artifacts) != 1 {
		t.Fatalf("GetTask: %+v, want the completed task with its artifact", ans)
	}
	unary := p.call(t, "alice", sendBody("SendMessage", 9, "again", ""))
	if unary.Error != nil || unary.Result.Response.Task == nil || unary.Result.Response.Task.Status.State != tasks.StateCompleted {
		t.Fatalf("SendMessage: %+v, want the completed task", unary)
	}
}

// TestA2AInputRequired: a task that asks for input ends its stream there, and a subscriber then
// gets the task alone; the user's answer continues the same task, to its end; a finished task takes no more messages, and another
// user cannot continue it.
func TestA2AInputRequired(t *testing.T) {
	p := newPlane(t, sse.Config{})
	p.taskRuntime(t, agentrt.Config{}, echoTask)
	got := collect(t, p.stream(t, "alice", sendBody("SendStreamingMessage", 1, "?", ""), nil), 1)
	if w := whats(got); w != "task TASK_STATE_SUBMITTED, status TASK_STATE_WORKING, status TASK_STATE_INPUT_REQUIRED" {
		t.Fatalf("stream: %s", w)
	}
	id := got[0].Result.Response.Task.ID
	testplane.AwaitTaskView(t, p.js, "alice", id, p.seqOf(t, got[len(got)-1].cursor))
	subscribe := fmt.Sprintf(`{"jsonrpc":"2.0","id":2,"method":"SubscribeToTask","params":{"id":%q}}`, id)
	if w := whats(collect(t, p.stream(t, "alice", subscribe, nil), 2)); w != "task TASK_STATE_INPUT_REQUIRED" {
		t.Fatalf("subscribing to the waiting task: %s, want the task alone", w)
	}
	if ans := p.call(t, "bob", sendBody("SendMessage", 2, "mine now", id)); ans.Error == nil || ans.Error.Code != -32001 {
		t.Fatalf("bob continuing alice's task: %+v, want TaskNotFound", ans)
	}
	got = collect(t, p.stream(t, "alice", sendBody("SendStreamingMessage", 3, "more", id), nil), 3)
	if w := whats(got); w != "task TASK_STATE_INPUT_REQUIRED, status TASK_STATE_SUBMITTED, status TASK_STATE_WORKING, artifact echo: more, status TASK_STATE_COMPLETED" {
		t.Fatalf("continued stream: %s", w)
	}
	testplane.AwaitTaskView(t, p.js, "alice", id, p.seqOf(t, got[len(got)-1].cursor))
	for _, method := range []string{"SendMessage", "SendStreamingMessage"} { // answered before any stream
		if ans := p.call(t, "alice", sendBody(method, 4, "and more", id)); ans.Error == nil || ans.Error.Code != -32004 {
			t.Fatalf("%s to a finished task: %+v, want UnsupportedOperation", method, ans)
		}
	}
	ans := p.call(t, "alice", fmt.Sprintf(`{"jsonrpc":"2.0","id":5,"method":"GetTask","params":{"id":%q}}`, id))
	if h := ans.Result.Task.History; len(h) != 3 || h[0].Role != tasks.RoleUser || h[1].Role != tasks.RoleAgent || h[2].Role != tasks.RoleUser {
		t.Fatalf("history %+v, want the question, the prompt and the answer", h)
	}
}

// seqOf is the stream sequence of a cursor.
func (p *plane) seqOf(t *testing.T, cursor string) uint64 {
	t.Helper()
	c, err := routing.ParseCursor(cursor)
	if err != nil {
		t.Fatal(err)
	}
	return c.Seq
}

// TestA2ANoRuntime: a message no runtime takes within the run timeout fails its task, with a
// message saying so.
func TestA2ANoRuntime(t *testing.T) {
	p := newPlane(t, sse.Config{RunTimeout: 200 * time.Millisecond})
	got := collect(t, p.stream(t, "alice", sendBody("SendStreamingMessage", 1, "hi", ""), nil), 1)
	if w := whats(got); w != "task TASK_STATE_SUBMITTED, status TASK_STATE_FAILED" {
		t.Fatalf("stream: %s", w)
	}
	if m := got[1].Result.Response.StatusUpdate.Status.Message; m == nil || !strings.Contains(string(m.Parts[0]), "no runtime") {
		t.Fatalf("failed status %+v, want a message saying no runtime took it", got[1].Result.Response.StatusUpdate.Status)
	}
}

// TestA2ACancelTask: CancelTask reaches the runtime that works on the task, which stops: the
// answer is the cancelled task. A task that waits for the user is cancelled by eventsd; a
// finished one cannot be.
func TestA2ACancelTask(t *testing.T) {
	p := newPlane(t, sse.Config{})
	p.taskRuntime(t, agentrt.Config{}, func(ctx context.Context, task *agentrt.Task) error {
		if task.Text() == "?" {
			return task.Emit(ctx, event.InputRequired{Prompt: "say more"})
		}
		<-ctx.Done() // works until cancelled
		return context.Cause(ctx)
	})
	frames := p.stream(t, "alice", sendBody("SendStreamingMessage", 1, "work", ""), nil)
	first := <-frames
	if w := first.what(); w != "task TASK_STATE_SUBMITTED" {
		t.Fatalf("first frame %s", w)
	}
	id := first.Result.Response.Task.ID
	if w := (<-frames).what(); w != "status TASK_STATE_WORKING" {
		t.Fatalf("second frame %s, want working", w)
	}
	cancelBody := fmt.Sprintf(`{"jsonrpc":"2.0","id":2,"method":"CancelTask","params":{"id":%q}}`, id)
	if ans := p.call(t, "bob", cancelBody); ans.Error == nil || ans.Error.Code != -32001 {
		t.Fatalf("bob cancelling alice's task: %+v, want TaskNotFound", ans)
	}
	ans := p.call(t, "alice", cancelBody)
	if ans.Error != nil || ans.Result.Task.Status.State != tasks.StateCanceled {
		t.Fatalf("CancelTask: %+v, want the cancelled task", ans)
	}
	rest := collect(t, frames, 1)
	if w := whats(rest); w != "status TASK_STATE_CANCELED" {
		t.Fatalf("the stream after the cancel: %s", w)
	}
	testplane.AwaitTaskView(t, p.js, "alice", id, p.seqOf(t, rest[0].cursor))
	if ans := p.call(t, "alice", cancelBody); ans.Error == nil || ans.Error.Code != -32002 {
		t.Fatalf("cancelling a cancelled task: %+v, want TaskNotCancelable", ans)
	}

	waiting := collect(t, p.stream(t, "alice", sendBody("SendStreamingMessage", 3, "?", ""), nil), 3)
	id = waiting[0].Result.Response.Task.ID
	testplane.AwaitTaskView(t, p.js, "alice", id, p.seqOf(t, waiting[len(waiting)-1].cursor))
	ans = p.call(t, "alice", fmt.Sprintf(`{"jsonrpc":"2.0","id":4,"method":"CancelTask","params":{"id":%q}}`, id))
	if ans.Error != nil || ans.Result.Task.Status.State != tasks.StateCanceled {
		t.Fatalf("cancelling a task that waits for input: %+v, want it cancelled", ans)
	}
}

// TestA2AGetTask: GetTask gives the caller's task as A2A 1.0's Task, with historyLength
// honoured; another user's task, or another agent's, is TaskNotFound; bad requests are JSON-RPC
// errors, not HTTP errors.
func TestA2AGetTask(t *testing.T) {
	p := newPlane(t, sse.Config{})
	subject := "a2a." + userTok(t, "alice") + "."
	p.publishNATS(t, subject+"TASK_SUBMITTED", `{"type":"TASK_SUBMITTED","timestamp":"2026-11-30T10:00:00Z","taskId":"task1","contextId":"c1","agentName":"echo","input":{"messageId":"u1","role":"user","parts":[{"kind":"text","text":"hi"}]}}`)
	p.publishNATS(t, subject+"AGENT_MESSAGE", `{"type":"AGENT_MESSAGE","timestamp":"2026-11-30T10:00:01Z","taskId":"task1","contextId":"c1","messageId":"a1","content":"hello"}`)
	p.publishNATS(t, subject+"TASK_SUBMITTED", `{"type":"TASK_SUBMITTED","timestamp":"2026-11-30T10:00:00Z","taskId":"task2","contextId":"c1","agentName":"other"}`)
	seq := p.publishNATS(t, subject+"TASK_STATUS_UPDATE", `{"type":"TASK_STATUS_UPDATE","timestamp":"2026-11-30T10:00:02Z","taskId":"task1","contextId":"c1","state":"TASK_STATE_COMPLETED"}`)
	testplane.AwaitTaskView(t, p.js, "alice", "task1", seq)
	ans := p.call(t, "alice", `{"jsonrpc":"2.0","id":1,"method":"GetTask","params":{"id":"task1","historyLength":1}}`)
	task := ans.Result.Task
	if ans.ID != float64(1) || task.Status.State != tasks.StateCompleted || len(task.History) != 1 || task.History[0].MessageID != "a1" {
		t.Fatalf("GetTask: %+v, want the completed task with its last message", ans)
	}
	for _, tt := range []struct {
		user, body string
		code       int
	}{
		{"bob", `{"jsonrpc":"2.0","id":2,"method":"GetTask","params":{"id":"task1"}}`, -32001},
		{"alice", `{"jsonrpc":"2.0","id":2,"method":"GetTask","params":{"id":"task2"}}`, -32001},
		{"alice", `{"jsonrpc":"2.0","id":3,"method":"GetTask","params":{}}`, -32602},
		{"alice", `{"jsonrpc":"2.0","id":4,"method":"NoSuchMethod"}`, -32601},
		{"alice", `{"id":5,"method":"GetTask"}`, -32600},
		{"alice", `{"jsonrpc":"2.0","id":{"x":1},"method":"GetTask","params":{"id":"task1"}}`, -32600},
		{"alice", `{"jsonrpc":"2.0","method":"GetTask","params":{"id":"task1"}}`, -32600},
		{"alice", `[{"jsonrpc":"2.0","id":1,"method":"GetTask","params":{"id":"task1"}}]`, -32600},
		{"alice", `{"jsonrpc":"2.0","id":1,"method":1}`, -32600},
		{"alice", `{"jsonrpc":"2.0","id":1,"method":"CreateTaskPushNotificationConfig","params":{}}`, -32003},
		{"alice", `{"jsonrpc":"2.0","id":1,"method":"GetExtendedAgentCard","params":{}}`, -32007},
		{"alice", `{`, -32700},
	} {
		if ans := p.call(t, tt.user, tt.body); ans.Error == nil || ans.Error.Code != tt.code {
			t.Errorf("%s as %s: %+v, want error %d", tt.body, tt.user, ans, tt.code)
		}
	}
}

// TestA2ABadMessages: a message that is not a user's message of valid parts, or a request of
// another A2A version, is a JSON-RPC error, and starts no task.
func TestA2ABadMessages(t *testing.T) {
	p := newPlane(t, sse.Config{})
	before := p.msgs(t, routing.StreamA2A)
	for _, params := range []string{
		`{}`,
		`{"message":"hi"}`,
		`{"message":{"role":"ROLE_USER","parts":[{"text":"hi"}]}}`,
		`{"message":{"messageId":"m","role":"ROLE_AGENT","parts":[{"text":"hi"}]}}`,
		`{"message":{"messageId":"m","role":"user","parts":[{"text":"hi"}]}}`,
		`{"message":{"messageId":"m","role":"ROLE_USER","parts":[]}}`,
		`{"message":{"messageId":"m","role":"ROLE_USER","parts":[{"text":1}]}}`,
		`{"message":{"messageId":"m","role":"ROLE_USER","parts":[{"text":"a","url":"b"}]}}`,
		`{"message":{"messageId":"m","role":"ROLE_USER","parts":[{"kind":"text"}]}}`,
		`{"message":{"messageId":"` + strings.Repeat("m", bus.MaxRunIDLen+1) + `","role":"ROLE_USER","parts":[{"text":"hi"}]}}`,
	} {
		for _, method := range []string{"SendMessage", "SendStreamingMessage"} {
			body := `{"jsonrpc":"2.0","id":1,"method":"` + method + `","params":` + params + `}`
			if ans := p.call(t, "alice", body); ans.Error == nil || ans.Error.Code != -32602 {
				t.Errorf("%s: %+v, want InvalidParams", body, ans)
			}
		}
	}
	for _, tt := range []struct {
		body string
		code int
	}{
		{sendBody("SendMessage", 1, "hi", "no-such-task"), -32001},
	} {
		if ans := p.call(t, "alice", tt.body); ans.Error == nil || ans.Error.Code != tt.code {
			t.Errorf("%s: %+v, want %d", tt.body, ans, tt.code)
		}
	}
	resp := p.a2aPost(t, "alice", sendBody("SendMessage", 1, "hi", ""), map[string]string{"A2A-Version": "0.3"})
	var ans rpcAnswer
	decode(t, resp, &ans)
	if ans.Error == nil || ans.Error.Code != -32009 {
		t.Errorf("A2A-Version 0.3: %+v, want VersionNotSupported", ans)
	}
	if after := p.msgs(t, routing.StreamA2A); after != before {
		t.Errorf("bad messages stored %d events", after-before)
	}
}

// TestA2ASubscribeToTask: SubscribeToTask answers the task first, then its updates, each a
// JSON-RPC response with the request's id and an id: cursor, and ends when the task is done; a
// re-subscribe with Last-Event-ID continues after it; a done task is UnsupportedOperation.
func TestA2ASubscribeToTask(t *testing.T) {
	p := newPlane(t, sse.Config{})
	subject := "a2a." + userTok(t, "alice") + "."
	seq := p.publishNATS(t, subject+"TASK_SUBMITTED", `{"type":"TASK_SUBMITTED","timestamp":"2026-11-30T10:00:00Z","taskId":"task1","contextId":"c1","agentName":"echo"}`)
	testplane.AwaitTaskView(t, p.js, "alice", "task1", seq)
	body := `{"jsonrpc":"2.0","id":7,"method":"SubscribeToTask","params":{"id":"task1"}}`
	frames := p.stream(t, "alice", body, nil)
	first := <-frames
	if first.what() != "task TASK_STATE_SUBMITTED" || first.ID != float64(7) || first.cursor == "" {
		t.Fatalf("first frame %+v, want the task with id 7 and a cursor", first)
	}
	p.publishNATS(t, subject+"TASK_STATUS_UPDATE", `{"type":"TASK_STATUS_UPDATE","timestamp":"2026-11-30T10:00:01Z","taskId":"task1","contextId":"c1","state":"TASK_STATE_WORKING"}`)
	working := <-frames
	if working.what() != "status TASK_STATE_WORKING" {
		t.Fatalf("second frame %s, want the working status", working.what())
	}
	p.publishNATS(t, subject+"ARTIFACT_CREATED", `{"type":"ARTIFACT_CREATED","timestamp":"2026-11-30T10:00:02Z","taskId":"task1","contextId":"c1","artifact":{"artifactId":"a","parts":[{"text":"x"}]}}`)
	seq = p.publishNATS(t, subject+"TASK_STATUS_UPDATE", `{"type":"TASK_STATUS_UPDATE","timestamp":"2026-11-30T10:00:03Z","taskId":"task1","contextId":"c1","state":"TASK_STATE_COMPLETED"}`)
	if rest := whats(collect(t, frames, 7)); rest != "artifact x, status TASK_STATE_COMPLETED" {
		t.Fatalf("then %s, want the artifact and completed, then the end", rest)
	}
	for _, tc := range []struct{ after, cursor, want string }{
		{"the task", first.cursor, "status TASK_STATE_WORKING, artifact x, status TASK_STATE_COMPLETED"},
		{"working", working.cursor, "artifact x, status TASK_STATE_COMPLETED"},
	} {
		if got := whats(collect(t, p.stream(t, "alice", body, map[string]string{"Last-Event-ID": tc.cursor}), 7)); got != tc.want {
			t.Fatalf("resumed after %s: %s, want %s", tc.after, got, tc.want)
		}
	}
	c, err := routing.ParseCursor(working.cursor)
	if err != nil {
		t.Fatal(err)
	}
	var ans rpcAnswer
	decode(t, p.a2aPost(t, "alice", body, map[string]string{"Last-Event-ID": routing.Cursor{Seq: seq, Epoch: c.Epoch}.String()}), &ans)
	if ans.Error == nil || ans.Error.Code != -32004 {
		t.Fatalf("resumed after the last update of a done task: %+v, want UnsupportedOperation", ans)
	}
	testplane.AwaitTaskView(t, p.js, "alice", "task1", seq)
	if ans := p.call(t, "alice", body); ans.Error == nil || ans.Error.Code != -32004 {
		t.Fatalf("subscribing to a done task: %+v, want UnsupportedOperation", ans)
	}
	if ans := p.call(t, "bob", body); ans.Error == nil || ans.Error.Code != -32001 {
		t.Fatalf("bob subscribing to alice's task: %+v, want TaskNotFound", ans)
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

// BenchmarkSendStreamingMessage is one A2A message's round trip over HTTP: stored, taken by a
// runtime on its own NATS connection, answered with one artifact, and streamed back to
// completion (four frames).
func BenchmarkSendStreamingMessage(b *testing.B) {
	p := newPlane(b, sse.Config{})
	p.taskRuntime(b, agentrt.Config{}, echoTask)
	for b.Loop() {
		if got := collect(b, p.stream(b, "alice", sendBody("SendStreamingMessage", 1, "hi", ""), nil), 1); len(got) != 4 {
			b.Fatalf("stream: %s", whats(got))
		}
	}
}

// TestA2AConcurrentContinuations: of two messages that continue a waiting task at once, one
// continues it and the other is refused; the one that continued it runs.
func TestA2AConcurrentContinuations(t *testing.T) {
	p := newPlane(t, sse.Config{})
	p.taskRuntime(t, agentrt.Config{}, echoTask)
	got := collect(t, p.stream(t, "alice", sendBody("SendStreamingMessage", 1, "?", ""), nil), 1)
	id := got[0].Result.Response.Task.ID
	answers := make(chan rpcAnswer, 2)
	for _, text := range []string{"A", "B"} {
		go func() {
			body := strings.Replace(sendBody("SendMessage", 2, text, id), `"configuration":{}`, `"configuration":{"returnImmediately":true}`, 1)
			resp := p.a2aPost(t, "alice", body, nil)
			var ans rpcAnswer
			_ = json.NewDecoder(resp.Body).Decode(&ans)
			answers <- ans
		}()
	}
	a, b := <-answers, <-answers
	if (a.Error == nil) == (b.Error == nil) || a.Error != nil && a.Error.Code != -32004 || b.Error != nil && b.Error.Code != -32004 {
		t.Fatalf("answers %+v and %+v, want one task and one UnsupportedOperation", a, b)
	}
	p.awaitDone(t, "alice", id)
	done := p.call(t, "alice", fmt.Sprintf(`{"jsonrpc":"2.0","id":3,"method":"GetTask","params":{"id":%q}}`, id))
	task := done.Result.Task
	if task.Status.State != tasks.StateCompleted || len(task.Artifacts) != 1 || len(task.History) != 3 {
		t.Fatalf("the continued task: %+v, want it completed with one answer echoed", task)
	}
}

// awaitDone waits for a task of user to be done: a SubscribeToTask that streams, to its end,
// until one is refused.
func (p *plane) awaitDone(t *testing.T, user, id string) {
	t.Helper()
	body := fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"SubscribeToTask","params":{"id":%q}}`, id)
	for {
		resp := p.a2aPost(t, user, body, nil)
		if resp.Header.Get("Content-Type") != "text/event-stream" {
			var ans rpcAnswer
			decode(t, resp, &ans)
			if ans.Error == nil || ans.Error.Code != -32004 {
				t.Fatalf("subscribing to %s: %+v", id, ans)
			}
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body) // the task goes on to its end, or its next wait
	}
}

// TestA2AStoppedBeforeARuntime: a message no runtime has taken when its eventsd stops ends its
// task in TASK_STATE_FAILED, rather than leave it submitted for ever; a SendMessage waiting
// for it is answered with an error, and a stream ends with one, not as if the task were done.
func TestA2AStoppedBeforeARuntime(t *testing.T) {
	p := newPlane(t, sse.Config{})
	h, err := sse.NewHandler(sse.Config{Broker: p.bus, Verifier: auth.NewVerifier(testplane.Secret)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	post := func(body string) <-chan rpcAnswer {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/v1/a2a/echo", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token(t, "alice"))
		req.Header.Set("Content-Type", "application/json")
		out := make(chan rpcAnswer, 1)
		go func() {
			var ans rpcAnswer
			if resp, err := http.DefaultClient.Do(req); err == nil {
				_ = json.NewDecoder(resp.Body).Decode(&ans)
				resp.Body.Close()
			}
			out <- ans
		}()
		return out
	}
	immediate := strings.Replace(sendBody("SendMessage", 1, "hi", ""), `"configuration":{}`, `"configuration":{"returnImmediately":true}`, 1)
	ans := <-post(immediate)
	if ans.Error != nil || ans.Result.Response.Task == nil {
		t.Fatalf("SendMessage: %+v, want the submitted task", ans)
	}
	id := ans.Result.Response.Task.ID
	testplane.AwaitTaskView(t, p.js, "alice", id, 1)
	feed, err := p.bus.Subscribe(ctxFor(t), routing.Subscription{Channel: routing.A2A, User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	defer feed.Close()
	waiting := post(sendBody("SendMessage", 2, "hi", ""))
	for submitted := false; !submitted; { // the waiting message is stored: its handler follows it
		ev, err := feed.Next(ctxFor(t))
		if err != nil {
			t.Fatal(err)
		}
		submitted = strings.Contains(string(ev.Data), "TASK_SUBMITTED") && !strings.Contains(string(ev.Data), id)
	}
	req, _ := http.NewRequestWithContext(ctxFor(t), http.MethodPost, srv.URL+"/api/v1/a2a/echo", strings.NewReader(sendBody("SendStreamingMessage", 3, "hi", "")))
	req.Header.Set("Authorization", "Bearer "+token(t, "alice"))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	frames := sseclient.NewReader(resp.Body, 1<<20)
	if f, err := frames.Next(); err != nil || !strings.Contains(f.Data, "TASK_STATE_SUBMITTED") {
		t.Fatalf("the stream's first frame: %+v %v, want the submitted task", f, err)
	}
	h.Close()
	if ans := <-waiting; ans.Error == nil || ans.Error.Code != -32603 {
		t.Errorf("the waiting SendMessage: %+v, want an internal error saying eventsd stops", ans)
	}
	if f, err := frames.Next(); err != nil || !strings.Contains(f.Data, `"code":-32603`) || !strings.Contains(f.Data, `"id":3`) {
		t.Errorf("the stream's last frame: %+v %v, want an error with the request's id saying eventsd stops", f, err)
	}
	view, _, err := p.bus.TaskView(ctxFor(t), "alice", id)
	if err != nil || view.Task.Status.State != tasks.StateFailed {
		t.Fatalf("the task after its eventsd stopped: %+v %v, want failed", view, err)
	}
}

// TestA2ARetriedContinuation: a continuation sent again, the same message, continues the task
// again: it is no duplicate that would leave the task submitted with nothing to run.
func TestA2ARetriedContinuation(t *testing.T) {
	p := newPlane(t, sse.Config{})
	p.taskRuntime(t, agentrt.Config{}, echoTask)
	got := collect(t, p.stream(t, "alice", sendBody("SendStreamingMessage", 1, "?", ""), nil), 1)
	id := got[0].Result.Response.Task.ID
	again := sendBody("SendMessage", 2, "?", id) // one message id: the same message twice
	for i := range 2 {
		if ans := p.call(t, "alice", again); ans.Error != nil || ans.Result.Response.Task.Status.State != tasks.StateInputRequired {
			t.Fatalf("sending it the %d. time: %+v, want the task asking again", i+1, ans)
		}
	}
}

// cancelling is a Broker whose task reads are followed at once by a cancel of the task, as if
// another client's CancelTask came in between.
type cancelling struct{ *bus.Bus }

func (c cancelling) TaskView(ctx context.Context, user, taskID string) (*tasks.View, uint64, error) {
	v, at, err := c.Bus.TaskView(ctx, user, taskID)
	if err == nil && !tasks.Terminal(v.Task.Status.State) {
		ev := event.TaskStatusUpdate{TaskID: taskID, ContextID: v.Task.ContextID, State: tasks.StateCanceled}
		_, err = c.Bus.PublishTaskEvent(ctx, user, v.Task.ContextID, taskID, ev, "")
	}
	return v, at, err
}

// TestA2AContinuationOfACancelledTask: a continuation whose task is cancelled between its check
// and its own first event is answered with the cancelled task: it does not wait for ever.
func TestA2AContinuationOfACancelledTask(t *testing.T) {
	p := newPlane(t, sse.Config{})
	p.taskRuntime(t, agentrt.Config{}, echoTask)
	got := collect(t, p.stream(t, "alice", sendBody("SendStreamingMessage", 1, "?", ""), nil), 1)
	id := got[0].Result.Response.Task.ID
	h, err := sse.NewHandler(sse.Config{Broker: cancelling{p.bus}, Verifier: auth.NewVerifier(testplane.Secret)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	defer h.Close()
	req, _ := http.NewRequestWithContext(ctxFor(t), http.MethodPost, srv.URL+"/api/v1/a2a/echo", strings.NewReader(sendBody("SendMessage", 2, "more", id)))
	req.Header.Set("Authorization", "Bearer "+token(t, "alice"))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var ans rpcAnswer
	decode(t, resp, &ans)
	if ans.Error != nil || ans.Result.Response.Task == nil || ans.Result.Response.Task.Status.State != tasks.StateCanceled {
		t.Fatalf("the continuation: %+v, want the cancelled task", ans)
	}
}

// TestA2AStreamsCounted: an A2A answer's stream counts as one of the node's streams in the
// metrics, closed with why it ended.
func TestA2AStreamsCounted(t *testing.T) {
	m := a2aClosed{reasons: make(chan string, 4)}
	p := newPlane(t, sse.Config{Metrics: m})
	p.taskRuntime(t, agentrt.Config{}, echoTask)
	collect(t, p.stream(t, "alice", sendBody("SendStreamingMessage", 1, "hi", ""), nil), 1)
	if reason := <-m.reasons; reason != "settled" {
		t.Fatalf("closed for %q, want settled", reason)
	}
}

// a2aClosed hands over why each A2A stream closed.
type a2aClosed struct {
	sse.NopMetrics
	reasons chan string
}

func (m a2aClosed) StreamClosed(c routing.Channel, reason string) {
	if c == routing.A2A {
		m.reasons <- reason
	}
}
