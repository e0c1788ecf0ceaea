package sse

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/nats-io/nuid"

	"github.com/eventsd/eventsd/bus"
	"github.com/eventsd/eventsd/event"
	"github.com/eventsd/eventsd/routing"
	"github.com/eventsd/eventsd/tasks"
)

// subscribeToTask answers SubscribeToTask: an SSE stream of JSON-RPC responses carrying the
// request's id, first the task as it is, then each of its status and artifact updates, until
// it reaches a terminal or interrupted state. Every frame carries an id: cursor of the A2A
// stream; a request with Last-Event-ID continues after it (the task is not sent again).
func (h *Handler) subscribeToTask(w http.ResponseWriter, r *http.Request, c a2aCall) {
	taskID, _, rerr := c.taskParams()
	if rerr != nil {
		writeRPC(w, c.req.ID, nil, rerr)
		return
	}
	view, at, rerr := h.ownTask(r.Context(), c, taskID)
	if rerr != nil {
		writeRPC(w, c.req.ID, nil, rerr)
		return
	}
	from := routing.Cursor{Seq: at, Epoch: view.Epoch}
	st, last := view.Task.Status.State, view.Seq // the task's state, and its last update
	cursor, err := routing.ParseCursor(lastEventID(r))
	resumed := err == nil && cursor.Epoch == view.Epoch && cursor.Seq <= at
	// Resumed after the task's last update, or not resumed: the task as it is decides.
	if (!resumed || cursor.Seq >= last) && tasks.Terminal(st) {
		writeRPC(w, c.req.ID, nil, &rpcError{a2aUnsupported, "task " + taskID + " is " + st + ": nothing more will come"})
		return
	}
	if resumed {
		// The updates after the cursor, the task done or not. The view as of the cursor is not
		// kept: the resumed follower starts from the task's ids alone.
		from = cursor
		*view = tasks.View{Epoch: view.Epoch, Agent: view.Agent, Task: tasks.Task{ID: view.Task.ID, ContextID: view.Task.ContextID}}
	}
	tf, ok := h.openTask(w, r, c, *view, from)
	if !ok {
		return
	}
	defer tf.finish("")
	tf.begin(w, r)
	// A task that waits for the user is settled: what came before the cursor, or its task, is
	// all there is to send.
	reason := taskSettled
	switch {
	case resumed && cursor.Seq >= last && tasks.Interrupted(st):
	case resumed:
		reason = tf.follow(r.Context())
	case tf.send(from, &tasks.Response{Task: &view.Task}) != nil:
		reason = taskClient
	case !tasks.Interrupted(st):
		reason = tf.follow(r.Context())
	}
	tf.ended(reason)
}

// openTask opens the feed of the caller's A2A events from after cursor, for a follower of the
// task whose view is view; false when it answered an error.
func (h *Handler) openTask(w http.ResponseWriter, r *http.Request, c a2aCall, view tasks.View, from routing.Cursor) (*taskFollower, bool) {
	if !h.admit(w, c.id.User) {
		return nil, false
	}
	sub := routing.Subscription{Channel: routing.A2A, User: c.id.User}
	if from.Seq > 0 {
		sub.Cursor = &from
	}
	// The feed may outlast this request (a task followed on after its client left); until it is
	// open, the client leaving ends it.
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	leaving := context.AfterFunc(r.Context(), cancel)
	f, err := h.subscribe(ctx, sub)
	if err == nil && !leaving() {
		f.Close()
		err = r.Context().Err()
	}
	if err != nil {
		cancel()
		h.conns.add(c.id.User, -1)
		writeRPC(w, c.req.ID, nil, &rpcError{rpcInternal, err.Error()})
		return nil, false
	}
	return &taskFollower{h: h, user: c.id.User, reqID: c.req.ID, method: c.req.Method, view: view, f: f, stop: cancel}, true
}

// begin starts the answer's SSE stream, for the streaming methods; ended, which must follow,
// counts and logs its end.
func (tf *taskFollower) begin(w http.ResponseWriter, r *http.Request) {
	streamHeaders(w.Header())
	w.WriteHeader(http.StatusOK)
	tf.out = &heldWriter{w: w, rc: http.NewResponseController(w), left: r.Context().Done()}
	tf.started = tf.h.now()
	tf.h.cfg.Metrics.StreamOpened(routing.A2A)
}

