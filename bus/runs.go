package bus

import (
	"cmp"
	"context"
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
// keeps each alive while it works, publishes the run's events and acknowledges the request
// once the run is over.
//
// A request is run at most once: the agent's consumer delivers it once (MaxDeliver 1), and a
// runtime claims it from the node that enqueued it before running it. The node says yes only
// while it still waits for a runtime, so a request either runs or ends in ErrNoRuntime, never
// both. A runtime that does not keep its request alive for the consumer's AckWait is reported
// by the NATS server (its max-deliveries advisory), and the run ends in ErrRuntimeLost.

// Sentinel errors of runs.
var (
	// ErrNoRuntime ends a run that no runtime took within its timeout.
	ErrNoRuntime = errors.New("bus: no runtime took the run request in time")
	// ErrRuntimeLost ends a run whose runtime stopped keeping it alive, or gave it up: the
	// request is not delivered again.
	ErrRuntimeLost = errors.New("bus: the runtime of the run was lost")
	// ErrInvalidRun is returned for a run request that lacks its thread or run id, or whose
	// input is not JSON.
	ErrInvalidRun = errors.New("bus: invalid run request")
)

// DefaultRunAckWait is how long a runtime may go without keeping its request alive before it
// counts as lost, where QueueConfig sets nothing.
const DefaultRunAckWait = 10 * time.Second

// RunRequest is a request for one run of an agent, as stored on the RUNS work queue.
type RunRequest struct {
	Agent    string `json:"agent"`
	User     string `json:"user"`
	ThreadID string `json:"threadId"`
	RunID    string `json:"runId"`
	// Input is the AG-UI RunAgentInput as the client sent it.
	Input json.RawMessage `json:"input"`
	// Claim is the core NATS subject on which a runtime claims the request from the node that
	// enqueued it; EnqueueRun sets it.
	Claim string `json:"claim"`
}

// subject checks the request and returns the subject it is stored on.
func (r RunRequest) subject() (string, error) {
	subject, err := routing.RunSubject(r.Agent, r.User)
	switch {
	case err != nil:
		return "", err
	case r.ThreadID == "" || r.RunID == "":
		return "", fmt.Errorf("%w: want a thread id and a run id", ErrInvalidRun)
	case !json.Valid(r.Input):
		return "", fmt.Errorf("%w: input is not JSON", ErrInvalidRun)
	}
	return subject, nil
}

// claimReply is a node's answer to a runtime that claims a request.
type claimReply struct {
	Claimed bool `json:"claimed"`
}

// advisoryConsumer starts the subjects of JetStream's consumer advisories:
// <prefix>.<kind>.<stream>.<consumer>.
const advisoryConsumer = "$JS.EVENT.ADVISORY.CONSUMER"

// The advisories that end a run: its delivery was not acknowledged within AckWait (and is not
// made again), or its runtime terminated it.
const (
	advisoryMaxDeliveries = "MAX_DELIVERIES"
	advisoryTerminated    = "MSG_TERMINATED"
)

type runState int

const (
	runWaiting runState = iota // stored, no runtime has claimed it
	runTaken                   // a runtime claimed it and is running it
	runEnded                   // failed, or no longer followed
)

// Run follows one request on the node that enqueued it: until a runtime takes it, then until
// its runtime is lost. The run's events themselves are on the agui channel.
type Run struct {
	b      *Bus
	taken  chan struct{}
	failed chan struct{}

	mu     sync.Mutex
	state  runState
	seq    uint64 // the request's sequence in RUNS; 0 until it is stored
	err    error
	timer  *time.Timer
	subs   []*nats.Subscription
	closed bool
}

// EnqueueRun stores req on the agent's work queue, and follows it: a runtime must take it
// within timeout (0: the streams' RunTimeout, 30 s by default), else the run fails with
// ErrNoRuntime. The caller must Close the Run.
func (b *Bus) EnqueueRun(ctx context.Context, req RunRequest, timeout time.Duration) (*Run, error) {
	subject, err := req.subject()
	if err != nil {
		return nil, err
	}
	consumer, _ := routing.RunConsumer(req.Agent) // req.subject checked the agent
	if timeout <= 0 {
		timeout = cmp.Or(b.cfg.Streams.RunTimeout, routing.DefaultStreamOptions.RunTimeout)
	}
	r := &Run{b: b, taken: make(chan struct{}), failed: make(chan struct{})}
	req.Claim = b.nc.NewInbox()
	// Subscribed before the request is stored: the server sees this connection's
	// subscriptions before its publish, so no claim or advisory can come before them.
	for subj, fn := range map[string]nats.MsgHandler{
		req.Claim: r.onClaim,
		advisoryConsumer + ".*." + routing.StreamRuns + "." + consumer: r.onAdvisory,
	} {
		sub, err := b.nc.Subscribe(subj, fn)
		if err != nil {
			r.unsubscribe()
			return nil, b.wrap("subscribe "+subj, err)
		}
		r.subs = append(r.subs, sub)
	}
	data, err := json.Marshal(req)
	if err != nil {
		r.unsubscribe()
		return nil, fmt.Errorf("bus: encode run request: %w", err)
	}
	ack, err := b.Publish(ctx, subject, data, "")
	if err != nil {
		r.unsubscribe()
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq = ack.Seq
	if r.state == runWaiting {
		r.timer = time.AfterFunc(timeout, r.expire)
	}
	return r, nil
}

// Seq is the request's sequence in the RUNS stream.
func (r *Run) Seq() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seq
}

// Taken is closed once a runtime has claimed the request and runs it.
func (r *Run) Taken() <-chan struct{} { return r.taken }

// Failed is closed once the run cannot go on; Err says why.
func (r *Run) Failed() <-chan struct{} { return r.failed }

// Err is ErrNoRuntime or ErrRuntimeLost once Failed is closed, nil before.
func (r *Run) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// Close stops following the run. A request that no runtime runs (none took it, or its runtime
// was lost) is removed from the queue, and a runtime that claims it later is refused; one that
// a runtime runs stays with that runtime, which removes it when the run is over. Close may be
// called more than once.
func (r *Run) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	remove := r.state != runTaken
	r.state = runEnded
	if r.timer != nil {
		r.timer.Stop()
	}
	seq := r.seq
	r.mu.Unlock()
	r.unsubscribe()
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

func (r *Run) unsubscribe() {
	r.mu.Lock()
	subs := r.subs
	r.subs = nil
	r.mu.Unlock()
	for _, sub := range subs {
		_ = sub.Unsubscribe()
	}
}

// onClaim answers a runtime that claims the request: yes while the run waits for a runtime.
func (r *Run) onClaim(msg *nats.Msg) {
	r.mu.Lock()
	ok := r.state == runWaiting
	if ok {
		r.state = runTaken
		close(r.taken)
		if r.timer != nil {
			r.timer.Stop()
		}
	}
	r.mu.Unlock()
	reply, _ := json.Marshal(claimReply{Claimed: ok})
	_ = msg.Respond(reply)
}

// onAdvisory ends the run when the server reports that its delivery was not kept alive (and is
// not made again) or was terminated: before a claim, by a runtime that went away or could not
// claim it; after, by the runtime that ran it.
func (r *Run) onAdvisory(msg *nats.Msg) {
	kind := strings.TrimPrefix(msg.Subject, advisoryConsumer+".")
	kind, _, _ = strings.Cut(kind, ".")
	if kind != advisoryMaxDeliveries && kind != advisoryTerminated {
		return
	}
	var adv struct {
		StreamSeq uint64 `json:"stream_seq"`
	}
	if json.Unmarshal(msg.Data, &adv) != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if adv.StreamSeq == r.seq && r.seq != 0 {
		r.fail(ErrRuntimeLost)
	}
}

// expire ends a run that no runtime took in time.
func (r *Run) expire() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state == runWaiting {
		r.fail(ErrNoRuntime)
	}
}

