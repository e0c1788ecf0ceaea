package threads

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/eventsd/eventsd/event"
	"github.com/eventsd/eventsd/internal/nodetest"
)

// history is a thread of two runs, with every kind of event the view follows, as stored: each
// with its threadId and runId.
func history(t *testing.T) [][]byte {
	t.Helper()
	run1 := []string{
		`{"type":"RUN_STARTED","threadId":"t1","runId":"r1"}`,
		`{"type":"STEP_STARTED","stepName":"plan"}`,
		`{"type":"TEXT_MESSAGE_START","messageId":"m1","role":"assistant","metadata":{"model":"m","a":1}}`,
		`{"type":"TEXT_MESSAGE_CONTENT","messageId":"m1","delta":"Hel"}`,
		`{"type":"TEXT_MESSAGE_CONTENT","messageId":"m1","delta":"lo","metadata":{"a":2}}`,
		`{"type":"TOOL_CALL_START","toolCallId":"c1","toolCallName":"search","parentMessageId":"m1"}`,
		`{"type":"TOOL_CALL_ARGS","toolCallId":"c1","delta":"{\"q\":","metadata":{"k":"v"}}`,
		`{"type":"TEXT_MESSAGE_END","messageId":"m1"}`,
		`{"type":"TOOL_CALL_ARGS","toolCallId":"c1","delta":"\"go\"}"}`,
		`{"type":"TOOL_CALL_END","toolCallId":"c1"}`,
		`{"type":"TOOL_CALL_RESULT","messageId":"tr1","toolCallId":"c1","content":"found"}`,
		`{"type":"STATE_SNAPSHOT","snapshot":{"count":1,"items":[]}}`,
		`{"type":"REASONING_START","messageId":"rs1"}`,
		`{"type":"REASONING_MESSAGE_START","messageId":"rm1","role":"reasoning"}`,
		`{"type":"REASONING_MESSAGE_CONTENT","messageId":"rm1","delta":"thinking"}`,
		`{"type":"STATE_DELTA","delta":[{"op":"replace","path":"/count","value":2},{"op":"add","path":"/items/-","value":"a"}]}`,
		`{"type":"REASONING_MESSAGE_END","messageId":"rm1"}`,
		`{"type":"REASONING_END","messageId":"rs1"}`,
		`{"type":"STEP_FINISHED","stepName":"plan"}`,
		`{"type":"TOOL_CALL_START","toolCallId":"c2","toolCallName":"calc"}`,
		`{"type":"TOOL_CALL_ARGS","toolCallId":"c2","delta":"{}"}`,
		`{"type":"TOOL_CALL_END","toolCallId":"c2"}`,
		`{"type":"RUN_FINISHED","threadId":"t1","runId":"r1"}`,
	}
	run2 := []string{
		`{"type":"RUN_STARTED","threadId":"t1","runId":"r2"}`,
		`{"type":"ACTIVITY_SNAPSHOT","messageId":"a1","activityType":"progress","content":{"done":0}}`,
		`{"type":"TEXT_MESSAGE_START","messageId":"m2"}`,
		`{"type":"ACTIVITY_DELTA","messageId":"a1","activityType":"progress","patch":[{"op":"replace","path":"/done","value":1}]}`,
		`{"type":"TEXT_MESSAGE_CONTENT","messageId":"m2","delta":"Bye"}`,
		`{"type":"TEXT_MESSAGE_END","messageId":"m2"}`,
		`{"type":"RUN_FINISHED","threadId":"t1","runId":"r2"}`,
	}
	var out [][]byte
	for i, s := range append(run1, run2...) {
		runID := "r1"
		if i >= len(run1) {
			runID = "r2"
		}
		raw, err := event.Parse([]byte(s))
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if err := raw.Stamp(true, time.UnixMilli(int64(1000+i))); err != nil {
			t.Fatal(err)
		}
		b := raw.Encode()
		if !strings.Contains(s, `"threadId"`) {
			b = append(b[:len(b)-1], []byte(`,"threadId":"t1","runId":"`+runID+`"}`)...)
		}
		out = append(out, b)
	}
	return out
}

