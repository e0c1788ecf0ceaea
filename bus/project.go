package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// A viewKind says what a projector needs to know of its views, of type V: which events of its
// stream change which view (each view has a token, a user token for the contexts views, and a
// key in the bucket), how one event changes a view (the reducer) and how large views and
// batches may grow. A view is stored as JSON and records the life (epoch) of the stream it was
// built from and the sequence of the last event applied, which makes applying idempotent.
type viewKind[V any] struct {
	name   string // in logs and Metrics.ViewSkipped: "contexts"
	stream string // the stream whose events the views fold

	// token returns the token of the views an event on subject belongs to, if any.
	token func(subject string) (tok string, ok bool)
	// key returns the bucket key of the view of tok that the event data belongs to, if any: one
	// view per token (contexts), or one per token and something the event names (threads).
	key func(tok string, data []byte) (key string, ok bool)
	// init, if set, readies an empty view for the event data, the first it is built from (a
	// thread's view learns its thread).
	init func(v *V, data []byte)
	// created, if set, is told of a view created under key (by one node, whichever wrote it
	// first): a kind that bounds its views per token drops older ones there.
	created func(ctx context.Context, kv jetstream.KeyValue, key string) error
	// fresh: a view that is not there starts from the event at hand, and is not rebuilt from
	// the stream. For views whose events the stream cannot select by subject (a thread's, among
	// all of its user's), where a rebuild would read the user's whole history; the projector
	// builds every view from the stream's first event when it starts, so only a view dropped
	// from a full bucket loses its past.
	fresh bool
	// subject returns one subject filter that holds every event of the view of tok (and
	// perhaps others): the stream counts them by it and finds the first of them.
	subject func(tok string) string
	// filters returns the subjects of every event that can change the view of tok, or of any
	// view for tok "*".
	filters func(tok string) []string
	// relevant reports whether an event on subject can change a view.
	relevant func(subject string) bool

	// apply applies e, an event of the stream of epoch that v does not reflect yet, to v, which
	// is empty or of epoch, and reports whether v changed; a view changed records epoch and
	// e.seq. It trims v to maxBytes of JSON after the event, so that a view is the same however
	// its events are batched. For an event it can never apply it returns an error and leaves v
	// as it was.
	apply func(v *V, maxBytes int, epoch uint64, e streamEvent) (changed bool, err error)
	// at returns the epoch of the stream v was built from and the sequence of the last event
	// applied to it, or 0 and 0 for an empty view.
	at func(v *V) (epoch, seq uint64)
	// stamp, if set, is given a view as read from the bucket, stored at stored, so that a view
	// written before views recorded their epoch gets one (or is emptied).
	stamp func(v *V, epoch uint64, stored time.Time)
	// reason names why apply can never apply an event, from the error it returned, or is ""
	// for a reason of the projector's own (skipTooLarge, skipFailed).
	reason func(err error) string

	maxViewBytes int // the most JSON a view may take, or less on a server with a smaller payload limit
	// A batch holds up to batchEvents events or batchBytes of event data: a key whose events
	// come in a flood costs a view's read and write per batch, not per event.
	batchEvents, batchBytes int
}

// A projector keeps the views of one viewKind in a key-value bucket, one view per key, and
// follows the kind's stream: idempotently (see viewKind), in batches, within the kind's bounds,
// never stalled by one event (an event that can never be applied is logged, counted with
// Metrics.ViewSkipped and passed over), rebuilding a missing view from the stream's retained
// events of its key. While NATS is away it waits and tries again, backing off from retryMin to
// retryMax. It runs from start until stop; the Bus's Close waits for its goroutines, so a
// projector the Bus does not stop itself (as it stops the contexts projector) is stopped first.
type projector[V any] struct {
	b      *Bus
	kind   viewKind[V]
	kv     jetstream.KeyValue // the bucket, once started
	pos    projection         // where it is; restarted when the stream or the bucket is recreated
	cancel context.CancelFunc // ends it, once started
}

