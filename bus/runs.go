package bus

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsd/eventsd/event"
	"github.com/eventsd/eventsd/routing"
)

// Runs of agents. A node stores a request on the RUNS work queue and follows it (EnqueueRun,
// Run); a runtime takes requests from its agent's share of the queue (RunQueue, TakenRun),
// keeps each alive while it works, publishes the run's events and says when the run is over.
//
// A request is run at most once. Before running it, a runtime claims it from the node that
// enqueued it, on a core NATS subject of that node's (the request's Claim), and the node says
// yes once, only while it still waits for a runtime: a request either runs or ends in
// ErrNoRuntime, never both. The runtime then removes the request from the queue, which holds
// only requests waiting for a runtime. While it runs, the runtime keeps the run alive with the
// node, which counts it lost (ErrRuntimeLost) once no keep-alive came for the runtime's
// AckWait, and answers a keep-alive of a run it has ended (lost, or past its time) with
// ErrRunEnded, so that the runtime stops.

// Sentinel errors of runs.
var (
	// ErrNoRuntime ends a run that no runtime took within its timeout.
	ErrNoRuntime = errors.New("bus: no runtime took the run request in time")
	// ErrRuntimeLost ends a run whose runtime stopped keeping it alive: the request is not
	// run again.
	ErrRuntimeLost = errors.New("bus: the runtime of the run was lost")
	// ErrInvalidRun is returned for a run request that lacks its thread or run id, or whose
	// input is not JSON.
	ErrInvalidRun = errors.New("bus: invalid run request")
	// ErrRunExists is returned for a request for a run of a thread that was requested already
	// (within the streams' duplicate window).
	ErrRunExists = errors.New("bus: the run was requested already")
	// ErrRunEnded is what a runtime's KeepAlive returns once the node that follows the run has
	// ended it: the runtime stops, and publishes nothing more of the run.
	ErrRunEnded = errors.New("bus: the run was ended by the node that follows it")
)

// DefaultRunAckWait is how long a runtime may go without keeping its request alive before it
// counts as lost, where QueueConfig sets nothing.
const DefaultRunAckWait = 10 * time.Second

// The AckWait a runtime may use; outside it, the nearest bound applies.
const (
	MinRunAckWait = time.Second
	MaxRunAckWait = 10 * time.Minute
)

// clampAckWait returns d within MinRunAckWait and MaxRunAckWait; 0 is DefaultRunAckWait.
func clampAckWait(d time.Duration) time.Duration {
	return min(max(cmp.Or(d, DefaultRunAckWait), MinRunAckWait), MaxRunAckWait)
}

// maxRunDeliveries bounds how often the queue delivers one request. Only the first runtime to
// claim it runs it; the others are refused. More than one delivery covers a runtime that goes
// away between taking a request and claiming it, and a node that does not answer a claim for a
// moment (reconnecting).
const maxRunDeliveries = 5

// claimRetry is how long a request whose node did not answer its claim waits before it is
// delivered again.
const claimRetry = time.Second

// MaxRunIDLen bounds the thread id and the run id of a run request, in bytes: the bound of an
// event's threadId and runId.
const MaxRunIDLen = event.MaxAttributionBytes

// RunRequest is a request for one run of an agent, as stored on the RUNS work queue: an AG-UI
// run (Queue routing.Runs, or empty), or an A2A message for a task (Queue routing.Tasks), whose
// ThreadID is the task's context id and RunID the task id.
type RunRequest struct {
	Queue    routing.Queue `json:"queue,omitempty"`
	Agent    string        `json:"agent"`
	User     string        `json:"user"`
	ThreadID string        `json:"threadId"`
	RunID    string        `json:"runId"`
	// Input is the AG-UI RunAgentInput as the client sent it, or the A2A message.
	Input json.RawMessage `json:"input"`
	// Claim is the core NATS subject, an inbox of the node that enqueued the request, on which
	// its runtime claims it and keeps it alive; EnqueueRun sets it.
	Claim string `json:"claim"`
}