// clientSees is what a client of the thread stream receives: attribution left out where the
// type has none.
func clientSees(t *testing.T, evs [][]byte) []json.RawMessage {
	t.Helper()
	out := make([]json.RawMessage, len(evs))
	for i, ev := range evs {
		b, err := event.WithoutAttribution(ev)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = b
	}
	return out
}

type clientResult struct {
	Messages   json.RawMessage
	State      json.RawMessage
	Error      string
	Complaints []string
}

// TestJoinAnywhereEndsTheSame runs the thread's events through @ag-ui/client 1.0.0's own
// pipeline (enforce, chunks, verifier, default apply): once whole, and once for each point at
// which a client could join, as the view's prelude there followed by the events after it. Every
// client that joined passes the verifier with no warning and ends with the same messages and
// state as the one that saw every event; so does the view itself.
func TestJoinAnywhereEndsTheSame(t *testing.T) {
	evs := history(t)
	cases := [][]json.RawMessage{clientSees(t, evs)}
	var views []View
	for k := 1; k <= len(evs); k++ {
		v := View{ThreadID: "t1"}
		for i, ev := range evs[:k] {
			if _, err := v.Apply(ev, uint64(i+1), 7, MaxViewBytes); err != nil {
				t.Fatalf("event %d: %v", i, err)
			}
		}
		prelude, err := v.Prelude(time.UnixMilli(5000))
		if err != nil {
			t.Fatal(err)
		}
		cases = append(cases, clientSees(t, append(prelude, evs[k:]...)))
		views = append(views, v)
	}
	var results []clientResult
	runNode(t, replayScript, cases, &results)
	whole := results[0]
	if whole.Error != "" || len(whole.Complaints) > 0 {
		t.Fatalf("the whole thread: %s %v", whole.Error, whole.Complaints)
	}
	for k, r := range results[1:] {
		if r.Error != "" || len(r.Complaints) > 0 {
			t.Errorf("joined after event %d: %s %v", k+1, r.Error, r.Complaints)
			continue
		}
		if !sameJSON(r.Messages, whole.Messages) || !sameJSON(r.State, whole.State) {
			t.Errorf("joined after event %d: messages %s state %s\nwant %s state %s", k+1, r.Messages, r.State, whole.Messages, whole.State)
		}
	}
	last := views[len(views)-1]
	msgs, _ := json.Marshal(last.Messages)
	if !sameJSON(msgs, whole.Messages) || !sameJSON(last.State, whole.State) {
		t.Errorf("the view: messages %s state %s\nwant %s state %s", msgs, last.State, whole.Messages, whole.State)
	}
}

func sameJSON(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// replayScript feeds each case's events to a fresh agent through runAgent, and prints the
// agent's messages and state after it, the error it failed with, and what the client printed.
const replayScript = `
import { readFileSync } from "node:fs";
import { AbstractAgent } from "@ag-ui/client";
import { from } from "rxjs";
const cases = JSON.parse(readFileSync(0, "utf8"));
const complaints = [];
for (const level of ["warn", "error"]) console[level] = (...a) => complaints.push(a.map(String).join(" "));
class Replay extends AbstractAgent {
  constructor(events) { super({ threadId: "t1" }); this.events = events; }
  run() { return from(this.events); }
}
const out = [];
for (const events of cases) {
  const agent = new Replay(events);
  let error = "";
  try { await agent.runAgent(); } catch (e) { error = String(e?.message ?? e); }
  out.push({ messages: agent.messages, state: agent.state ?? null, error, complaints: complaints.splice(0) });
}
process.stdout.write(JSON.stringify(out));
`

var aguiPackages = filepath.Join("..", "test", "agui")

// runNode runs script with node in the AG-UI test packages' directory (nodetest.Run).
func runNode(t *testing.T, script string, input, out any) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(aguiPackages, "node_modules", "@ag-ui", "client")); errors.Is(err, fs.ErrNotExist) {
		t.Skip("@ag-ui/client is not installed: 'npm ci --prefix test/agui' installs it")
	}
	nodetest.Run(t, aguiPackages, script, input, out)
}