// ViewConsumerPrefix starts the name of every consumer of a view projector (its follower, and
// those that rebuild a view): not a connection's.
const ViewConsumerPrefix = "view-"

// The projector's backoff while NATS (or its bucket) is away: from retryMin, doubling up to
// retryMax.
const (
	retryMin = 100 * time.Millisecond
	retryMax = 30 * time.Second
)

// The projector's backoff when another node wrote a view between its read and its write: from
// conflictMin, doubling up to conflictMax, so that on a replicated bucket it does not spin until
// the other write is seen.
const (
	conflictMin = time.Millisecond
	conflictMax = 100 * time.Millisecond
)

// gatherWait is how long an event that the consumer reported pending may take to arrive (it
// may have been discarded meanwhile) before the batch goes on without it.
const gatherWait = 100 * time.Millisecond

// Reasons a projector passes an event over (Metrics.ViewSkipped), besides its kind's own.
const (
	skipTooLarge      = "too_large"      // the view would be over the server's payload limit
	skipMalformedView = "malformed_view" // the stored view could not be read: it starts again
	skipFailed        = "failed"         // the bucket refused the view for another lasting reason
	skipRebuild       = "rebuild_failed" // a missing view could not be rebuilt: it starts again
)

// projection is where a projector is: every relevant event of its stream of epoch up to seq is
// applied. A watcher that sees the stream or the bucket recreated resets it and restarts the
// projector, which then applies the new stream from its first event.
type projection struct {
	mu    sync.Mutex
	epoch uint64
	seq   uint64
	run   uint64             // counts restarts: a run that was restarted records nothing more
	stop  context.CancelFunc // ends the current run
	moved chan struct{}      // closed when the position changes, for wait; nil when none waits
}

// wait waits until the projector has reached seq of the stream of epoch, or no longer follows
// that stream, or ctx is done.
func (p *projection) wait(ctx context.Context, epoch, seq uint64) {
	for {
		p.mu.Lock()
		if p.epoch != epoch || p.seq >= seq {
			p.mu.Unlock()
			return
		}
		if p.moved == nil {
			p.moved = make(chan struct{})
		}
		moved := p.moved
		p.mu.Unlock()
		select {
		case <-moved:
		case <-ctx.Done():
			return
		}
	}
}

// tell wakes the waiters; p.mu is held.
func (p *projection) tell() {
	if p.moved != nil {
		close(p.moved)
		p.moved = nil
	}
}

// position returns the epoch and sequence the projector has reached.
func (p *projection) position() (epoch, seq uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.epoch, p.seq
}

// begin starts a run on the stream of epoch and returns it and the sequence to start from.
func (p *projection) begin(epoch uint64, stop context.CancelFunc) (run, from uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.epoch != epoch {
		p.epoch, p.seq = epoch, 0
	}
	p.stop = stop
	return p.run, p.seq + 1
}

// applied records seq as applied by run, unless the run was restarted since.
func (p *projection) applied(run, seq uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.run == run {
		p.seq = seq
		p.tell()
	}
}

// restart forgets the position and ends the current run: the next one starts at the first
// event of the stream.
func (p *projection) restart() {
	p.mu.Lock()
	p.run++
	p.epoch, p.seq = 0, 0
	p.tell()
	stop := p.stop
	p.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// catchUpWait bounds how long a read of a view waits for the projector to catch up.
const catchUpWait = 2 * time.Second

// catchUp waits, within catchUpWait, until the projector has applied every event its stream
// held when called: a view read then reflects what its client saw happen before it asked.
func (p *projector[V]) catchUp(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, catchUpWait)
	defer cancel()
	s, err := p.b.js.Stream(ctx, p.kind.stream)
	if err != nil {
		return
	}
	epoch, _ := p.pos.position()
	p.pos.wait(ctx, epoch, s.CachedInfo().State.LastSeq)
}