// queue is the work queue the request is for.
func (r RunRequest) queue() routing.Queue { return cmp.Or(r.Queue, routing.Runs) }

// subject checks the request and returns the subject it is stored on.
func (r RunRequest) subject() (string, error) {
	subject, err := r.queue().Subject(r.Agent, r.User)
	switch {
	case err != nil:
		return "", err
	case r.ThreadID == "" || r.RunID == "":
		return "", fmt.Errorf("%w: want a thread id and a run id", ErrInvalidRun)
	case len(r.ThreadID) > MaxRunIDLen || len(r.RunID) > MaxRunIDLen:
		return "", fmt.Errorf("%w: a thread or run id over %d bytes", ErrInvalidRun, MaxRunIDLen)
	case !json.Valid(r.Input):
		return "", fmt.Errorf("%w: input is not JSON", ErrInvalidRun)
	}
	return subject, nil
}

// What a runtime sends on a request's Claim subject.
const (
	opClaim = "claim" // a request, answered with claimReply
	opAlive = "alive" // the run goes on
	opDone  = "done"  // the run is over
)

// runtimeSignal is what a runtime sends the node that follows its run.
type runtimeSignal struct {
	Op string `json:"op"`
	// AckWait, with a claim, is how long the node waits for a keep-alive before it counts the
	// runtime lost.
	AckWait time.Duration `json:"ackWait,omitempty"`
}

// claimReply is a node's answer to a runtime that claims a request.
type claimReply struct {
	Claimed bool `json:"claimed"`
}

// aliveReply is a node's answer to a keep-alive.
type aliveReply struct {
	Ended bool `json:"ended"` // the node ended the run: the runtime stops
}

type runState int

const (
	runWaiting runState = iota // stored, no runtime has claimed it
	runTaken                   // a runtime claimed it and is running it
	runEnded                   // over, failed, or no longer followed
)

// Run follows one request on the node that enqueued it: until a runtime takes it, then until
// its runtime says it is over or is lost. The run's events themselves are on the agui channel.
type Run struct {
	b     *Bus
	taken chan struct{}
	ended chan struct{}

	mu       sync.Mutex
	state    runState
	seq      uint64 // the request's sequence in RUNS; 0 until it is stored
	err      error
	timer    *time.Timer   // the wait for a runtime, then for its next keep-alive
	deadline time.Time     // when the timer is due: a firing before it is a stale one
	ackWait  time.Duration // the runtime's, once taken
	sub      *nats.Subscription
	closed   bool
}

// never is a timer's duration that does not pass: the timer waits to be set.
const never = time.Duration(1<<63 - 1)

// EnqueueRun stores req on the agent's work queue, and follows it: a runtime must take it
// within timeout (0: the streams' RunTimeout, 30 s by default), else the run fails with
// ErrNoRuntime. A second request for the same run of the same thread is refused with
// ErrRunExists; a full queue with ErrUnavailable. The caller must Close the Run.
func (b *Bus) EnqueueRun(ctx context.Context, req RunRequest, timeout time.Duration) (*Run, error) {
	subject, err := req.subject()
	if err != nil {
		return nil, err
	}
	if timeout <= 0 {
		timeout = cmp.Or(b.cfg.Streams.RunTimeout, routing.DefaultStreamOptions.RunTimeout)
	}
	r := &Run{b: b, taken: make(chan struct{}), ended: make(chan struct{})}
	r.timer = time.AfterFunc(never, r.expire)
	req.Claim = b.nc.NewInbox()
	data, err := encodeRequest(req)
	if err != nil {
		return nil, err
	}
	// Subscribed before the request is stored: the server sees this connection's subscription
	// before its publish, so no claim can come before it.
	if r.sub, err = b.nc.Subscribe(req.Claim, r.onSignal); err != nil {
		return nil, b.wrap("subscribe "+req.Claim, err)
	}
	ack, err := b.Publish(ctx, subject, data, runMsgID(req))
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil && ack.Duplicate {
		err = fmt.Errorf("%w: run %q of thread %q", ErrRunExists, req.RunID, req.ThreadID)
	} else if err != nil && !errors.Is(err, ErrUnavailable) && !errors.Is(err, ErrTooLarge) {
		err = fmt.Errorf("%w: the run queue refused the request (full?): %v", ErrUnavailable, err)
	}
	if err != nil {
		// The request may be stored all the same (the acknowledgement was lost): no runtime
		// may run it.
		r.end(err)
		_ = r.sub.Unsubscribe()
		return nil, err
	}
	r.seq = ack.Seq
	if r.state == runWaiting {
		r.arm(timeout)
	}
	return r, nil
}