// ended counts and logs the end of the answer's SSE stream, for reason (a task* reason).
func (tf *taskFollower) ended(reason string) {
	tf.h.streamEnded(routing.Subscription{Channel: routing.A2A, User: tf.user}, tf.started, tf.sent, reason, nil)
}

func isStreaming(method string) bool { return method != "SendMessage" }

// taskFollower follows one task of a user through the user's A2A events, and writes its stream
// responses to an SSE stream (out; none for a SendMessage, which answers the task at the end).
// With a run, it also follows the message's run: a run that eventsd ends (no runtime, runtime
// lost, past --max-run-duration) ends the task in TASK_STATE_FAILED.
type taskFollower struct {
	h      *Handler
	user   string
	reqID  json.RawMessage
	method string
	view   tasks.View
	f      feed
	out    wire // nil: nothing is written
	run    *bus.Run
	req    bus.RunRequest
	after  uint64             // the message's first event: the task settles only from there on
	stop   context.CancelFunc // ends the feed's context

	started time.Time // when the SSE stream began
	sent    int       // stream responses written
}

// finish stops following the task for reason (one of the task* reasons, or "" for none): the
// feed closes, and the user's stream is given back once the run, if any, is no longer followed.
// A run whose feed was lost is followed on without it, so that a run eventsd ends still ends its
// task; a run no runtime took when eventsd stops ends its task here.
func (tf *taskFollower) finish(reason string) {
	tf.f.Close()
	tf.stop()
	release := func() { tf.h.conns.add(tf.user, -1) }
	switch {
	case tf.run == nil:
		release()
	case reason == taskLost:
		tf.h.followRun(tf.run, release, func(err error) {
			if why, ok := tf.h.taskFailure(tf.req, err); ok {
				tf.h.publishTaskEnd(tf.req, why)
			}
		})
	default:
		if reason == taskStopped && tf.run.EndIfWaiting(errStopped) {
			// Its request goes with this node: no runtime may take it now, and its task ends
			// here rather than wait in a queue that no node answers for.
			tf.h.publishTaskEnd(tf.req, "eventsd stopped before a runtime of the agent took the message")
		}
		_ = tf.run.Close()
		release()
	}
}

// errStopped ends the run of a message no runtime took when eventsd stops.
var errStopped = errors.New("sse: eventsd stopped")

// What ends following a task.
const (
	taskSettled = "settled" // the task reached a terminal or interrupted state
	taskClient  = "client"  // the client left, or a write failed
	taskLost    = "lost"    // the feed ended: the task can no longer be followed
	taskStopped = "shutdown"
)

// follow applies the task's events to its view and sends the stream responses they stand for,
// until the task is settled, the client leaves (ctx), the feed ends or the handler closes.
func (tf *taskFollower) follow(ctx context.Context) string {
	ready := make(chan struct{}, 1)
	tf.f.Notify(func() { signal(ready) })
	beat := time.NewTicker(tf.h.cfg.Heartbeat)
	defer beat.Stop()
	var ended <-chan struct{}
	var grace <-chan time.Time
	limit := time.NewTimer(tf.h.cfg.MaxRunDuration)
	defer limit.Stop()
	if tf.run != nil {
		ended = tf.run.Ended()
	}
	var batch []bus.Event
	for {
		select {
		case <-ready:
			var more bool
			batch, more = tf.f.Take(batch[:0], maxBatchEvents)
			if reason := tf.apply(batch); reason != "" {
				return reason
			}
			if !more {
				tf.fail(fmt.Sprintf("the task's events can no longer be followed (%v): subscribe to it again", tf.f.Err()))
				return taskLost
			}
		case <-limit.C:
			if tf.run != nil {
				tf.run.End(errRunTimeout) // its runtime stops at its next keep-alive
			}
		case <-ended:
			ended = nil
			why, failed := tf.h.taskFailure(tf.req, tf.run.Err())
			if !failed {
				grace = time.After(runEndGrace) // its runtime ended it: the task's state is on its way
			} else if !tf.h.publishTaskEnd(tf.req, why) {
				tf.fail(why)
				return taskLost
			}
		case <-grace:
			if why := "the agent's runtime ended its work on the message without the task's state"; !tf.h.publishTaskEnd(tf.req, why) {
				tf.fail(why)
				return taskLost
			}
		case <-beat.C:
			if tf.write([]byte(": heartbeat\n\n")) != nil {
				return taskClient
			}
		case <-ctx.Done():
			return taskClient
		case <-tf.h.done:
			tf.fail("eventsd is stopping: subscribe to the task again")
			return taskStopped
		}
	}
}

