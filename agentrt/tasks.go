package agentrt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/eventsd/eventsd/bus"
	"github.com/eventsd/eventsd/event"
	"github.com/eventsd/eventsd/routing"
	"github.com/eventsd/eventsd/tasks"
)

// ErrCanceled is the cause of a task handler's context once a client has cancelled the task
// (A2A CancelTask): the handler stops, and ServeTasks publishes TASK_STATE_CANCELED.
var ErrCanceled = errors.New("agentrt: the task was cancelled")

// TaskHandler works on one message of an A2A task: it publishes the task's events with
// task.Emit (its status, artifacts and messages) and returns when it is done with the message.
// ServeTasks publishes TASK_STATE_WORKING before it. After it, ServeTasks publishes
// TASK_STATE_COMPLETED, unless the handler ended the task itself or left it waiting for the
// user (INPUT_REQUIRED, AUTH_REQUIRED: the user's answer comes as the task's next message, to
// any runtime of the agent); TASK_STATE_FAILED with the error's text when it returns one; and
// TASK_STATE_CANCELED when a client cancelled the task: ctx is then done, with the cause
// ErrCanceled (context.Cause).
type TaskHandler func(ctx context.Context, task *Task) error

// Task is one message of an A2A task that a runtime has taken.
type Task struct {
	taken *bus.TakenRun
	req   bus.RunRequest

	mu    sync.Mutex
	state string // the last state the handler published
}

// Agent is the agent the message is for.
func (t *Task) Agent() string { return t.req.Agent }

// User is the user who sent the message, and who receives the task's events.
func (t *Task) User() string { return t.req.User }

// TaskID is the task's id.
func (t *Task) TaskID() string { return t.req.RunID }

// ContextID is the task's context id.
func (t *Task) ContextID() string { return t.req.ThreadID }

// RawMessage is the A2A 1.0 message as the client sent it.
func (t *Task) RawMessage() json.RawMessage { return t.req.Input }

// Message decodes the message.
func (t *Task) Message() (tasks.Message, error) {
	var m tasks.Message
	if err := json.Unmarshal(t.req.Input, &m); err != nil {
		return m, fmt.Errorf("agentrt: task message: %w", err)
	}
	return m, nil
}

// Text is the text of the message's text parts, joined by newlines.
func (t *Task) Text() string {
	m, err := t.Message()
	if err != nil {
		return ""
	}
	var texts []string
	for _, raw := range m.Parts {
		var p struct {
			Text *string `json:"text"`
		}
		if json.Unmarshal(raw, &p) == nil && p.Text != nil {
			texts = append(texts, *p.Text)
		}
	}
	return strings.Join(texts, "\n")
}

// Emit publishes an A2A event of the task (TASK_STATUS_UPDATE, ARTIFACT_CREATED,
// ARTIFACT_UPDATED, AGENT_MESSAGE, INPUT_REQUIRED, AUTH_REQUIRED), with the task's taskId and
// contextId filled in.
func (t *Task) Emit(ctx context.Context, ev event.Event) error {
	if _, err := t.taken.Publish(ctx, ev); err != nil {
		return err
	}
	state := ""
	switch e := ev.(type) {
	case event.TaskStatusUpdate:
		state = e.State
	case event.InputRequired:
		state = tasks.StateInputRequired
	case event.AuthRequired:
		state = tasks.StateAuthRequired
	}
	if state != "" {
		t.mu.Lock()
		t.state = state
		t.mu.Unlock()
	}
	return nil
}

// settled reports whether the handler ended the task or left it waiting for the user.
func (t *Task) settled() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return tasks.Terminal(t.state) || tasks.Interrupted(t.state)
}

// ServeTasks takes the agent's A2A messages (the tasks queue) until ctx is done and runs h for
// each, as Serve does for runs; Config.Description goes on the agent's card. A runtime may run
// Serve and ServeTasks for one agent at once.
func ServeTasks(ctx context.Context, cfg Config, h TaskHandler) error {
	return serve(ctx, cfg, routing.Tasks, func(s *server, ctx context.Context, taken *bus.TakenRun) {
		t := &Task{taken: taken, req: taken.Request()}
		working := event.TaskStatusUpdate{State: tasks.StateWorking}
		s.handle(ctx, taken, working, func(ctx context.Context) error { return h(ctx, t) },
			func(err error, stopping, canceled bool) event.Event { return t.end(err, stopping, canceled) })
	})
}

// end is the task's last event after its handler returned err.
func (t *Task) end(err error, stopping, canceled bool) event.Event {
	switch {
	case canceled:
		return event.TaskStatusUpdate{State: tasks.StateCanceled}
	case err != nil && stopping:
		return tasks.Failed("the agent's runtime stopped")
	case err != nil:
		return tasks.Failed(err.Error())
	case t.settled():
		return nil
	}
	return event.TaskStatusUpdate{State: tasks.StateCompleted}
}