// encodeRequest is req's JSON, its input as it came: not HTML-escaped, which would make it up
// to six times longer than the limit it was checked against.
func encodeRequest(req RunRequest) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(req); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidRun, err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// runMsgID de-duplicates requests for one run of one thread: a hash, since ids may hold any
// character and a message id is a header. A2A messages are not de-duplicated here: a task
// takes many, and the node that stores one has made sure it is the one that continues it.
func runMsgID(req RunRequest) string {
	if req.queue() == routing.Tasks {
		return ""
	}
	h := sha256.Sum256([]byte(req.Agent + "\x00" + req.User + "\x00" + req.ThreadID + "\x00" + req.RunID))
	return "run-" + hex.EncodeToString(h[:16])
}

// Taken is closed once a runtime has claimed the request and runs it.
func (r *Run) Taken() <-chan struct{} { return r.taken }

// Ended is closed once the run is over: its runtime said so (Err is nil), or it failed (Err
// says why).
func (r *Run) Ended() <-chan struct{} { return r.ended }

// Err is ErrNoRuntime, ErrRuntimeLost or the error End was given once the run has failed; nil
// before, and for a run its runtime finished.
func (r *Run) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// End ends the run with err, unless it has ended: a request still waiting is not run, and a
// runtime running it is told at its next keep-alive (ErrRunEnded) and stops.
func (r *Run) End(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.end(err)
}

// EndIfWaiting ends the run with err if no runtime has taken it (none will), and reports
// whether it did.
func (r *Run) EndIfWaiting(err error) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state != runWaiting {
		return false
	}
	r.end(err)
	return true
}

// Close stops following the run. A request that no runtime took is removed from the queue, and
// a runtime that claims it later is refused; a runtime running it goes on (its keep-alives no
// longer reach this node) and ends the run as usual, unless the node ended it: that runtime is
// still told so at its next keep-alive, within its AckWait. Close may be called more than once.
func (r *Run) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	remove := r.state == runWaiting || r.state == runEnded && !closedCh(r.taken)
	// A runtime still running a run this node ended must hear so at its next keep-alive: the
	// node answers for one more AckWait, or until it has told it.
	tell := r.state == runEnded && r.err != nil && closedCh(r.taken)
	r.end(nil)
	seq, ackWait := r.seq, r.ackWait
	r.mu.Unlock()
	if tell {
		time.AfterFunc(ackWait, func() { _ = r.sub.Unsubscribe() })
	} else {
		_ = r.sub.Unsubscribe()
	}
	if !remove || seq == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.b.cfg.Timeout)
	defer cancel()
	s, err := r.b.js.Stream(ctx, routing.StreamRuns)
	if err == nil {
		err = s.DeleteMsg(ctx, seq)
	}
	if err != nil && !errors.Is(err, jetstream.ErrMsgDeleteUnsuccessful) { // not there: gone already
		return r.b.wrap(fmt.Sprintf("remove run request %d", seq), err)
	}
	return nil
}