// apply applies evs to the view and sends their stream responses; it gives why following ends,
// or "".
func (tf *taskFollower) apply(evs []bus.Event) string {
	for _, ev := range evs {
		resp, err := tf.view.Apply(ev.Data, ev.Cursor.Seq, ev.Cursor.Epoch)
		if err != nil || resp == nil {
			continue
		}
		tf.view.Bound(tasks.MaxViewBytes)
		if tf.send(ev.Cursor, resp) != nil {
			return taskClient
		}
		// A task waits for the user from its message's first event on; it is done whenever.
		st := tf.view.Task.Status.State
		if !tasks.Terminal(st) && (ev.Cursor.Seq < tf.after || !tasks.Interrupted(st)) {
			continue
		}
		if tf.run != nil && st == tasks.StateCanceled {
			// Cancelled while no runtime listened for it (one may have just taken it): a
			// runtime on it hears at its next keep-alive that it is to stop.
			tf.run.End(errTaskOver)
		}
		return taskSettled
	}
	return ""
}

// send writes one stream response, wrapped in a JSON-RPC response with the request's id, with
// its cursor.
func (tf *taskFollower) send(cursor routing.Cursor, resp *tasks.Response) error {
	data, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": tf.reqID, "result": resp})
	if err != nil {
		return err
	}
	frame := append([]byte("id: "), cursor.Append(nil)...)
	frame = append(append(append(frame, "\ndata: "...), data...), "\n\n"...)
	if tf.out != nil {
		tf.sent++
	}
	return tf.write(frame)
}

// fail writes a JSON-RPC error that ends the stream.
func (tf *taskFollower) fail(why string) {
	data, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": tf.reqID, "error": rpcError{rpcInternal, why}})
	_ = tf.write(append(append([]byte("data: "), data...), "\n\n"...))
}

func (tf *taskFollower) write(b []byte) error {
	if tf.out == nil {
		return nil
	}
	return writeWithin(tf.out, tf.h.cfg.WriteTimeout, b)
}

// errTaskOver ends the run of a message whose task is done.
var errTaskOver = errors.New("sse: the task is over")

// taskFailure says why a task whose message's run failed with err (bus.Run.Err) failed; false
// for a run its runtime ended, whose last event is on its way.
func (h *Handler) taskFailure(req bus.RunRequest, err error) (string, bool) {
	if err == nil || errors.Is(err, errTaskOver) {
		return "", false
	}
	end, _ := h.runFailure(req, err)
	return end.Message, true
}

// publishTaskEnd ends the task of req in TASK_STATE_FAILED with an agent message saying why,
// and reports whether that is stored. It is not bound to a request: its client may be gone.
func (h *Handler) publishTaskEnd(req bus.RunRequest, why string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.WriteTimeout)
	defer cancel()
	if _, err := h.cfg.Broker.PublishTaskEvent(ctx, req.User, req.ThreadID, req.RunID, tasks.Failed(why), ""); err != nil {
		h.log.Warn("publishing the end of a task", "user", req.User, "task", req.RunID, "err", err)
		return false
	}
	return true
}

// userMessage is what eventsd reads of a message a client sends.
type userMessage struct {
	MessageID string            `json:"messageId"`
	ContextID string            `json:"contextId"`
	TaskID    string            `json:"taskId"`
	Role      string            `json:"role"`
	Parts     []json.RawMessage `json:"parts"`
}