// fail ends the run with err unless it has ended; r.mu is held.
func (r *Run) fail(err error) {
	if r.state == runEnded {
		return
	}
	r.state, r.err = runEnded, err
	if r.timer != nil {
		r.timer.Stop()
	}
	close(r.failed)
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
	// AckWait is how long a runtime may go without keeping a taken request alive before the
	// server reports it lost; default DefaultRunAckWait. It is a setting of the agent's one
	// consumer, so every runtime of an agent should use the same.
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
	config jetstream.ConsumerConfig

	mu   sync.Mutex
	cons jetstream.Consumer
}

// RunQueue opens the work queue of agent for a runtime, creating the agent's consumer if it
// is not there (or updating it to cfg).
func (b *Bus) RunQueue(ctx context.Context, agent string, cfg QueueConfig) (*RunQueue, error) {
	name, err := routing.RunConsumer(agent)
	if err != nil {
		return nil, err
	}
	filter, _ := routing.RunFilter(agent) // RunConsumer checked the agent
	positive(&cfg.AckWait, DefaultRunAckWait)
	q := &RunQueue{b: b, agent: agent, config: jetstream.ConsumerConfig{
		Durable:       name,
		FilterSubject: filter,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxDeliver:    1, // at most once: a second RUN_STARTED would break the client's run
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

// KeepAliveEvery is how often a runtime keeps each taken request alive: a fifth of the
// consumer's AckWait, so that a late keep-alive or two do not count as lost.
func (q *RunQueue) KeepAliveEvery() time.Duration { return q.config.AckWait / 5 }

// Next waits for the next request this runtime wins, and claims it. Requests that are
// malformed, delivered before, or no longer wanted by the node that enqueued them are
// terminated and passed over. The caller must keep the request alive (TakenRun.KeepAlive,
// every KeepAliveEvery) until it calls Done. While NATS is away, Next waits for it.
func (q *RunQueue) Next(ctx context.Context) (*TakenRun, error) {
	for {
		msg, err := q.pull(ctx)
		if err != nil {
			return nil, err
		}
		if msg == nil {
			continue
		}
		if t := q.take(ctx, msg); t != nil {
			return t, nil
		}
	}
}

// pull asks the consumer for one request; nil, nil when none came within pullWait.
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
	case errors.Is(err, jetstream.ErrConsumerDeleted), errors.Is(err, jetstream.ErrConsumerNotFound):
		// RUNS was recreated, or an operator removed the consumer: set it up again.
		return nil, q.open(ctx)
	case errors.Is(err, nats.ErrTimeout), errors.Is(err, context.DeadlineExceeded), !q.b.Connected():
		return nil, nil
	}
	return nil, q.b.wrap("pull "+q.config.Durable, err)
}

// take claims a delivered request from the node that enqueued it. It returns nil, having
// terminated the request, for one it must not run.
func (q *RunQueue) take(ctx context.Context, msg jetstream.Msg) *TakenRun {
	var req RunRequest
	reason := ""
	meta, err := msg.Metadata()
	switch {
	case err != nil:
		reason = "no metadata"
	case meta.NumDelivered > 1:
		reason = "delivered before"
	case json.Unmarshal(msg.Data(), &req) != nil || !q.matches(req, msg.Subject()):
		reason = "malformed"
	case !q.claim(ctx, req.Claim):
		reason = "not claimed"
	default:
		return &TakenRun{b: q.b, msg: msg, req: req}
	}
	q.b.log.Info("run request passed over", "subject", msg.Subject(), "reason", reason)
	_ = msg.TermWithReason(reason)
	return nil
}

// matches reports whether req is a request for this queue's agent, stored on its own subject,
// with a claim subject a runtime can send to.
func (q *RunQueue) matches(req RunRequest, subject string) bool {
	want, err := req.subject()
	return err == nil && want == subject && req.Agent == q.agent &&
		req.Claim != "" && !strings.ContainsAny(req.Claim, "*> \t\r\n")
}

// claim asks the node that enqueued a request whether it still wants it run. No answer (the
// node is gone, and its client with it) is a no.
func (q *RunQueue) claim(ctx context.Context, subject string) bool {
	ctx, cancel := context.WithTimeout(ctx, q.b.cfg.Timeout)
	defer cancel()
	msg, err := q.b.nc.RequestWithContext(ctx, subject, nil)
	if err != nil {
		return false
	}
	var reply claimReply
	return json.Unmarshal(msg.Data, &reply) == nil && reply.Claimed
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
	b   *Bus
	msg jetstream.Msg
	req RunRequest
}

// Request is the request being run.
func (t *TakenRun) Request() RunRequest { return t.req }

// KeepAlive tells the server that the runtime is still working on the request, which resets
// the consumer's AckWait for it.
func (t *TakenRun) KeepAlive() error {
	if err := t.msg.InProgress(); err != nil {
		return t.b.wrap("keep run alive", err)
	}
	return nil
}

// Publish publishes an AG-UI event of the run for the request's user, with the run's threadId
// and runId (see PublishRunEvent).
func (t *TakenRun) Publish(ctx context.Context, ev event.Event) (Ack, error) {
	return t.b.PublishRunEvent(ctx, t.req.User, t.req.ThreadID, t.req.RunID, ev)
}

// Done acknowledges the request once the run is over (its last event published), which removes
// it from the queue, and waits for the server to confirm.
func (t *TakenRun) Done(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t.b.cfg.Timeout)
		defer cancel()
	}
	if err := t.msg.DoubleAck(ctx); err != nil {
		return t.b.wrap("acknowledge run", err)
	}
	return nil
}