// TestRunsOfOneThread: a run's end ends only that run: another run started on the thread
// meanwhile (a second tab) stays in progress, with what is open in it.
func TestRunsOfOneThread(t *testing.T) {
	v := View{ThreadID: "t1"}
	for i, ev := range []string{
		`{"type":"RUN_STARTED","threadId":"t1","runId":"r1"}`,
		`{"type":"RUN_STARTED","threadId":"t1","runId":"r2"}`,
		`{"type":"TEXT_MESSAGE_START","messageId":"m2","threadId":"t1","runId":"r2"}`,
		`{"type":"RUN_FINISHED","threadId":"t1","runId":"r1"}`,
	} {
		if _, err := v.Apply([]byte(ev), uint64(i+1), 1, MaxViewBytes); err != nil {
			t.Fatal(err)
		}
	}
	if v.Run == nil || v.Run.ID != "r2" || len(v.Run.Open.Text) != 1 {
		t.Fatalf("run in progress %+v, want r2 with m2 open", v.Run)
	}
}

// TestViewBounded: a view over its bound leaves out its oldest messages, then its state, and
// counts what it left out; the prelude says so.
func TestViewBounded(t *testing.T) {
	v := View{ThreadID: "t1"}
	big := strings.Repeat("x", 300)
	seq := uint64(0)
	apply := func(ev string) {
		seq++
		if _, err := v.Apply([]byte(ev), seq, 1, 4096); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 20 {
		id := fmt.Sprint("m", i)
		apply(`{"type":"TEXT_MESSAGE_START","messageId":"` + id + `","threadId":"t1"}`)
		apply(`{"type":"TEXT_MESSAGE_CONTENT","messageId":"` + id + `","delta":"` + big + `","threadId":"t1"}`)
	}
	b, _ := json.Marshal(v)
	if len(b) > 4096 || v.Omitted == 0 || v.Messages[len(v.Messages)-1].ID != "m19" {
		t.Fatalf("view of %d bytes, %d left out, last %s; want at most 4096, some left out, m19 kept", len(b), v.Omitted, v.Messages[len(v.Messages)-1].ID)
	}
	prelude, err := v.Prelude(time.Now())
	if err != nil || !strings.Contains(string(bytes.Join(prelude, nil)), `"name":"eventsd.omitted"`) {
		t.Fatalf("prelude %s (%v), want the omitted count", bytes.Join(prelude, nil), err)
	}
}

// BenchmarkApplyDelta applies one token of a message being written to the view of a thread of
// 200 messages of 1 KiB: the projector's cost per streamed token, before the bucket write.
func BenchmarkApplyDelta(b *testing.B) {
	v := View{ThreadID: "t1"}
	text := strings.Repeat("x", 1024)
	seq := uint64(0)
	apply := func(ev string) {
		seq++
		if _, err := v.Apply([]byte(ev), seq, 1, MaxViewBytes); err != nil {
			b.Fatal(err)
		}
	}
	apply(`{"type":"RUN_STARTED","threadId":"t1","runId":"r1"}`)
	for i := range 200 {
		id := fmt.Sprint("m", i)
		apply(`{"type":"TEXT_MESSAGE_START","messageId":"` + id + `","threadId":"t1","runId":"r1"}`)
		apply(`{"type":"TEXT_MESSAGE_CONTENT","messageId":"` + id + `","delta":"` + text + `","threadId":"t1","runId":"r1"}`)
		apply(`{"type":"TEXT_MESSAGE_END","messageId":"` + id + `","threadId":"t1","runId":"r1"}`)
	}
	apply(`{"type":"TEXT_MESSAGE_START","messageId":"open","threadId":"t1","runId":"r1"}`)
	delta := []byte(`{"type":"TEXT_MESSAGE_CONTENT","timestamp":1,"messageId":"open","delta":"token ","threadId":"t1","runId":"r1"}`)
	b.ReportAllocs()
	for b.Loop() {
		seq++
		if _, err := v.Apply(delta, seq, 1, MaxViewBytes); err != nil {
			b.Fatal(err)
		}
	}
}