// sendParams are the params of SendMessage and SendStreamingMessage.
type sendParams struct {
	Message       json.RawMessage `json:"message"`
	Configuration *struct {
		ReturnImmediately bool `json:"returnImmediately"`
	} `json:"configuration"`
}

// decodeSend reads and checks the params of a SendMessage: a user's message of parts, each
// one of text, raw, url or data.
func decodeSend(params json.RawMessage) (sendParams, userMessage, *rpcError) {
	var p sendParams
	var m userMessage
	bad := func(why string) (sendParams, userMessage, *rpcError) {
		return p, m, &rpcError{rpcInvalidParams, why}
	}
	if err := json.Unmarshal(params, &p); err != nil {
		return bad("want params {message, configuration?, metadata?}: " + err.Error())
	}
	if err := json.Unmarshal(p.Message, &m); err != nil || len(p.Message) == 0 || p.Message[0] != '{' {
		return bad("message: want an A2A message object")
	}
	switch {
	case m.MessageID == "" || len(m.MessageID) > bus.MaxRunIDLen || len(m.TaskID) > bus.MaxRunIDLen || len(m.ContextID) > bus.MaxRunIDLen:
		return bad(fmt.Sprintf("message: want a messageId, and ids of at most %d bytes", bus.MaxRunIDLen))
	case m.Role != tasks.RoleUser:
		return bad(`message.role: want "` + tasks.RoleUser + `"`)
	case len(m.Parts) == 0:
		return bad("message.parts: want at least one part")
	}
	for i, raw := range m.Parts {
		if !validPart(raw) {
			return bad(fmt.Sprintf("message.parts[%d]: want an object with one of text, raw, url (strings) or data", i))
		}
	}
	return p, m, nil
}

// validPart reports whether raw is an A2A 1.0 part: exactly one of text, raw, url or data.
func validPart(raw json.RawMessage) bool {
	var p map[string]json.RawMessage
	if json.Unmarshal(raw, &p) != nil || p == nil {
		return false
	}
	n := 0
	for _, k := range []string{"text", "raw", "url"} {
		if v, ok := p[k]; ok {
			var s string
			if json.Unmarshal(v, &s) != nil {
				return false
			}
			n++
		}
	}
	if _, ok := p["data"]; ok {
		n++
	}
	return n == 1
}

// withIDs is the client's message with the task's and the context's ids, as stored.
func withIDs(raw json.RawMessage, taskID, contextID string) (json.RawMessage, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return nil, err
	}
	fields["taskId"], _ = json.Marshal(taskID)
	fields["contextId"], _ = json.Marshal(contextID)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // as the client sent it, not up to six times longer
	if err := enc.Encode(fields); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// sendMessage answers SendMessage and SendStreamingMessage: the message starts a new task of
// the agent, or continues one that waits for the user; it goes to one of the agent's runtimes
// through the tasks queue, and the answer is the task, streamed as SubscribeToTask streams it
// (SendStreamingMessage), or as it is once it is settled (SendMessage; at once with
// configuration.returnImmediately).
func (h *Handler) sendMessage(w http.ResponseWriter, r *http.Request, c a2aCall) {
	p, m, rerr := decodeSend(c.req.Params)
	var view tasks.View
	var from routing.Cursor
	var first event.Event
	if rerr == nil {
		view, from, first, rerr = h.taskFor(r.Context(), c, m)
	}
	var req bus.RunRequest
	if rerr == nil {
		req = bus.RunRequest{Queue: routing.Tasks, Agent: c.agent, User: c.id.User, ThreadID: view.Task.ContextID, RunID: view.Task.ID}
		if req.Input, rerr = storedMessage(p.Message, req, &first); rerr == nil && len(req.Input) > int(h.cfg.MaxRunBody) {
			rerr = &rpcError{rpcInvalidParams, fmt.Sprintf("message: over --max-run-body (%d bytes)", h.cfg.MaxRunBody)}
		}
	}
	if rerr != nil {
		writeRPC(w, c.req.ID, nil, rerr)
		return
	}
	tf, ok := h.openTask(w, r, c, view, from)
	if !ok {
		return
	}
	if rerr := h.startTask(r.Context(), tf, req, first); rerr != nil {
		tf.finish("")
		writeRPC(w, c.req.ID, nil, rerr)
		return
	}
	var now *tasks.Task
	if p.Configuration != nil && p.Configuration.ReturnImmediately {
		now = submitted(view, first)
	}
	h.answerTask(w, r, tf, from, now)
}