// start starts the projector of kind's views into kv: it opens its first run, then follows the
// stream until stop or the Bus's Close (ctx ending does not end it).
func (p *projector[V]) start(ctx context.Context, b *Bus, kind viewKind[V], kv jetstream.KeyValue) error {
	if kind.batchEvents <= 0 || kind.batchBytes <= 0 || kind.maxViewBytes <= 0 {
		return fmt.Errorf("bus: %s projector: bounds must be positive", kind.name)
	}
	p.b, p.kind = b, kind
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	first, err := p.open(ctx)
	if err != nil {
		cancel()
		return err
	}
	p.kv, p.cancel = kv, cancel
	b.wg.Go(func() { p.follow(ctx, first) })
	return nil
}

// stop ends the projector, if it started; the Bus's Close waits for its goroutines.
func (p *projector[V]) stop() {
	if p.cancel != nil {
		p.cancel()
	}
}

// follow runs the projector, from its run r, until ctx ends. When a run's consumer fails, the
// next run opens at once if the run made progress, else after a backoff; when the watcher
// restarts the projector, at once.
func (p *projector[V]) follow(ctx context.Context, r *projectorRun) {
	wait := time.Duration(0)
	for {
		before := r.from
		done, err := p.execute(ctx, r)
		restarted := r.ctx.Err() != nil
		r.stop()
		if ctx.Err() != nil {
			return
		}
		if _, seq := p.pos.position(); restarted || seq >= before {
			wait = 0 // restarted by the watcher, or it made progress: go again at once
		}
		if !restarted {
			p.b.log.Warn(p.kind.name+" projector stopped", "err", err)
		}
		old := r
		if r, wait = p.reopen(ctx, wait); r == nil {
			return
		}
		if done != nil && r.epoch == old.epoch {
			// The same stream again from its start (the bucket was recreated): views
			// must not get the old run's later events before the new run's earlier ones.
			select {
			case <-done:
			case <-ctx.Done():
				r.it.Stop()
				r.stop()
				return
			}
		}
	}
}

// execute projects r's events until its consumer fails, and returns the failure, or until r
// is restarted (or the projector stops), and returns a channel on which r reports its end.
func (p *projector[V]) execute(ctx context.Context, r *projectorRun) (<-chan error, error) {
	done := make(chan error, 1)
	p.b.wg.Add(1)
	go func() {
		defer p.b.wg.Done()
		err := p.projectFrom(r)
		r.it.Stop()
		p.b.deleteConsumer(ctx, p.kind.stream, r.cons)
		done <- err
	}()
	select {
	case err := <-done:
		return nil, err
	case <-r.ctx.Done():
		// Restarted (or closing). The run ends by itself and records nothing more; its
		// consumer may be busy for seconds recreating itself on a deleted stream, deaf to its
		// context.
		return done, nil
	}
}

// reopen opens the next run after waiting wait, and while that fails tries again, backing off.
// It returns the run, or nil once ctx ends, and the backoff reached.
func (p *projector[V]) reopen(ctx context.Context, wait time.Duration) (*projectorRun, time.Duration) {
	for {
		if wait > 0 && !sleep(ctx, wait) {
			return nil, wait
		}
		wait = nextWait(wait)
		r, err := p.open(ctx)
		if err == nil {
			return r, wait
		}
		p.b.log.Warn(p.kind.name+" projector", "err", err, "retry_in", wait)
	}
}

// projectorRun is one run of a projector: a consumer of the relevant events of its stream as it
// is now, from after what was applied of it.
type projectorRun struct {
	ctx    context.Context
	stop   context.CancelFunc
	run    uint64
	epoch  uint64
	from   uint64
	stream jetstream.Stream // the stream of epoch
	cons   jetstream.Consumer
	it     jetstream.MessagesContext
}