// closedCh reports whether ch is closed.
func closedCh(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// onSignal follows what the runtime says: a claim is answered yes while the run waits for a
// runtime; a keep-alive puts off the runtime's loss, and is told whether the run was ended;
// done ends the run.
func (r *Run) onSignal(msg *nats.Msg) {
	var sig runtimeSignal
	if json.Unmarshal(msg.Data, &sig) != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var reply any
	switch sig.Op {
	case opClaim:
		ok := r.state == runWaiting
		if ok {
			r.state = runTaken
			close(r.taken)
			r.ackWait = clampAckWait(sig.AckWait)
			r.arm(r.ackWait)
		}
		reply = claimReply{Claimed: ok}
	case opAlive:
		if r.state == runTaken {
			r.arm(r.ackWait)
		}
		reply = aliveReply{Ended: r.err != nil}
		if r.err != nil && r.closed {
			defer func() { _ = r.sub.Unsubscribe() }() // told: nothing more to answer
		}
	case opDone:
		if r.state == runTaken {
			r.end(nil)
		}
	}
	if reply != nil && msg.Reply != "" {
		data, _ := json.Marshal(reply)
		_ = msg.Respond(data)
	}
}

// arm has the timer fire after d; r.mu is held.
func (r *Run) arm(d time.Duration) {
	r.deadline = time.Now().Add(d)
	r.timer.Reset(d)
}

// expire ends the run when its timer fires: no runtime took it in time, or its runtime sent no
// keep-alive for its AckWait. A firing that a claim or a keep-alive put off meanwhile (it
// waited for r.mu while they re-armed the timer) does nothing.
func (r *Run) expire() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Now().Before(r.deadline) {
		return
	}
	switch r.state {
	case runWaiting:
		r.end(ErrNoRuntime)
	case runTaken:
		r.end(ErrRuntimeLost)
	}
}

// end ends the run with err unless it has ended; r.mu is held.
func (r *Run) end(err error) {
	if r.state == runEnded {
		return
	}
	r.state, r.err = runEnded, err
	r.timer.Stop()
	close(r.ended)
}

// PublishRunEvent publishes an AG-UI event of one run for user, attributed to the run: the
// event carries threadID and runID as top-level threadId and runId (RUN_STARTED and
// RUN_FINISHED in their own fields, filled in where empty). An event that names another thread
// or run is refused with ErrInvalidRun.
func (b *Bus) PublishRunEvent(ctx context.Context, user, threadID, runID string, ev event.Event) (Ack, error) {
	if ev.Channel() != routing.AGUI {
		return Ack{}, fmt.Errorf("%w %q: a run publishes AG-UI events", routing.ErrUnknownChannel, ev.Channel())
	}
	if threadID == "" || runID == "" {
		return Ack{}, fmt.Errorf("%w: want a thread id and a run id", ErrInvalidRun)
	}
	subject, err := routing.SubjectFor(routing.AGUI, user, ev.EventType())
	if err != nil {
		return Ack{}, err
	}
	switch e := ev.(type) {
	case event.RunStarted:
		e.ThreadID, e.RunID = cmp.Or(e.ThreadID, threadID), cmp.Or(e.RunID, runID)
		ev = e
	case event.RunFinished:
		e.ThreadID, e.RunID = cmp.Or(e.ThreadID, threadID), cmp.Or(e.RunID, runID)
		ev = e
	}
	data, err := event.Encode(ev, time.Now())
	if err != nil {
		return Ack{}, fmt.Errorf("bus: encode %s: %w", ev.EventType(), err)
	}
	if data, err = attribute(data, threadID, runID); err != nil {
		return Ack{}, fmt.Errorf("%w: %s: %v", ErrInvalidRun, ev.EventType(), err)
	}
	return b.Publish(ctx, subject, data, "")
}