// submitted is the task as it is once the message's first event is stored.
func submitted(view tasks.View, first event.Event) *tasks.Task {
	data, err := event.Encode(first, time.Now())
	if err == nil {
		_, err = view.Apply(data, view.Seq+1, view.Epoch)
	}
	if err != nil {
		view.Task.Status = tasks.Status{State: tasks.StateSubmitted}
	}
	return &view.Task
}

// storedMessage sets the task's ids in the message, and in the first event, which carries it.
func storedMessage(raw json.RawMessage, req bus.RunRequest, first *event.Event) (json.RawMessage, *rpcError) {
	msg, err := withIDs(raw, req.RunID, req.ThreadID)
	if err != nil {
		return nil, &rpcError{rpcInvalidParams, "message: " + err.Error()}
	}
	switch e := (*first).(type) {
	case event.TaskSubmitted:
		e.Input = msg
		*first = e
	case event.TaskStatusUpdate:
		e.Message = msg
		*first = e
	}
	return msg, nil
}

// taskFor finds the task a message is for, and the event that stores the message: a new task
// (TASK_SUBMITTED), or the caller's task of the agent that waits for the user (a
// TASK_STATUS_UPDATE back to TASK_STATE_SUBMITTED, with the message), then followed from its
// view's cursor.
func (h *Handler) taskFor(ctx context.Context, c a2aCall, m userMessage) (tasks.View, routing.Cursor, event.Event, *rpcError) {
	if m.TaskID == "" {
		contextID := m.ContextID
		if contextID == "" {
			contextID = nuid.Next()
		}
		view := tasks.View{Task: tasks.Task{ID: nuid.Next(), ContextID: contextID}}
		return view, routing.Cursor{}, event.TaskSubmitted{TaskID: view.Task.ID, ContextID: contextID, AgentName: c.agent}, nil
	}
	view, at, rerr := h.ownTask(ctx, c, m.TaskID)
	state := ""
	if rerr == nil {
		state = view.Task.Status.State
	}
	switch {
	case rerr != nil:
	case tasks.Terminal(state):
		rerr = &rpcError{a2aUnsupported, "task " + m.TaskID + " is " + state + ": it takes no more messages"}
	case !tasks.Interrupted(state):
		rerr = &rpcError{a2aUnsupported, "task " + m.TaskID + " is " + state + ": a message continues a task only when it waits for the user"}
	case m.ContextID != "" && m.ContextID != view.Task.ContextID:
		rerr = &rpcError{rpcInvalidParams, "message.contextId: the task's context is " + view.Task.ContextID}
	}
	if rerr != nil {
		return tasks.View{}, routing.Cursor{}, nil, rerr
	}
	first := event.TaskStatusUpdate{TaskID: m.TaskID, ContextID: view.Task.ContextID, State: tasks.StateSubmitted}
	return *view, routing.Cursor{Seq: at, Epoch: view.Epoch}, first, nil
}

// startTask stores the message's first event, then the message on the agent's tasks queue;
// the follower follows its run from then on. A message the queue refuses ends its task in
// TASK_STATE_FAILED.
//
// Of two messages that continue one task at once, one does: the first event of a continuation
// is de-duplicated by the task and the view it was checked against, so the other is a duplicate
// and is refused.
func (h *Handler) startTask(ctx context.Context, tf *taskFollower, req bus.RunRequest, first event.Event) *rpcError {
	msgID := ""
	if tf.view.Seq > 0 { // a continuation
		sum := sha256.Sum256(fmt.Appendf(nil, "%s\x00%s\x00%d\x00%d", req.User, req.RunID, tf.view.Epoch, tf.view.Seq))
		msgID = "continue-" + hex.EncodeToString(sum[:16])
	}
	ack, err := h.cfg.Broker.PublishTaskEvent(ctx, req.User, req.ThreadID, req.RunID, first, msgID)
	switch {
	case err != nil:
		return &rpcError{rpcInternal, err.Error()}
	case ack.Duplicate:
		return &rpcError{a2aUnsupported, "task " + req.RunID + " was continued by another message meanwhile"}
	}
	tf.after = ack.Seq
	run, err := h.cfg.Broker.EnqueueRun(ctx, req, h.runTimeout())
	if err != nil {
		h.publishTaskEnd(req, "the agent's queue refused the message: "+err.Error())
		return &rpcError{rpcInternal, err.Error()}
	}
	tf.run, tf.req = run, req
	return nil
}