// open opens the next run of the projector.
func (p *projector[V]) open(ctx context.Context) (*projectorRun, error) {
	s, err := p.b.js.Stream(ctx, p.kind.stream)
	if err != nil {
		return nil, p.b.wrap("stream "+p.kind.stream, err)
	}
	r := &projectorRun{epoch: uint64(s.CachedInfo().Created.UnixNano()), stream: s}
	r.ctx, r.stop = context.WithCancel(ctx)
	r.run, r.from = p.pos.begin(r.epoch, r.stop)
	cfg := p.consumerConfig("*")
	if r.from > 1 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, r.from
	}
	if r.cons, err = s.OrderedConsumer(ctx, cfg); err != nil {
		r.stop()
		return nil, p.b.wrap(p.kind.name+" consumer", err)
	}
	if r.it, err = r.cons.Messages(); err != nil {
		r.stop()
		return nil, p.b.wrap(p.kind.name+" consumer", err)
	}
	return r, nil
}

// consumerConfig configures an ordered consumer of the events that can change the view of tok
// ("*": any view), from the stream's first event.
func (p *projector[V]) consumerConfig(tok string) jetstream.OrderedConsumerConfig {
	return jetstream.OrderedConsumerConfig{
		FilterSubjects:    p.kind.filters(tok),
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		InactiveThreshold: p.b.cfg.InactiveThreshold,
		MaxResetAttempts:  maxResets,
		NamePrefix:        ViewConsumerPrefix + p.kind.name + "-" + nuid.Next(),
	}
}

// streamEvent is an event of a projector's stream, as a reducer applies it.
type streamEvent struct {
	subject string
	data    []byte
	seq     uint64
	stored  time.Time
}

// projectFrom applies the run's events, a batch at a time, until its context ends or its
// consumer fails: it reads each view of the batch once, applies that view's events in stream
// order and writes the view once. The position advances only once the whole batch is written.
func (p *projector[V]) projectFrom(r *projectorRun) error {
	for {
		batch, err := p.gather(r)
		if err != nil {
			return err
		}
		if len(batch) == 0 {
			continue
		}
		var order []string // the views' keys in the order of their first event
		groups := map[string][]streamEvent{}
		for _, e := range batch {
			tok, ok := p.kind.token(e.subject)
			if !ok {
				continue
			}
			key, ok := p.kind.key(tok, e.data)
			if !ok {
				continue
			}
			if _, seen := groups[key]; !seen {
				order = append(order, key)
			}
			groups[key] = append(groups[key], e)
		}
		for _, key := range order {
			if err := p.projectKey(r, key, groups[key]); err != nil {
				return err
			}
		}
		p.pos.applied(r.run, batch[len(batch)-1].seq)
	}
}

// gather waits for the next event and returns it with those that follow it at once: while the
// consumer reports more pending, up to the kind's batch bounds.
func (p *projector[V]) gather(r *projectorRun) ([]streamEvent, error) {
	var batch []streamEvent
	size := 0
	for pending := true; pending && len(batch) < p.kind.batchEvents && size < p.kind.batchBytes; {
		msg, err := r.next(len(batch) > 0)
		if err != nil {
			if len(batch) > 0 && r.ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
				break // what was pending did not come: go on with what did
			}
			return nil, err
		}
		meta, err := msg.Metadata()
		if err != nil {
			continue
		}
		pending = meta.NumPending > 0
		batch = append(batch, streamEvent{subject: msg.Subject(), data: msg.Data(), seq: meta.Sequence.Stream, stored: meta.Timestamp})
		size += len(msg.Data())
	}
	return batch, nil
}

// next returns the run's next event, waiting at most gatherWait for it if brief.
func (r *projectorRun) next(brief bool) (jetstream.Msg, error) {
	if !brief {
		return r.it.Next(jetstream.NextContext(r.ctx))
	}
	ctx, cancel := context.WithTimeout(r.ctx, gatherWait)
	defer cancel()
	return r.it.Next(jetstream.NextContext(ctx))
}

