package agui

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/eventsd/eventsd/event"
	"github.com/eventsd/eventsd/internal/testplane"
	"github.com/eventsd/eventsd/sse"
)

// TestThreadClients follows one run on eventsd's thread stream with EventsdAgent
// (clients/agui) through @ag-ui/client 1.0.0's own pipeline (schemas, verifier, apply): a client
// that joins mid-run, one whose connection drops mid-message and resumes by id, one whose
// connection drops within its prelude, and one that joins after the run. All pass with no warning, and each ends with the same messages and state
// as a client fed every event of the run.
func TestThreadClients(t *testing.T) {
	node := needNode(t)
	if _, err := os.Stat(filepath.Join("..", "..", "clients", "agui", "node_modules", "@ag-ui", "client")); err != nil {
		t.Skip("the thread client's packages are missing: run 'npm ci --prefix clients/agui' (bash .ci/run does)")
	}
	p := testplane.Start(t, sse.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	part1 := []event.Event{
		event.RunStarted{ThreadID: "t1", RunID: "r1"},
		event.TextMessageStart{MessageID: "m1", Role: "assistant"},
		event.TextMessageContent{MessageID: "m1", Delta: "Hel"},
		event.ToolCallStart{ToolCallID: "c1", ToolCallName: "search", ParentMessageID: "m1"},
		event.ToolCallArgs{ToolCallID: "c1", Delta: `{"q":`},
		event.StateSnapshot{Snapshot: json.RawMessage(`{"step":1,"seen":[]}`)},
	}
	part2 := []event.Event{
		event.ToolCallArgs{ToolCallID: "c1", Delta: `"go"}`},
		event.ToolCallEnd{ToolCallID: "c1"},
		event.TextMessageContent{MessageID: "m1", Delta: "lo wor"},
		event.TextMessageContent{MessageID: "m1", Delta: "ld"},
		event.TextMessageEnd{MessageID: "m1"},
		event.ToolCallResult{MessageID: "tr1", ToolCallID: "c1", Content: json.RawMessage(`"found"`)},
		event.StateDelta{Delta: []event.PatchOperation{{Op: "replace", Path: "/step", Value: json.RawMessage("2")}}},
		event.RunFinished{ThreadID: "t1", RunID: "r1"},
	}
	publish := func(evs []event.Event) {
		for _, ev := range evs {
			if _, err := p.Bus.PublishRunEvent(ctx, "alice", "t1", "r1", ev); err != nil {
				t.Fatal(err)
			}
		}
	}
	var all []json.RawMessage
	for _, ev := range append(append([]event.Event{}, part1...), part2...) {
		b, err := event.Encode(ev, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b)
	}
	publish(part1)
	cfg, _ := json.Marshal(map[string]any{"base": p.URL, "token": testplane.Token(t, "alice"), "thread": "t1", "all": all, "cutAfterDelta": "lo wor"})
	cmd := exec.CommandContext(ctx, node, "thread.mjs", string(cfg))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(out)
	lines.Buffer(nil, 1<<20)
	if !lines.Scan() || lines.Text() != "joined" {
		t.Fatalf("the clients did not join: %q\n%s", lines.Text(), stderr.String())
	}
	publish(part2)
	if !lines.Scan() {
		t.Fatalf("no result: %v\n%s", cmd.Wait(), stderr.String())
	}
	type client struct {
		Messages   any
		State      any
		Reconnects int
	}
	var got struct {
		Joined, Resumed, CutInPrelude, After, Whole client
		Complaints                                  []string
	}
	result := lines.Bytes()
	if err := json.Unmarshal(result, &got); err != nil {
		t.Fatalf("result %s: %v", result, err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("node: %v\n%s", err, stderr.String())
	}
	if len(got.Complaints) > 0 {
		t.Errorf("the clients complained:\n%s", strings.Join(got.Complaints, "\n"))
	}
	for name, c := range map[string]client{"joined": got.Joined, "resumed": got.Resumed, "cut in its prelude": got.CutInPrelude, "after": got.After} {
		if !reflect.DeepEqual(c.Messages, got.Whole.Messages) || !reflect.DeepEqual(c.State, got.Whole.State) {
			t.Errorf("%s ends with %v, state %v\nwant %v, state %v", name, c.Messages, c.State, got.Whole.Messages, got.Whole.State)
		}
	}
	if got.Resumed.Reconnects != 1 || got.CutInPrelude.Reconnects != 1 {
		t.Errorf("the dropped clients reconnected %d and %d times, want once each", got.Resumed.Reconnects, got.CutInPrelude.Reconnects)
	}
}
