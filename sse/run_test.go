package sse_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/eventsd/eventsd/agentrt"
	"github.com/eventsd/eventsd/bus"
	sseclient "github.com/eventsd/eventsd/client"
	"github.com/eventsd/eventsd/event"
	"github.com/eventsd/eventsd/routing"
	"github.com/eventsd/eventsd/sse"
)

// runtime serves the agent "echo" with h on a connection of its own until the test ends, or
// until kill closes that connection (as a runtime that dies would).
func (p *plane) runtime(t testing.TB, cfg agentrt.Config, h agentrt.Handler) (kill func()) {
	t.Helper()
	return p.serveAgent(t, cfg, func(ctx context.Context, cfg agentrt.Config) error { return agentrt.Serve(ctx, cfg, h) })
}

// taskRuntime serves the agent "echo" over A2A with h, as runtime does over AG-UI.
func (p *plane) taskRuntime(t testing.TB, cfg agentrt.Config, h agentrt.TaskHandler) (kill func()) {
	t.Helper()
	return p.serveAgent(t, cfg, func(ctx context.Context, cfg agentrt.Config) error { return agentrt.ServeTasks(ctx, cfg, h) })
}

// serveAgent runs serve for the agent "echo" on a connection of its own until the test ends,
// or until kill closes that connection.
func (p *plane) serveAgent(t testing.TB, cfg agentrt.Config, serve func(context.Context, agentrt.Config) error) (kill func()) {
	t.Helper()
	b, err := bus.Connect(ctxFor(t), bus.Config{URL: p.NATSURL, Name: "runtime"})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Agent, cfg.Bus = "echo", b
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = serve(ctx, cfg)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		_ = b.Close()
	})
	return func() { _ = b.Close() }
}

// echoText answers each run with one assistant message: "echo: " and the run id.
func echoText(ctx context.Context, run *agentrt.Run) error {
	id := "m-" + run.RunID()
	for _, ev := range []event.Event{
		event.TextMessageStart{MessageID: id, Role: "assistant"},
		event.TextMessageContent{MessageID: id, Delta: "echo: " + run.RunID()},
		event.TextMessageEnd{MessageID: id},
	} {
		if err := run.Emit(ctx, ev); err != nil {
			return err
		}
	}
	return nil
}

func runInput(thread, run string) string {
	return fmt.Sprintf(`{"threadId":%q,"runId":%q,"state":{},"messages":[{"id":"u1","role":"user","content":"hi"}],"tools":[],"context":[],"forwardedProps":{}}`, thread, run)
}