// skip is an event the projector passes over, and why.
type skip struct {
	ev     streamEvent
	reason string
	err    error
}

// projectKey applies one view's events of a batch to the view under key. It tries again while
// the failure may pass (NATS away), and on the fresh view when another node wrote it meanwhile
// (applying is idempotent). If the view cannot be written for a lasting reason, it applies the
// events one at a time, so that only an event that can never be applied is passed over.
func (p *projector[V]) projectKey(r *projectorRun, key string, events []streamEvent) error {
	for wait, conflictWait := time.Duration(0), time.Duration(0); ; {
		skips, err := p.project(r, key, events)
		if errors.Is(err, errConflict) {
			conflictWait = min(max(2*conflictWait, conflictMin), conflictMax)
			if !sleep(r.ctx, conflictWait) {
				return r.ctx.Err()
			}
			continue
		}
		if err != nil && transient(err) {
			wait = nextWait(wait)
			p.b.log.Warn(p.kind.name+" projector", "subject", events[0].subject, "seq", events[0].seq, "err", err, "retry_in", wait)
			if !sleep(r.ctx, wait) {
				return r.ctx.Err()
			}
			continue
		}
		if err != nil && len(events) > 1 {
			for i := range events {
				if err := p.projectKey(r, key, events[i:i+1]); err != nil {
					return err
				}
			}
			return nil
		}
		if err != nil {
			skips = append(skips, skip{events[0], p.skipReason(err), err})
		}
		for _, s := range skips {
			p.b.log.Warn(p.kind.name+" projector skipped an event", "subject", s.ev.subject, "seq", s.ev.seq, "reason", s.reason, "err", s.err)
			p.b.cfg.Metrics.ViewSkipped(p.kind.name, s.reason)
		}
		return nil
	}
}

// nextWait doubles a backoff, from retryMin up to retryMax.
func nextWait(d time.Duration) time.Duration {
	return min(max(2*d, retryMin), retryMax)
}

// sleep waits for d and reports whether ctx is still going.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// transient reports whether a failure to apply an event may pass, so that the event is tried
// again: NATS or JetStream out of reach, or the bucket missing until the watcher recreates it.
func transient(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, context.Canceled) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrConnectionDraining) ||
		errors.Is(err, nats.ErrConnectionReconnecting) || errors.Is(err, nats.ErrDisconnected) ||
		errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) ||
		errors.As(err, &apiErr) && apiErr.Code == 503 // JetStream temporarily unavailable, or short of resources
}

// skipReason names why an event, refused with err, was passed over.
func (p *projector[V]) skipReason(err error) string {
	if errors.Is(err, errMalformedView) {
		return skipMalformedView
	}
	if reason := p.kind.reason(err); reason != "" {
		return reason
	}
	var apiErr *jetstream.APIError
	if errors.Is(err, nats.ErrMaxPayload) ||
		errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum {
		return skipTooLarge
	}
	return skipFailed
}

// errConflict reports a view changed by another node between read and write; the event is
// applied again on the fresh view.
var errConflict = errors.New("bus: view changed concurrently")

// errMalformedView reports a stored view that cannot be read.
var errMalformedView = errors.New("bus: malformed view")