// answerTask answers a message: as SubscribeToTask (SendStreamingMessage; a continued task
// first as it was), or with the task once it is settled (SendMessage), or at once, as
// submitted (returnImmediately). A task whose client leaves is followed on until it is
// settled, so that a run that eventsd ends still ends it.
func (h *Handler) answerTask(w http.ResponseWriter, r *http.Request, tf *taskFollower, from routing.Cursor, now *tasks.Task) {
	reason := ""
	switch {
	case isStreaming(tf.method):
		tf.begin(w, r)
		reason = taskClient
		if from.Seq == 0 || tf.send(from, &tasks.Response{Task: &tf.view.Task}) == nil {
			reason = tf.follow(r.Context())
		}
		tf.ended(reason)
	case now != nil:
		reason = taskClient
		writeRPC(w, tf.reqID, map[string]any{"task": now}, nil)
	default:
		reason = tf.follow(r.Context())
		switch reason {
		case taskSettled:
			writeRPC(w, tf.reqID, map[string]any{"task": tf.view.Task}, nil)
		case taskLost:
			writeRPC(w, tf.reqID, nil, &rpcError{rpcInternal, "the task's events can no longer be followed: get it again"})
		case taskStopped:
			writeRPC(w, tf.reqID, nil, &rpcError{rpcInternal, "eventsd is stopping: get the task again"})
		}
	}
	if reason == taskClient {
		if h.inBackground(func() {
			tf.out = nil
			tf.finish(tf.follow(context.Background()))
		}) {
			return
		}
		reason = taskStopped // eventsd is stopping: not followed on
	}
	tf.finish(reason)
}

// cancelTask answers CancelTask. The runtime that holds the task is asked to cancel it (see
// agentrt.ErrCanceled); a task no runtime holds (it waits for the user, or for a runtime) is
// cancelled by eventsd itself. The answer is the task once it is cancelled, or as it is after
// the write timeout when its runtime has not cancelled it by then.
func (h *Handler) cancelTask(ctx context.Context, c a2aCall) (any, *rpcError) {
	taskID, _, rerr := c.taskParams()
	if rerr != nil {
		return nil, rerr
	}
	view, at, rerr := h.ownTask(ctx, c, taskID)
	if rerr != nil {
		return nil, rerr
	}
	if st := view.Task.Status.State; tasks.Terminal(st) {
		return nil, &rpcError{a2aTaskNotCancelable, "task " + taskID + " is " + st}
	}
	f, err := h.subscribe(ctx, routing.Subscription{Channel: routing.A2A, User: c.id.User, Cursor: &routing.Cursor{Seq: at, Epoch: view.Epoch}})
	if err != nil {
		return nil, &rpcError{rpcInternal, err.Error()}
	}
	defer f.Close()
	heard, err := h.cfg.Broker.CancelTask(ctx, c.id.User, taskID)
	if err == nil && !heard {
		ev := event.TaskStatusUpdate{TaskID: taskID, ContextID: view.Task.ContextID, State: tasks.StateCanceled}
		_, err = h.cfg.Broker.PublishTaskEvent(ctx, c.id.User, view.Task.ContextID, taskID, ev, "")
	}
	if err != nil {
		return nil, &rpcError{rpcInternal, err.Error()}
	}
	wait, cancel := context.WithTimeout(ctx, h.cfg.WriteTimeout)
	defer cancel()
	tf := &taskFollower{h: h, user: c.id.User, reqID: c.req.ID, view: *view, f: f}
	tf.follow(wait)
	return tf.view.Task, nil
}