// startRun posts a run request as HttpAgent does and returns the response, its body open.
func (p *plane) startRun(t *testing.T, tok, agent, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctxFor(t), http.MethodPost, p.url+"/api/v1/agui/agents/"+agent+"/run", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// runEvents reads a run's answer to its end: the events of its data lines.
func runEvents(t *testing.T, resp *http.Response) []map[string]any {
	t.Helper()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("run answered %d %s, want 200 text/event-stream", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var evs []map[string]any
	r := sseclient.NewReader(bufio.NewReader(resp.Body), 1<<20)
	for {
		f, err := r.Next()
		if err != nil {
			return evs // the answer ended
		}
		var ev map[string]any
		if err := json.Unmarshal([]byte(f.Data), &ev); err != nil {
			t.Fatalf("frame data %q is not JSON", f.Data)
		}
		evs = append(evs, ev)
	}
}

func types(evs []map[string]any) []string {
	var ts []string
	for _, ev := range evs {
		ts = append(ts, fmt.Sprint(ev["type"]))
	}
	return ts
}

// TestRunThroughHTTP: a run started as the stock client starts one is answered with its events,
// in order, from RUN_STARTED to RUN_FINISHED, and the answer ends. Only RUN_STARTED and
// RUN_FINISHED carry threadId and runId; the others go without the attribution fields their
// types do not define.
func TestRunThroughHTTP(t *testing.T) {
	p := newPlane(t, sse.Config{})
	p.runtime(t, agentrt.Config{}, echoText)
	evs := runEvents(t, p.startRun(t, token(t, "alice"), "echo", runInput("t1", "r1")))
	want := []string{"RUN_STARTED", "TEXT_MESSAGE_START", "TEXT_MESSAGE_CONTENT", "TEXT_MESSAGE_END", "RUN_FINISHED"}
	if got := types(evs); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("events %v, want %v", got, want)
	}
	for _, ev := range evs {
		_, thread := ev["threadId"]
		_, run := ev["runId"]
		own := ev["type"] == "RUN_STARTED" || ev["type"] == "RUN_FINISHED"
		if thread != own || run != own || own && (ev["threadId"] != "t1" || ev["runId"] != "r1") {
			t.Errorf("%v: threadId and runId present %v, %v; want %v (of t1 and r1)", ev, thread, run, own)
		}
	}
	if evs[2]["delta"] != "echo: r1" {
		t.Fatalf("content %v, want echo: r1", evs[2])
	}
}

// TestRunsOfTwoThreads: two runs of one user on two threads at the same time each get only
// their own events.
func TestRunsOfTwoThreads(t *testing.T) {
	p := newPlane(t, sse.Config{})
	p.runtime(t, agentrt.Config{}, echoText)
	tok := token(t, "alice")
	a := p.startRun(t, tok, "echo", runInput("t1", "r1"))
	b := p.startRun(t, tok, "echo", runInput("t2", "r2"))
	for _, tt := range []struct {
		resp *http.Response
		run  string
	}{{a, "r1"}, {b, "r2"}} {
		evs := runEvents(t, tt.resp)
		if len(evs) != 5 || evs[2]["delta"] != "echo: "+tt.run || evs[0]["runId"] != tt.run || evs[4]["runId"] != tt.run {
			t.Fatalf("run %s got %v, want its own five events", tt.run, evs)
		}
	}
}

// TestRunWithoutRuntime: with no runtime of the agent, the run ends after the run timeout with
// RUN_ERROR no_runtime (the first frame, which the stock verifier accepts), the request leaves
// the queue, and the thread's record shows the run's end.
func TestRunWithoutRuntime(t *testing.T) {
	p := newPlane(t, sse.Config{RunTimeout: 100 * time.Millisecond})
	thread := p.open(t, streamPath(routing.AGUI), token(t, "alice"), nil)
	evs := runEvents(t, p.startRun(t, token(t, "alice"), "nobody", runInput("t1", "r1")))
	if len(evs) != 1 || evs[0]["type"] != "RUN_ERROR" || evs[0]["code"] != sse.CodeNoRuntime {
		t.Fatalf("events %v, want one RUN_ERROR %s", evs, sse.CodeNoRuntime)
	}
	var stored map[string]any
	if err := json.Unmarshal([]byte(thread.next(t).Data), &stored); err != nil || stored["code"] != sse.CodeNoRuntime || stored["runId"] != "r1" {
		t.Fatalf("alice's agui stream got %v, want the RUN_ERROR of r1", stored)
	}
	if n := p.msgs(t, routing.StreamRuns); n != 0 {
		t.Fatalf("RUNS holds %d requests, want 0", n)
	}
}

// TestRunRuntimeLost: a runtime that dies mid-run (its connection gone) ends the run with
// RUN_ERROR runtime_lost after what it had sent.
func TestRunRuntimeLost(t *testing.T) {
	p := newPlane(t, sse.Config{})
	running := make(chan struct{})
	kill := p.runtime(t, agentrt.Config{AckWait: time.Second}, func(ctx context.Context, run *agentrt.Run) error {
		if err := run.Emit(ctx, event.TextMessageStart{MessageID: "m1", Role: "assistant"}); err != nil {
			return err
		}
		close(running)
		<-ctx.Done()
		return ctx.Err()
	})
	resp := p.startRun(t, token(t, "alice"), "echo", runInput("t1", "r1"))
	<-running
	kill()
	evs := runEvents(t, resp)
	want := "RUN_STARTED TEXT_MESSAGE_START RUN_ERROR"
	if got := strings.Join(types(evs), " "); got != want || evs[2]["code"] != sse.CodeRuntimeLost {
		t.Fatalf("events %v, want %s with code %s", evs, want, sse.CodeRuntimeLost)
	}
}

// TestRunBadRequests: a run request that is not what the stock client sends is refused with a
// JSON error naming the fault, and nothing is queued.
func TestRunBadRequests(t *testing.T) {
	p := newPlane(t, sse.Config{MaxRunBody: 4096})
	tok := token(t, "alice")
	tests := []struct {
		name, agent, contentType, body string
		status                         int
		field                          string
	}{
		{"agent with a dot", "a.b", "application/json", runInput("t1", "r1"), http.StatusNotFound, "agent"},
		{"not JSON", "echo", "application/json", "{", http.StatusBadRequest, ""},
		{"form", "echo", "application/x-www-form-urlencoded", runInput("t1", "r1"), http.StatusUnsupportedMediaType, "Content-Type"},
		{"no messages", "echo", "application/json", `{"threadId":"t1","runId":"r1"}`, http.StatusBadRequest, "messages"},
		{"empty thread", "echo", "application/json", runInput("", "r1"), http.StatusBadRequest, "threadId"},
		{"message without role", "echo", "application/json", `{"threadId":"t1","runId":"r1","messages":[{"id":"u1","content":"hi"}]}`, http.StatusBadRequest, "messages[0].role"},
		{"tool message without toolCallId", "echo", "application/json", `{"threadId":"t1","runId":"r1","messages":[{"id":"m","role":"tool","content":"x"}]}`, http.StatusBadRequest, "messages[0].toolCallId"},
		{"over --max-run-body", "echo", "application/json", runInput(strings.Repeat("t", 5000), "r1"), http.StatusRequestEntityTooLarge, ""},
		{"thread id over 256 bytes", "echo", "application/json", runInput(strings.Repeat("t", 300), "r1"), http.StatusBadRequest, ""},
		{"content part without a type", "echo", "application/json", `{"threadId":"t1","runId":"r1","messages":[{"id":"u1","role":"user","content":[{}]}]}`, http.StatusBadRequest, "messages[0].content[0].type"},
		{"a field differing only in case", "echo", "application/json", `{"threadId":"t1","THREADID":"t2","runId":"r1","messages":[]}`, http.StatusBadRequest, "THREADID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, ans := p.post(t, "/api/v1/agui/agents/"+tt.agent+"/run", tok, tt.contentType, tt.body)
			if code != tt.status || ans["error"] == nil || tt.field != "" && ans["field"] != tt.field {
				t.Fatalf("%d %v, want %d with field %q", code, ans, tt.status, tt.field)
			}
		})
	}
	if code, _ := p.post(t, "/api/v1/agui/agents/echo/run", "", "application/json", runInput("t1", "r1")); code != http.StatusUnauthorized {
		t.Fatalf("without a token: %d, want 401", code)
	}
	if n := p.msgs(t, routing.StreamRuns); n != 0 {
		t.Fatalf("RUNS holds %d requests, want 0", n)
	}
}