// attribute adds top-level threadId and runId to an event's JSON object where it has none, and
// checks them where it has.
func attribute(data []byte, threadID, runID string) ([]byte, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return nil, err
	}
	out := slices.Clip(data[:len(data)-1]) // without the closing brace; appends copy
	for _, f := range []struct{ key, value string }{{"threadId", threadID}, {"runId", runID}} {
		if raw, ok := fields[f.key]; ok {
			var got string
			if json.Unmarshal(raw, &got) != nil || got != f.value {
				return nil, fmt.Errorf("%s is %s, want %q", f.key, raw, f.value)
			}
			continue
		}
		value, _ := json.Marshal(f.value)
		out = append(append(append(append(out, ",\""...), f.key...), "\":"...), value...)
	}
	return append(out, '}'), nil
}

// QueueConfig configures a runtime's share of an agent's work queue.
type QueueConfig struct {
	// Queue is the work queue: routing.Runs (AG-UI runs; the default) or routing.Tasks (A2A
	// messages).
	Queue routing.Queue
	// Description says what the agent does, for its A2A agent card: the agent's consumer
	// carries it, so that the runtime that last opened the queue announces it.
	Description string
	// AckWait is how long a runtime may go without keeping a taken run alive before the node
	// that follows the run counts it lost, within MinRunAckWait and MaxRunAckWait; default
	// DefaultRunAckWait. It is also the agent's consumer's, after which a request taken but not
	// claimed is delivered again: every runtime of an agent should use the same.
	AckWait time.Duration
}

// pullWait bounds one pull request, after which Next asks again. The server passes over a pull
// request whose runtime has gone (its reply subject has no interest), so a request is not
// handed to a runtime that stopped pulling.
const pullWait = 5 * time.Second

// RunQueue is a runtime's share of one agent's work queue: the agent's durable consumer of
// RUNS, which every runtime of the agent pulls from, so that each request goes to one of them.
type RunQueue struct {
	b      *Bus
	agent  string
	queue  routing.Queue
	config jetstream.ConsumerConfig

	mu   sync.Mutex
	cons jetstream.Consumer
}

// RunQueue opens the work queue of agent for a runtime, creating the agent's consumer if it
// is not there (or updating it to cfg).
func (b *Bus) RunQueue(ctx context.Context, agent string, cfg QueueConfig) (*RunQueue, error) {
	queue := cmp.Or(cfg.Queue, routing.Runs)
	name, err := queue.Consumer(agent)
	if err != nil {
		return nil, err
	}
	filter, _ := queue.Filter(agent) // Consumer checked the queue and the agent
	cfg.AckWait = clampAckWait(cfg.AckWait)
	q := &RunQueue{b: b, agent: agent, queue: queue, config: jetstream.ConsumerConfig{
		Durable:       name,
		Description:   cfg.Description,
		FilterSubject: filter,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxDeliver:    maxRunDeliveries, // the claim makes it at most once
	}}
	if err := q.open(ctx); err != nil {
		return nil, err
	}
	return q, nil
}

// open creates or updates the agent's consumer.
func (q *RunQueue) open(ctx context.Context) error {
	cons, err := q.b.js.CreateOrUpdateConsumer(ctx, routing.StreamRuns, q.config)
	if err != nil {
		return q.b.wrap("consumer "+q.config.Durable, err)
	}
	q.mu.Lock()
	q.cons = cons
	q.mu.Unlock()
	return nil
}

// Next waits for the next request this runtime wins, claims it and removes it from the queue.
// Requests that are malformed, or no longer wanted by the node that enqueued them (none waits,
// or another runtime runs them), are terminated and passed over; one whose node does not answer
// is delivered again a little later, up to 5 times. The caller must keep the run alive
// (TakenRun.KeepAlive, every KeepAliveEvery) until it calls Done. While NATS or the queue is
// away, Next waits for it, logging and backing off; it fails only once ctx is done or the
// connection is closed.
func (q *RunQueue) Next(ctx context.Context) (*TakenRun, error) {
	var wait time.Duration
	for {
		msg, err := q.pull(ctx)
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case q.b.nc.IsClosed():
			return nil, fmt.Errorf("%w: connection closed", ErrUnavailable)
		case err != nil:
			wait = nextWait(wait)
			q.b.log.Warn("run queue", "agent", q.agent, "err", err, "retry_in", wait)
			if !sleep(ctx, wait) {
				return nil, ctx.Err()
			}
			continue
		}
		wait = 0
		if msg == nil {
			continue
		}
		if t := q.take(ctx, msg); t != nil {
			return t, nil
		}
	}
}

