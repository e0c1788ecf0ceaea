package agentrt_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/eventsd/eventsd/agentrt"
	"github.com/eventsd/eventsd/bus"
	"github.com/eventsd/eventsd/event"
	"github.com/eventsd/eventsd/internal/testplane"
	"github.com/eventsd/eventsd/routing"
)

// enqueueTask stores an A2A message for task id of alice on the agent's tasks queue.
func enqueueTask(t *testing.T, b *bus.Bus, id, text string) *bus.Run {
	t.Helper()
	msg, _ := json.Marshal(map[string]any{"messageId": "m-" + id, "role": "ROLE_USER", "parts": []any{map[string]string{"text": text}}})
	r, err := b.EnqueueRun(testContext(t), bus.RunRequest{Queue: routing.Tasks, Agent: "echo", User: "alice", ThreadID: "c1", RunID: id, Input: msg}, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// taskStates reads alice's A2A events until n have come, and gives each one's type and state.
func taskStates(t *testing.T, f *bus.Feed, n int) []string {
	t.Helper()
	var got []string
	for len(got) < n {
		ev, err := f.Next(testContext(t))
		if err != nil {
			t.Fatal(err)
		}
		var e struct{ Type, TaskID, ContextID, State string }
		if err := json.Unmarshal(ev.Data, &e); err != nil || e.ContextID != "c1" {
			t.Fatalf("event %s: want contextId c1", ev.Data)
		}
		got = append(got, e.TaskID+" "+e.Type+" "+e.State)
	}
	return got
}

// TestServeTasks: ServeTasks takes only A2A messages (Serve beside it only runs), publishes
// WORKING, the handler's events and COMPLETED; FAILED for a handler's error; nothing after a
// handler that asks for input; CANCELED once a client cancels the task it works on.
func TestServeTasks(t *testing.T) {
	b, url := testplane.StartBus(t, bus.Config{})
	f, err := b.Subscribe(testContext(t), routing.Subscription{Channel: routing.A2A, User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	rb, _ := startRuntime(t, url, agentrt.Config{}, func(context.Context, *agentrt.Run) error {
		t.Error("Serve ran an A2A message")
		return nil
	})
	working := make(chan struct{}, 1)
	go func() {
		_ = agentrt.ServeTasks(t.Context(), agentrt.Config{Agent: "echo", Bus: rb}, func(ctx context.Context, task *agentrt.Task) error {
			switch task.Text() {
			case "fail":
				return errors.New("model unavailable")
			case "?":
				return task.Emit(ctx, event.InputRequired{Prompt: "which?"})
			case "wait":
				working <- struct{}{}
				<-ctx.Done()
				return context.Cause(ctx)
			}
			return task.Emit(ctx, event.AgentMessage{MessageID: "a-" + task.TaskID(), Content: "echo: " + task.Text()})
		})
	}()
	for _, tc := range []struct{ id, text, want string }{
		{"t1", "hi", "t1 TASK_STATUS_UPDATE TASK_STATE_WORKING,t1 AGENT_MESSAGE ,t1 TASK_STATUS_UPDATE TASK_STATE_COMPLETED"},
		{"t2", "fail", "t2 TASK_STATUS_UPDATE TASK_STATE_WORKING,t2 TASK_STATUS_UPDATE TASK_STATE_FAILED"},
		{"t3", "?", "t3 TASK_STATUS_UPDATE TASK_STATE_WORKING,t3 INPUT_REQUIRED "},
	} {
		r := enqueueTask(t, b, tc.id, tc.text)
		want := len(strings.Split(tc.want, ","))
		if got := taskStates(t, f, want); strings.Join(got, ",") != tc.want {
			t.Fatalf("%s: %q, want %s", tc.text, got, tc.want)
		}
		testplane.Await(t, testContext(t), r.Ended(), tc.id+" ended")
	}
	r := enqueueTask(t, b, "t4", "wait")
	testplane.Await(t, testContext(t), working, "the handler working")
	if heard, err := b.CancelTask(testContext(t), "bob", "t4"); err != nil || heard {
		t.Fatalf("bob cancelling alice's task: heard %v, %v; want no runtime to hear", heard, err)
	}
	if heard, err := b.CancelTask(testContext(t), "alice", "t4"); err != nil || !heard {
		t.Fatalf("CancelTask: heard %v, %v", heard, err)
	}
	if got := taskStates(t, f, 2); strings.Join(got, ",") != "t4 TASK_STATUS_UPDATE TASK_STATE_WORKING,t4 TASK_STATUS_UPDATE TASK_STATE_CANCELED" {
		t.Fatalf("cancelled: %q", got)
	}
	testplane.Await(t, testContext(t), r.Ended(), "t4 ended")
}