// TestRunTwice: the same run of the same thread requested again is refused with 409; the first
// one ran.
func TestRunTwice(t *testing.T) {
	p := newPlane(t, sse.Config{})
	p.runtime(t, agentrt.Config{}, echoText)
	tok := token(t, "alice")
	if evs := runEvents(t, p.startRun(t, tok, "echo", runInput("t1", "r1"))); len(evs) != 5 {
		t.Fatalf("first run: %v", evs)
	}
	code, ans := p.post(t, "/api/v1/agui/agents/echo/run", tok, "application/json", runInput("t1", "r1"))
	if code != http.StatusConflict {
		t.Fatalf("the same run again: %d %v, want 409", code, ans)
	}
}

// TestRunPastItsTime: a run that goes past --max-run-duration ends in RUN_ERROR run_timeout,
// and its runtime is told to stop: the handler's context ends.
func TestRunPastItsTime(t *testing.T) {
	p := newPlane(t, sse.Config{MaxRunDuration: 300 * time.Millisecond})
	stopped := make(chan struct{})
	p.runtime(t, agentrt.Config{AckWait: time.Second}, func(ctx context.Context, run *agentrt.Run) error {
		<-ctx.Done()
		close(stopped)
		return ctx.Err()
	})
	evs := runEvents(t, p.startRun(t, token(t, "alice"), "echo", runInput("t1", "r1")))
	if got := strings.Join(types(evs), " "); got != "RUN_STARTED RUN_ERROR" || evs[1]["code"] != sse.CodeRunTimeout {
		t.Fatalf("events %v, want RUN_STARTED and RUN_ERROR %s", evs, sse.CodeRunTimeout)
	}
	select {
	case <-stopped:
	case <-ctxFor(t).Done():
		t.Fatal("the runtime's handler was not stopped")
	}
}

// TestRunLostAfterClientLeft: a runtime lost after the client that started the run went away
// still ends the run on the user's agui stream, once, with RUN_ERROR runtime_lost.
func TestRunLostAfterClientLeft(t *testing.T) {
	p := newPlane(t, sse.Config{})
	watcher := p.open(t, streamPath(routing.AGUI), token(t, "alice"), nil)
	running := make(chan struct{})
	kill := p.runtime(t, agentrt.Config{AckWait: time.Second}, func(ctx context.Context, run *agentrt.Run) error {
		close(running)
		<-ctx.Done()
		return ctx.Err()
	})
	resp := p.startRun(t, token(t, "alice"), "echo", runInput("t1", "r1"))
	<-running
	resp.Body.Close() // the page goes away
	kill()
	var evs []map[string]any
	for range 2 {
		var ev map[string]any
		if err := json.Unmarshal([]byte(watcher.next(t).Data), &ev); err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	if got := strings.Join(types(evs), " "); got != "RUN_STARTED RUN_ERROR" || evs[1]["code"] != sse.CodeRuntimeLost || evs[1]["runId"] != "r1" {
		t.Fatalf("alice's agui stream: %v, want RUN_STARTED and RUN_ERROR %s of r1", evs, sse.CodeRuntimeLost)
	}
}
