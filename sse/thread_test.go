package sse_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/eventsd/eventsd/agentrt"
	"github.com/eventsd/eventsd/event"
	"github.com/eventsd/eventsd/internal/testplane"
	"github.com/eventsd/eventsd/routing"
	"github.com/eventsd/eventsd/sse"
)

// publishRun publishes events of run r1 of thread for alice, as a runtime does.
func (p *plane) publishRun(t *testing.T, thread string, evs ...event.Event) []string {
	t.Helper()
	var ids []string
	for _, ev := range evs {
		ack, err := p.bus.PublishRunEvent(ctxFor(t), "alice", thread, "r1", ev)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, routing.Cursor{Seq: ack.Seq, Epoch: p.epoch(t, routing.StreamAGUI)}.String())
	}
	return ids
}

// threadFrames reads n frames of a thread stream: each frame's data as an object.
func threadFrames(t *testing.T, c *client, n int) []map[string]any {
	t.Helper()
	var out []map[string]any
	for range n {
		var ev map[string]any
		if err := json.Unmarshal([]byte(c.next(t).Data), &ev); err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
	}
	return out
}

// TestThreadStream: a thread stream joined mid-run opens with the run's RUN_STARTED, the
// thread's messages (as of its view, the events after which follow) and a start for the open
// message, then goes on with that thread's events
// only, without the attribution fields their types do not define; resumed by id mid-message,
// it opens with RUN_STARTED and the open message's start, then the events after the cursor.
func TestThreadStream(t *testing.T) {
	p := newPlane(t, sse.Config{})
	tok := token(t, "alice")
	p.publishRun(t, "t1",
		event.RunStarted{},
		event.TextMessageStart{MessageID: "m1", Role: "assistant"},
		event.TextMessageContent{MessageID: "m1", Delta: "Hel"})
	c := p.open(t, "/api/v1/agui/threads/t1/stream", tok, nil)
	got := threadFrames(t, c, 3)
	if types(got)[0] != "RUN_STARTED" || types(got)[1] != "MESSAGES_SNAPSHOT" || types(got)[2] != "TEXT_MESSAGE_START" {
		t.Fatalf("prelude %v, want RUN_STARTED, MESSAGES_SNAPSHOT, TEXT_MESSAGE_START", types(got))
	}
	// The snapshot reflects the thread's view, which may not have "Hel" yet: then it follows.
	if msgs, _ := json.Marshal(got[1]["messages"]); !strings.Contains(string(msgs), `"content":"Hel"`) {
		if next := threadFrames(t, c, 1); next[0]["delta"] != "Hel" {
			t.Fatalf("snapshot %s and then %v, want m1's content so far in one or the other", msgs, next)
		}
	}
	p.publishRun(t, "t2", event.RunStarted{}) // another thread of alice's
	ids := p.publishRun(t, "t1", event.TextMessageContent{MessageID: "m1", Delta: "lo"})
	p.publishRun(t, "t1", event.TextMessageEnd{MessageID: "m1"}, event.RunFinished{})
	got = threadFrames(t, c, 3)
	if strings.Join(types(got), " ") != "TEXT_MESSAGE_CONTENT TEXT_MESSAGE_END RUN_FINISHED" {
		t.Fatalf("live %v, want t1's content, end and finish", types(got))
	}
	if _, ok := got[0]["threadId"]; ok || got[2]["threadId"] != "t1" {
		t.Fatalf("attribution: %v", got)
	}

	r := p.open(t, "/api/v1/agui/threads/t1/stream", tok, map[string]string{"Last-Event-ID": ids[0]})
	got = threadFrames(t, r, 4)
	if strings.Join(types(got), " ") != "RUN_STARTED TEXT_MESSAGE_START TEXT_MESSAGE_END RUN_FINISHED" {
		t.Fatalf("resumed after the second delta: %v, want RUN_STARTED, the open message's start, then END and RUN_FINISHED", types(got))
	}
}

// TestThreadStreamRefuses: a thread stream takes no parameter that would break its prelude.
func TestThreadStreamRefuses(t *testing.T) {
	p := newPlane(t, sse.Config{})
	for _, q := range []string{"?types=RUN_STARTED", "?since=2026-01-01T00:00:00Z", "?all_users=true"} {
		resp := p.get(t, "/api/v1/agui/threads/t1/stream"+q, token(t, "alice", "admin"), nil)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", q, resp.StatusCode)
		}
	}
}