// project applies events of the run's stream, all of one view's, in order, to the view under
// key, and writes it once if they changed it. It returns the events that can never be applied;
// a view that cannot be read is replaced (rebuilt as below, then the events), and a skip with
// skipMalformedView (for the first of them) says so.
//
// A view that reflects nothing of the stream (never written, dropped from a full bucket, one
// that cannot be read, or one of an earlier life of the stream) is first rebuilt from the
// view's events the stream still holds before the first of events: without that, the view
// would start again at the first event's sequence, and every later replay would take the
// view's earlier events as applied.
func (p *projector[V]) project(r *projectorRun, key string, events []streamEvent) ([]skip, error) {
	ctx, epoch := r.ctx, r.epoch
	view, rev, err := p.read(ctx, key, epoch)
	malformed := errors.Is(err, errMalformedView)
	if err != nil && !malformed {
		return nil, err
	}
	var skips []skip
	limit := p.viewLimit()
	changed := false
	blank := p.blank(view, epoch)
	if blank {
		p.reset(view, events[0].data)
	}
	if blank && !p.kind.fresh {
		tok, _ := p.kind.token(events[0].subject)
		n, _, err := p.rebuild(ctx, r.stream, view, epoch, tok, events[0].seq, limit, len(events))
		if err != nil && transient(err) {
			return nil, err
		}
		if err != nil {
			// Started again from the events, as a view that cannot be read is.
			p.reset(view, events[0].data)
			err = fmt.Errorf("rebuild %s: %w", key, err)
			skips = append(skips, skip{events[0], skipRebuild, err})
		}
		changed = n > 0 && err == nil
	}
	for _, e := range events {
		ok, err := p.apply(view, limit, epoch, e)
		if err != nil {
			skips = append(skips, skip{e, p.skipReason(err), err})
		}
		changed = changed || ok
	}
	if !changed {
		return skips, nil
	}
	if err := p.write(ctx, key, view, rev); err != nil {
		return nil, err
	}
	if malformed {
		err := fmt.Errorf("%w %s: started again", errMalformedView, key)
		skips = append([]skip{{events[0], skipMalformedView, err}}, skips...)
	}
	return skips, nil
}

// reset empties view, ready for the event data.
func (p *projector[V]) reset(view *V, data []byte) {
	*view = *new(V)
	if p.kind.init != nil {
		p.kind.init(view, data)
	}
}

// apply applies e, of the stream of epoch, to view, within limit bytes, unless the view
// reflects it already or is of a later life of the stream.
func (p *projector[V]) apply(view *V, limit int, epoch uint64, e streamEvent) (bool, error) {
	if ep, seq := p.kind.at(view); epoch < ep || epoch == ep && e.seq <= seq {
		return false, nil
	}
	return p.kind.apply(view, limit, epoch, e)
}

