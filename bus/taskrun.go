package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/eventsd/eventsd/event"
	"github.com/eventsd/eventsd/routing"
	"github.com/eventsd/eventsd/tasks"
)

// A2A tasks run as AG-UI runs do (see runs.go): a node stores a message for a task on the
// agent's share of the tasks queue, and a runtime takes it, claims it and keeps it alive. Two
// things are the tasks' own: the runtime publishes A2A events of the task (PublishTaskEvent),
// and it hears on a subject of the task when a client cancels it (ServeCancel, CancelTask).

// PublishTaskEvent publishes an A2A event of one task for user, attributed to it: the event's
// taskId and contextId are filled in where empty. An event that names another task or context
// is refused with ErrInvalidRun. A msgID, when given, de-duplicates the event within the
// stream's duplicate window (Ack.Duplicate).
func (b *Bus) PublishTaskEvent(ctx context.Context, user, contextID, taskID string, ev event.Event, msgID string) (Ack, error) {
	if ev.Channel() != routing.A2A {
		return Ack{}, fmt.Errorf("%w %q: a task publishes A2A events", routing.ErrUnknownChannel, ev.Channel())
	}
	if contextID == "" || taskID == "" {
		return Ack{}, fmt.Errorf("%w: want a context id and a task id", ErrInvalidRun)
	}
	ev, err := attributeTask(ev, contextID, taskID)
	if err != nil {
		return Ack{}, fmt.Errorf("%w: %s: %v", ErrInvalidRun, ev.EventType(), err)
	}
	subject, err := routing.SubjectFor(routing.A2A, user, ev.EventType())
	if err != nil {
		return Ack{}, err
	}
	data, err := event.Encode(ev, time.Now())
	if err != nil {
		return Ack{}, fmt.Errorf("bus: encode %s: %w", ev.EventType(), err)
	}
	return b.Publish(ctx, subject, data, msgID)
}

// attributeTask fills the TaskID and ContextID fields of an A2A event where they are empty,
// and checks them where they are not.
func attributeTask(ev event.Event, contextID, taskID string) (event.Event, error) {
	v := reflect.New(reflect.TypeOf(ev)).Elem()
	v.Set(reflect.ValueOf(ev))
	if v.Kind() != reflect.Struct {
		return ev, nil
	}
	for _, f := range []struct{ name, value string }{{"TaskID", taskID}, {"ContextID", contextID}} {
		field := v.FieldByName(f.name)
		switch {
		case !field.IsValid() || field.Kind() != reflect.String:
		case field.String() == "":
			field.SetString(f.value)
		case field.String() != f.value:
			return ev, fmt.Errorf("%s is %q, want %q", f.name, field.String(), f.value)
		}
	}
	return v.Interface().(event.Event), nil
}

// failTask ends the task of req in TASK_STATE_FAILED, with an agent message saying why.
func (b *Bus) failTask(ctx context.Context, req RunRequest, why string) {
	if _, err := b.PublishTaskEvent(ctx, req.User, req.ThreadID, req.RunID, tasks.Failed(why), ""); err != nil {
		b.log.Warn("failing a task", "task", req.RunID, "err", err)
	}
}

// cancelReply is a runtime's answer to a cancel request.
type cancelReply struct {
	Canceling bool `json:"canceling"`
}

// CancelTask asks the runtime that holds task taskID of user to cancel it, and reports whether
// one heard: false when no runtime holds the task (it waits for the user, or for a runtime, or
// its runtime is gone).
func (b *Bus) CancelTask(ctx context.Context, user, taskID string) (bool, error) {
	subject, err := routing.CancelSubject(user, taskID)
	if err != nil {
		return false, err
	}
	var reply cancelReply
	err = b.signalRaw(ctx, subject, []byte(`{"op":"cancel"}`), &reply)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return false, nil
	case err != nil:
		return false, b.wrap("cancel task", err)
	}
	return reply.Canceling, nil
}

// ServeCancel calls cancel, once, when a client asks to cancel the task of this request (an
// A2A message; see CancelTask), until the returned stop is called.
func (t *TakenRun) ServeCancel(cancel func()) (stop func(), err error) {
	if t.req.queue() != routing.Tasks {
		return func() {}, nil
	}
	subject, err := routing.CancelSubject(t.req.User, t.req.RunID)
	if err != nil {
		return nil, err
	}
	var once sync.Once
	sub, err := t.b.nc.Subscribe(subject, func(msg *nats.Msg) {
		data, _ := json.Marshal(cancelReply{Canceling: true})
		_ = msg.Respond(data)
		once.Do(cancel)
	})
	if err != nil {
		return nil, t.b.wrap("subscribe "+subject, err)
	}
	return func() { _ = sub.Unsubscribe() }, nil
}

// ErrNoAgent is returned for an agent no runtime has announced on the queue asked for.
var ErrNoAgent = errors.New("bus: no runtime has served the agent")

// agentsFresh is how long the list of the agents' consumers is used before it is read again.
const agentsFresh = time.Second

// agentList is the consumers of RUNS (one per agent and queue) and what they describe, as last
// read, or why they could not be: cards are asked for by anyone, so the server is asked at
// most once per agentsFresh, by one caller while the others wait, within their contexts.
type agentList struct {
	turn  chan struct{} // holds one token: the caller that may read or refresh the list
	read  time.Time
	names map[string]string // consumer name: description
	err   error
}

// AgentDescription returns what the agent's runtimes say it does (QueueConfig.Description), as
// the agent's consumer of queue has it: ErrNoAgent when no runtime of the agent has opened the
// queue. The answer may be up to a second old.
func (b *Bus) AgentDescription(ctx context.Context, queue routing.Queue, agent string) (string, error) {
	name, err := queue.Consumer(agent)
	if err != nil {
		return "", err
	}
	l := &b.agents
	select {
	case l.turn <- struct{}{}:
		defer func() { <-l.turn }()
	case <-ctx.Done():
		return "", ctx.Err()
	}
	if time.Since(l.read) > agentsFresh {
		l.names, l.err = b.readAgents(context.WithoutCancel(ctx)) // kept for all: not one caller's end
		l.read = time.Now()
	}
	if l.err != nil {
		return "", l.err
	}
	description, ok := l.names[name]
	if !ok {
		return "", fmt.Errorf("%w %q", ErrNoAgent, agent)
	}
	return description, nil
}

// readAgents lists the consumers of RUNS and their descriptions.
func (b *Bus) readAgents(ctx context.Context) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	s, err := b.js.Stream(ctx, routing.StreamRuns)
	if err != nil {
		return nil, b.wrap("stream "+routing.StreamRuns, err)
	}
	names := map[string]string{}
	list := s.ListConsumers(ctx)
	for info := range list.Info() {
		names[info.Config.Durable] = info.Config.Description
	}
	if err := list.Err(); err != nil {
		return nil, b.wrap("consumers of "+routing.StreamRuns, err)
	}
	return names, nil
}