// pull asks the consumer for one request; nil, nil when none came within pullWait, after which
// it sets the consumer up again if it was removed.
func (q *RunQueue) pull(ctx context.Context) (jetstream.Msg, error) {
	if err := q.b.waitReconnect(ctx); err != nil {
		return nil, err
	}
	q.mu.Lock()
	cons := q.cons
	q.mu.Unlock()
	wait, cancel := context.WithTimeout(ctx, pullWait)
	defer cancel()
	msg, err := cons.Next(jetstream.FetchContext(wait))
	switch {
	case err == nil:
		return msg, nil
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case !q.b.Connected():
		return nil, nil
	}
	// Nothing came, or the pull failed. The consumer may be gone (RUNS recreated, an operator
	// removed it), which a pull does not always say: it is set up again if it is not there.
	if _, ierr := cons.Info(ctx); ierr != nil {
		if oerr := q.open(ctx); oerr != nil {
			return nil, oerr
		}
	}
	if errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, nil
	}
	return nil, q.b.wrap("pull "+q.config.Durable, err)
}

// take claims a delivered request from the node that enqueued it and removes it from the
// queue. It returns nil for one it must not run (terminated), or not yet (delivered again).
func (q *RunQueue) take(ctx context.Context, msg jetstream.Msg) *TakenRun {
	var req RunRequest
	if json.Unmarshal(msg.Data(), &req) != nil || !q.matches(req, msg.Subject()) {
		q.passOver(msg, "malformed")
		return nil
	}
	switch q.claim(ctx, req.Claim) {
	case claimRefused:
		q.passOver(msg, "not claimed")
		return nil
	case claimUnanswered:
		if meta, err := msg.Metadata(); err == nil && meta.NumDelivered < maxRunDeliveries {
			_ = msg.NakWithDelay(claimRetry)
			return nil
		}
		q.passOver(msg, "its node did not answer")
		if req.queue() == routing.Tasks {
			q.b.failTask(ctx, req, "the eventsd node that took the message went away before a runtime of the agent took it")
		}
		return nil
	}
	// Claimed: the run is this runtime's, whatever the queue does with the request now.
	ack, cancel := context.WithTimeout(ctx, q.b.cfg.Timeout)
	defer cancel()
	if err := msg.DoubleAck(ack); err != nil {
		q.b.log.Warn("removing a claimed run request", "subject", msg.Subject(), "err", err)
	}
	return &TakenRun{b: q.b, req: req, ackWait: q.config.AckWait}
}

// passOver terminates a request this runtime must not run.
func (q *RunQueue) passOver(msg jetstream.Msg, reason string) {
	q.b.log.Info("run request passed over", "subject", msg.Subject(), "reason", reason)
	_ = msg.TermWithReason(reason)
}

// matches reports whether req is a request for this queue's agent, stored on its own subject,
// with a claim subject that is a node's inbox, not a wildcard or another subject of the plane.
func (q *RunQueue) matches(req RunRequest, subject string) bool {
	want, err := req.subject()
	return err == nil && want == subject && req.Agent == q.agent && req.queue() == q.queue &&
		strings.HasPrefix(req.Claim, nats.InboxPrefix) && len(req.Claim) > len(nats.InboxPrefix) &&
		!strings.ContainsAny(req.Claim, "*> \t\r\n")
}