// write stores view under key: creates it if rev is 0, else replaces revision rev. It returns
// errConflict if another node wrote the view meanwhile.
func (p *projector[V]) write(ctx context.Context, key string, view *V, rev uint64) error {
	value, err := json.Marshal(view)
	if err != nil {
		return err
	}
	if rev == 0 {
		_, err = p.kv.Create(ctx, key, value)
	} else {
		_, err = p.kv.Update(ctx, key, value, rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || isWrongSequence(err) {
		return errConflict
	}
	if err != nil {
		return p.b.wrap("put "+key, err)
	}
	if rev == 0 && p.kind.created != nil {
		if err := p.kind.created(ctx, p.kv, key); err != nil {
			p.b.log.Warn(p.kind.name+" projector", "key", key, "err", err)
		}
	}
	return nil
}

// isWrongSequence reports a compare-and-set conflict: a replicated stream (R>1) reports it with
// a code of its own.
func isWrongSequence(err error) bool {
	return isAPIError(err, jetstream.JSErrCodeStreamWrongLastSequence, jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// viewHeadroom is room for the headers and subject of a view's message within the server's
// payload limit.
const viewHeadroom = 1024

// viewLimit is the most JSON a view may take: the kind's maxViewBytes, or less on a server with
// a smaller payload limit.
func (p *projector[V]) viewLimit() int {
	return min(int(p.b.nc.MaxPayload())-viewHeadroom, p.kind.maxViewBytes)
}

// blank reports whether a view as read reflects none of the stream of epoch: none stored, or
// one of an earlier life of the stream (a view of a later life is left alone: apply passes
// over the events of this one).
func (p *projector[V]) blank(v *V, epoch uint64) bool {
	ep, seq := p.kind.at(v)
	return seq == 0 || ep < epoch
}

// read reads the view under key and its revision (0 when there is none), as of the stream of
// epoch (stamped, if the kind stamps views). A view that is not there (never written, or
// dropped from a full bucket) comes back empty; one that cannot be read comes back empty, with
// its revision and errMalformedView.
func (p *projector[V]) read(ctx context.Context, key string, epoch uint64) (*V, uint64, error) {
	entry, err := p.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return new(V), 0, nil
	}
	if err != nil {
		return nil, 0, p.b.wrap("get "+key, err)
	}
	v := new(V)
	if err := json.Unmarshal(entry.Value(), v); err != nil {
		return new(V), entry.Revision(), fmt.Errorf("%w %s: %v", errMalformedView, key, err)
	}
	if p.kind.stamp != nil {
		p.kind.stamp(v, epoch, entry.Created())
	}
	return v, entry.Revision(), nil
}

// rebuilt builds the view of tok from the events that the stream of epoch holds, without
// storing it, and returns it with the sequence through which it reflects them (0 if the stream
// is of another epoch).
func (p *projector[V]) rebuilt(ctx context.Context, tok string, epoch uint64) (*V, uint64, error) {
	s, err := p.b.js.Stream(ctx, p.kind.stream)
	if err != nil {
		return nil, 0, p.b.wrap("stream "+p.kind.stream, err)
	}
	view := new(V)
	_, through, err := p.rebuild(ctx, s, view, epoch, tok, 0, p.viewLimit(), 0)
	if err != nil {
		return nil, 0, err
	}
	return view, through, nil
}

// rebuild applies to view, in stream order, the events of the view of tok that the stream of
// epoch (s) holds before sequence before (0: all it holds now), within limit bytes. It returns
// how many it read and the sequence through which the view now reflects every event of its
// token (0 if the stream was recreated meanwhile). It opens a consumer only if the stream holds
// more of them than known, the events about to be applied (see held). It returns a failure of
// NATS as such (transient).
func (p *projector[V]) rebuild(ctx context.Context, s jetstream.Stream, view *V, epoch uint64, tok string, before uint64, limit, known int) (read int, through uint64, err error) {
	through, more, err := p.held(ctx, s, epoch, tok, before, known)
	if err != nil || !more {
		return 0, through, err
	}
	return p.replay(ctx, s, view, epoch, tok, through+1, limit)
}

// held asks the stream of epoch (s) whether it holds events of the view of tok before sequence
// before (0: past its last event) that known, the events about to be applied, do not account
// for: it holds no more of them than known, or the first of them (of any type) is not before
// them, as for a token seen for the first time. It returns the sequence through which the view
// is to reflect the stream (0 if the stream was recreated).
func (p *projector[V]) held(ctx context.Context, s jetstream.Stream, epoch uint64, tok string, before uint64, known int) (through uint64, more bool, err error) {
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(p.kind.subject(tok)))
	if err != nil {
		return 0, false, p.b.wrap("stream "+p.kind.stream, err)
	}
	if uint64(info.Created.UnixNano()) != epoch {
		return 0, false, nil // recreated: the watcher restarts the projector
	}
	if before == 0 {
		before = info.State.LastSeq + 1
	}
	stored := 0
	for subject, n := range info.State.Subjects {
		if p.kind.relevant(subject) {
			stored += int(n)
		}
	}
	if stored <= known || before <= info.State.FirstSeq {
		return before - 1, false, nil
	}
	if known > 0 {
		// Some of the view's events may come after those about to be applied (the projector
		// is behind): is the first of them stored before them? (Of any type: one that cannot
		// change the view makes the consumer read nothing.) So a replay of the stream from its
		// start opens no consumer for a view's first events.
		first, err := s.GetMsg(ctx, info.State.FirstSeq, jetstream.WithGetMsgSubject(p.kind.subject(tok)))
		if errors.Is(err, jetstream.ErrMsgNotFound) || err == nil && first.Sequence >= before {
			return before - 1, false, nil
		}
		if err != nil {
			return 0, false, p.b.wrap("stream "+p.kind.stream, err)
		}
	}
	return before - 1, true, nil
}

// replay applies to view the events of the view of tok that the stream of epoch (s) holds
// before sequence before, read with an ordered consumer, filtered to them, that it deletes
// once done. An event that can never be applied is passed over without being counted: it was
// counted when the projector first met it. It reads at most what the stream holds of them.
func (p *projector[V]) replay(ctx context.Context, s jetstream.Stream, view *V, epoch uint64, tok string, before uint64, limit int) (read int, through uint64, err error) {
	b := p.b
	through = before - 1
	created := time.Now()
	cons, err := s.OrderedConsumer(ctx, p.consumerConfig(tok))
	if err != nil {
		return 0, 0, b.wrap(p.kind.name+" rebuild consumer", err)
	}
	it, err := cons.Messages()
	if err != nil {
		return 0, 0, b.wrap(p.kind.name+" rebuild consumer", err)
	}
	b.cfg.Metrics.ConsumerCreated(time.Since(created))
	defer b.deleteConsumer(ctx, p.kind.stream, cons)
	defer it.Stop()
	if ci := cons.CachedInfo(); ci == nil || ci.NumPending == 0 {
		return 0, through, nil
	}
	for {
		// Bounded: an event counted as pending may be discarded before it comes.
		next, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
		msg, err := it.Next(jetstream.NextContext(next))
		cancel()
		if err != nil {
			return read, 0, b.wrap(p.kind.name+" rebuild", err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return read, 0, b.wrap(p.kind.name+" rebuild", err)
		}
		if meta.Sequence.Stream >= before {
			return read, through, nil
		}
		read++
		_, _ = p.apply(view, limit, epoch, streamEvent{msg.Subject(), msg.Data(), meta.Sequence.Stream, meta.Timestamp})
		if meta.NumPending == 0 {
			return read, through, nil
		}
	}
}

// ensureViewBucket creates the key-value bucket of a projector's views, or updates it to the
// configured settings. It holds at most the streams' byte limit, and its stream discards its
// oldest values when full, so that past the limit the views least recently written are dropped
// (they count as empty, and are rebuilt) rather than every write refused. A bucket is created to
// discard new values: it is created so, while empty, and then changed in place; one that is
// there is only changed in place, never by the key-value API, which would set it to refuse
// writes until changed again.
func (b *Bus) ensureViewBucket(ctx context.Context, bucket, description string) error {
	maxBytes, replicas := b.cfg.Streams.MaxBytes, max(b.cfg.Streams.Replicas, 1)
	if maxBytes <= 0 {
		maxBytes = -1
	}
	stream := "KV_" + bucket
	s, err := b.js.Stream(ctx, stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		_, err = b.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      bucket,
			Description: description,
			History:     1,
			MaxBytes:    maxBytes,
			Storage:     jetstream.FileStorage,
			Replicas:    replicas,
		})
		if err != nil && !errors.Is(err, jetstream.ErrBucketExists) { // another node's is as good
			return err
		}
		s, err = b.js.Stream(ctx, stream)
	}
	if err != nil {
		return err
	}
	cfg := s.CachedInfo().Config
	if cfg.Discard == jetstream.DiscardOld && cfg.MaxBytes == maxBytes && cfg.Replicas == replicas &&
		cfg.MaxMsgsPerSubject == 1 && cfg.Description == description {
		return nil
	}
	cfg.Discard, cfg.MaxBytes, cfg.Replicas = jetstream.DiscardOld, maxBytes, replicas
	cfg.MaxMsgsPerSubject, cfg.Description = 1, description
	_, err = b.js.UpdateStream(ctx, cfg)
	return err
}
