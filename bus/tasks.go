package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/eventsd/eventsd/routing"
	"github.com/eventsd/eventsd/tasks"
	"github.com/eventsd/eventsd/threads"
)

// tasksProjector is the projector of the A2A task views, which the Bus holds.
type tasksProjector = projector[tasks.View]

// taskOf reads the taskId of a stored A2A event.
func taskOf(data []byte) string {
	var e struct {
		TaskID string `json:"taskId"`
	}
	if json.Unmarshal(data, &e) != nil || len(e.TaskID) > MaxRunIDLen {
		return ""
	}
	return e.TaskID
}

// tasksKind is the task views: one per user and task (keyed as threads are), of the A2A
// stream's events that name a task, by the rules of package tasks.
var tasksKind = viewKind[tasks.View]{
	name:   "tasks",
	stream: routing.StreamA2A,
	token: func(subject string) (string, bool) {
		s, err := routing.ParseSubject(subject)
		return s.Token, err == nil && s.Channel == routing.A2A
	},
	key: func(tok string, data []byte) (string, bool) {
		id := taskOf(data)
		return threads.Key(tok, id), id != ""
	},
	init:     func(v *tasks.View, data []byte) { v.Task.ID = taskOf(data) },
	fresh:    true,
	subject:  func(tok string) string { return "a2a." + tok + ".*" },
	filters:  func(tok string) []string { return []string{"a2a." + tok + ".*"} },
	relevant: func(string) bool { return true },
	apply: func(v *tasks.View, limit int, epoch uint64, e streamEvent) (bool, error) {
		resp, err := v.Apply(e.data, e.seq, epoch)
		v.Bound(limit)
		return resp != nil, err
	},
	at:      func(v *tasks.View) (epoch, seq uint64) { return v.Epoch, v.Seq },
	created: indexViews(MaxTasksPerUser),
	reason: func(err error) string {
		if errors.Is(err, tasks.ErrMalformed) {
			return skipMalformed
		}
		return ""
	},
	maxViewBytes: tasks.MaxViewBytes,
	batchEvents:  256,
	batchBytes:   4 << 20,
}

// MaxTasksPerUser bounds the task views kept for one user: past it, the views of the user's
// tasks submitted longest ago are dropped (GetTask then finds no such task).
const MaxTasksPerUser = 1000

// StartTasks starts the tasks projector: it follows the A2A stream and keeps the view of each
// task in the TASKS bucket, until the Bus closes (ctx bounds only the start).
func (b *Bus) StartTasks(ctx context.Context) error {
	kv, err := b.js.KeyValue(ctx, routing.BucketTasks)
	if err != nil {
		return b.wrap("bucket "+routing.BucketTasks, err)
	}
	return b.taskViews.start(ctx, b, tasksKind, kv)
}

// ErrTaskNotFound is returned for a task the user has none of.
var ErrTaskNotFound = errors.New("bus: no such task")

// TaskView returns the view of a task of user, as the tasks projector has it once it has
// caught up with the A2A stream (within a moment), and the A2A stream sequence it reflects:
// every event of the task up to it, and none after. Another user's task, one never submitted,
// or one of an earlier life of the stream, is ErrTaskNotFound.
func (b *Bus) TaskView(ctx context.Context, user, taskID string) (*tasks.View, uint64, error) {
	p := &b.taskViews
	if p.kv == nil {
		return nil, 0, fmt.Errorf("%w: task views are not kept on this node (StartTasks)", ErrUnavailable)
	}
	tok, err := routing.UserToken(user)
	if err != nil {
		return nil, 0, err
	}
	p.catchUp(ctx)
	epoch, applied := p.pos.position() // before the view
	view, _, err := p.read(ctx, threads.Key(tok, taskID), epoch)
	if err != nil && !errors.Is(err, errMalformedView) {
		return nil, 0, err
	}
	if err != nil || view.Epoch != epoch || view.Task.ID != taskID || view.Seq == 0 {
		return nil, 0, fmt.Errorf("%w: %q", ErrTaskNotFound, taskID)
	}
	if b.cfg.Streams.Replicas > 1 {
		// On a replicated bucket the read may come from a replica behind the projector: from
		// the view's own sequence, the events after it follow.
		return view, view.Seq, nil
	}
	return view, max(applied, view.Seq), nil
}

// ensureTasksBucket creates the TASKS bucket, or updates it to the configured settings.
func (b *Bus) ensureTasksBucket(ctx context.Context) error {
	return b.ensureViewBucket(ctx, routing.BucketTasks, "each A2A task's view, for GetTask and SubscribeToTask")
}
