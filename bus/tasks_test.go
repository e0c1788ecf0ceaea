package bus_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/eventsd/eventsd/bus"
	"github.com/eventsd/eventsd/internal/testplane"
	"github.com/eventsd/eventsd/routing"
	"github.com/eventsd/eventsd/tasks"
)

// TestTaskView: a task's events make its view, which its user reads as a Task as soon as the
// events are stored; another user finds no such task.
func TestTaskView(t *testing.T) {
	b, _ := testplane.StartBus(t, bus.Config{})
	ctx := testContext(t)
	if err := b.StartTasks(ctx); err != nil {
		t.Fatal(err)
	}
	publish(t, b, routing.A2A, "alice", "TASK_SUBMITTED", `{"type":"TASK_SUBMITTED","taskId":"task1","contextId":"c1","agentName":"echo"}`)
	publish(t, b, routing.A2A, "alice", "TASK_STATUS_UPDATE", `{"type":"TASK_STATUS_UPDATE","taskId":"task1","contextId":"c1","state":"TASK_STATE_COMPLETED"}`)
	v, _, err := b.TaskView(ctx, "alice", "task1") // once the projector has caught up
	if err != nil || v.Task.Status.State != tasks.StateCompleted || v.Agent != "echo" || v.Task.ContextID != "c1" {
		t.Fatalf("view %+v, %v, want the completed task of echo in c1", v, err)
	}
	if _, _, err := b.TaskView(ctx, "bob", "task1"); !errors.Is(err, bus.ErrTaskNotFound) {
		t.Fatalf("bob's TaskView of alice's task: %v, want ErrTaskNotFound", err)
	}
}

// TestTaskViewsOnlyForSubmittedTasks: events that name a task no TASK_SUBMITTED started make no
// view, so a producer cannot fill the bucket with made-up task ids; a submitted task's view is
// listed in its user's index.
func TestTaskViewsOnlyForSubmittedTasks(t *testing.T) {
	b, url := testplane.StartBus(t, bus.Config{})
	ctx := testContext(t)
	if err := b.StartTasks(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		publish(t, b, routing.A2A, "alice", "AGENT_MESSAGE", fmt.Sprintf(`{"type":"AGENT_MESSAGE","taskId":"ghost%d","contextId":"c","messageId":"m","content":"boo"}`, i))
	}
	publish(t, b, routing.A2A, "alice", "TASK_SUBMITTED", `{"type":"TASK_SUBMITTED","taskId":"real","contextId":"c","agentName":"echo"}`)
	if _, _, err := b.TaskView(ctx, "alice", "real"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.TaskView(ctx, "alice", "ghost0"); !errors.Is(err, bus.ErrTaskNotFound) {
		t.Fatalf("a task never submitted: %v, want ErrTaskNotFound", err)
	}
	_, js := testplane.Client(t, url)
	kv, err := js.KeyValue(ctx, routing.BucketTasks)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kv.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 { // the real task's view and alice's index
		t.Fatalf("keys %q, want the submitted task's view and its user's index", keys)
	}
}