// TestIngressAttribution: an AG-UI event's threadId and runId, where it has them, are strings
// of at most 256 bytes; another value is refused and nothing is stored. An event without them
// is stored as before: it reaches the user's agui stream, and no thread stream.
func TestIngressAttribution(t *testing.T) {
	p := newPlane(t, sse.Config{})
	tok := token(t, "alice")
	for _, body := range []string{
		`{"type":"STEP_STARTED","stepName":"s","threadId":7}`,
		`{"type":"STEP_STARTED","stepName":"s","runId":""}`,
		`{"type":"STEP_STARTED","stepName":"s","threadId":"` + strings.Repeat("t", 257) + `"}`,
	} {
		code, ans := p.post(t, "/api/v1/events/agui", tok, "application/json", body)
		if code != http.StatusBadRequest || (ans["field"] != "threadId" && ans["field"] != "runId") {
			t.Errorf("%.60s: %d %v, want 400 naming the field", body, code, ans)
		}
	}
	if n := p.msgs(t, routing.StreamAGUI); n != 0 {
		t.Fatalf("AGUI holds %d events, want 0", n)
	}
	if code, _ := p.post(t, "/api/v1/events/agui", tok, "application/json", `{"type":"STEP_STARTED","stepName":"s"}`); code != http.StatusOK {
		t.Fatalf("an event of no thread: %d, want 200", code)
	}
}

// TestThreadIDEscaped: a thread id with characters a URL path escapes is the same thread.
func TestThreadIDEscaped(t *testing.T) {
	p := newPlane(t, sse.Config{})
	for i, thread := range []string{"user:42 / draft?", "50% a%41"} {
		p.publishRun(t, thread, event.RunStarted{}, event.RunFinished{})
		p.awaitView(t, thread, uint64(2*i+2))
		c := p.open(t, "/api/v1/agui/threads/"+url.PathEscape(thread)+"/stream", token(t, "alice"), nil)
		got := threadFrames(t, c, 3)
		if strings.Join(types(got), " ") != "RUN_STARTED MESSAGES_SNAPSHOT RUN_FINISHED" || got[0]["threadId"] != thread {
			t.Fatalf("prelude %v, want thread %q's completed run", got, thread)
		}
	}
}

// awaitView waits until the view of alice's thread has applied the event at seq.
func (p *plane) awaitView(t *testing.T, thread string, seq uint64) {
	t.Helper()
	testplane.AwaitThreadView(t, p.js, "alice", thread, seq)
}

// TestThreadIsTheUsersOwn: another user's thread id shows nothing of theirs: bob following
// alice's thread t1 gets no prelude of it and none of its events, only his own thread t1's.
func TestThreadIsTheUsersOwn(t *testing.T) {
	p := newPlane(t, sse.Config{})
	p.publishRun(t, "t1", event.RunStarted{}, event.TextMessageStart{MessageID: "secret"})
	p.awaitView(t, "t1", 2)
	c := p.open(t, "/api/v1/agui/threads/t1/stream", token(t, "bob"), nil)
	p.publishRun(t, "t1", event.TextMessageContent{MessageID: "secret", Delta: "alice's"})
	if _, err := p.bus.PublishRunEvent(ctxFor(t), "bob", "t1", "b1", event.RunStarted{}); err != nil {
		t.Fatal(err)
	}
	got := threadFrames(t, c, 1)
	if got[0]["type"] != "RUN_STARTED" || got[0]["runId"] != "b1" {
		t.Fatalf("bob's first frame %v, want his own RUN_STARTED of b1", got[0])
	}
}

// TestRunThenThread: after a run started over HTTP, the thread's stream shows the conversation
// whole, the user's message (from the run's input, which RUN_STARTED carries) and the answer.
func TestRunThenThread(t *testing.T) {
	p := newPlane(t, sse.Config{})
	p.runtime(t, agentrt.Config{}, echoText)
	tok := token(t, "alice")
	if evs := runEvents(t, p.startRun(t, tok, "echo", runInput("t1", "r1"))); len(evs) != 5 {
		t.Fatalf("run: %v", types(evs))
	}
	p.awaitView(t, "t1", 5)
	got := threadFrames(t, p.open(t, "/api/v1/agui/threads/t1/stream", tok, nil), 3)
	msgs, _ := json.Marshal(got[1]["messages"])
	if types(got)[1] != "MESSAGES_SNAPSHOT" || !strings.Contains(string(msgs), `"id":"u1"`) || !strings.Contains(string(msgs), "echo: r1") {
		t.Fatalf("prelude %v with messages %s, want the user's message u1 and the answer", types(got), msgs)
	}
}