// What a node answered a claim.
type claimResult int

const (
	claimGranted claimResult = iota
	claimRefused
	claimUnanswered // no node listens, or it did not answer in time
)

// claim asks the node that enqueued a request whether it still wants it run.
func (q *RunQueue) claim(ctx context.Context, subject string) claimResult {
	var reply claimReply
	if err := q.b.signal(ctx, subject, runtimeSignal{Op: opClaim, AckWait: q.config.AckWait}, &reply); err != nil {
		return claimUnanswered
	}
	if !reply.Claimed {
		return claimRefused
	}
	return claimGranted
}

// signal sends sig to the node that follows a run, on subject, and decodes its answer into
// reply, within the bus's timeout.
func (b *Bus) signal(ctx context.Context, subject string, sig runtimeSignal, reply any) error {
	data, _ := json.Marshal(sig)
	return b.signalRaw(ctx, subject, data, reply)
}

// signalRaw sends data on subject as a request, and decodes the answer into reply, within the
// bus's timeout.
func (b *Bus) signalRaw(ctx context.Context, subject string, data []byte, reply any) error {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	msg, err := b.nc.RequestWithContext(ctx, subject, data)
	if err != nil {
		return err
	}
	return json.Unmarshal(msg.Data, reply)
}

// waitReconnect returns at once while NATS is connected; while it is away it waits for it to
// come back, until ctx is done or the connection is closed.
func (b *Bus) waitReconnect(ctx context.Context) error {
	if b.Connected() {
		return nil
	}
	back := b.nc.StatusChanged(nats.CONNECTED, nats.CLOSED)
	defer b.nc.RemoveStatusListener(back)
	for !b.Connected() {
		if b.nc.IsClosed() {
			return fmt.Errorf("%w: connection closed", ErrUnavailable)
		}
		select {
		case <-back:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// TakenRun is a request a runtime has claimed and runs.
type TakenRun struct {
	b       *Bus
	req     RunRequest
	ackWait time.Duration
}

// Request is the request being run.
func (t *TakenRun) Request() RunRequest { return t.req }

// KeepAlive tells the node that follows the run that the runtime still works on it: the node
// does not count it lost for another AckWait. It returns ErrRunEnded once the node has ended
// the run (it counted it lost, or the run went past its time): the runtime stops and publishes
// nothing more of it. A node that does not answer (gone, or no longer following the run) is
// no error: the run goes on.
func (t *TakenRun) KeepAlive(ctx context.Context) error {
	var reply aliveReply
	if err := t.b.signal(ctx, t.req.Claim, runtimeSignal{Op: opAlive}, &reply); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return nil
	}
	if reply.Ended {
		return ErrRunEnded
	}
	return nil
}

// KeepAliveEvery is how often the runtime must call KeepAlive: a fifth of its AckWait, so that
// a late keep-alive or two do not count as lost.
func (t *TakenRun) KeepAliveEvery() time.Duration { return t.ackWait / 5 }

// Publish publishes an event of the run for the request's user: an AG-UI event of a run, with
// the run's threadId and runId (see PublishRunEvent), or an A2A event of a task, with its
// taskId and contextId (see PublishTaskEvent).
func (t *TakenRun) Publish(ctx context.Context, ev event.Event) (Ack, error) {
	if t.req.queue() == routing.Tasks {
		return t.b.PublishTaskEvent(ctx, t.req.User, t.req.ThreadID, t.req.RunID, ev, "")
	}
	return t.b.PublishRunEvent(ctx, t.req.User, t.req.ThreadID, t.req.RunID, ev)
}

// Done tells the node that follows the run that it is over, once its last event is published.
func (t *TakenRun) Done() error {
	data, _ := json.Marshal(runtimeSignal{Op: opDone})
	if err := t.b.nc.Publish(t.req.Claim, data); err != nil {
		return t.b.wrap("end run", err)
	}
	return nil
}
