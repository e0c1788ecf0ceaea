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

	"github.com/eventsd/eventsd/contexts"
	"github.com/eventsd/eventsd/event"
	"github.com/eventsd/eventsd/routing"
)

// The projector's backoff while NATS (or the CONTEXTS bucket) is away: from retryMin, doubling
// up to retryMax.
const (
	retryMin = 100 * time.Millisecond
	retryMax = 30 * time.Second
)

// Reasons the contexts projector passes an event over (Metrics.ViewSkipped).
const (
	skipMalformed     = "malformed"      // the event is not a JSON object
	skipIDTooLong     = "id_too_long"    // its context id is over contexts.MaxIDBytes
	skipTooLarge      = "too_large"      // the view would be over the server's payload limit
	skipMalformedView = "malformed_view" // the stored view could not be read: it starts again
	skipFailed        = "failed"         // the bucket refused the view for another lasting reason
)

// projection is where the contexts projector is: every relevant event of the CONTEXT stream of
// epoch up to seq is applied. A watcher that sees the stream or the bucket recreated resets it
// and restarts the projector, which then applies the new stream from its first event.
type projection struct {
	mu    sync.Mutex
	epoch uint64
	seq   uint64
	run   uint64             // counts restarts: a run that was restarted records nothing more
	stop  context.CancelFunc // ends the current run
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
	}
}

// restart forgets the position and ends the current run: the next one starts at the first
// event of the stream.
func (p *projection) restart() {
	p.mu.Lock()
	p.run++
	p.epoch, p.seq = 0, 0
	stop := p.stop
	p.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// StartContexts starts the contexts projector: it follows the CONTEXT stream's context events
// and keeps each user's view in the CONTEXTS bucket, until ctx ends or the Bus closes. From
// then on a new contexts feed without a cursor starts with a CONTEXTS_SNAPSHOT.
//
// Every eventsd node runs one. Applying is idempotent (a view records the stream's epoch and
// the last sequence it applied), so nodes that apply the same event agree, and a restarted node
// replays the stream's retained context events without changing anything already applied.
// An event that can never be applied is logged, counted (Metrics.ViewSkipped) and passed over;
// while NATS is away the projector waits and tries again, backing off up to 30 s.
func (b *Bus) StartContexts(ctx context.Context) error {
	kv, err := b.js.KeyValue(ctx, routing.BucketContexts)
	if err != nil {
		return b.wrap("bucket "+routing.BucketContexts, err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	first, err := b.openRun(ctx)
	if err != nil {
		cancel()
		return err
	}
	b.kv, b.stopProject = kv, cancel
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		r := first
		wait := time.Duration(0)
		for {
			before := r.from
			done := make(chan error, 1)
			b.wg.Add(1)
			go func(r *projectorRun) {
				defer b.wg.Done()
				err := b.projectFrom(r)
				r.it.Stop()
				b.deleteConsumer(ctx, routing.StreamContext, r.cons)
				done <- err
			}(r)
			var err error
			select {
			case err = <-done:
				done = nil
			case <-r.ctx.Done():
				// Restarted (or closing). The run ends by itself and records nothing more;
				// its consumer may be busy for seconds recreating itself on a deleted stream,
				// deaf to its context.
			}
			restarted := r.ctx.Err() != nil
			r.stop()
			if ctx.Err() != nil {
				return
			}
			if _, seq := b.proj.position(); restarted || seq >= before {
				wait = 0 // restarted by the watcher, or it made progress: go again at once
			}
			if !restarted {
				b.log.Warn("contexts projector stopped", "err", err)
			}
			old := r
			for {
				if wait > 0 && !sleep(ctx, wait) {
					return
				}
				wait = nextWait(wait)
				if r, err = b.openRun(ctx); err == nil {
					break
				}
				b.log.Warn("contexts projector", "err", err, "retry_in", wait)
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
	}()
	return nil
}

// projectorRun is one run of the projector: a consumer of the context events of the CONTEXT
// stream as it is now, from after what was applied of it.
type projectorRun struct {
	ctx   context.Context
	stop  context.CancelFunc
	run   uint64
	epoch uint64
	from  uint64
	cons  jetstream.Consumer
	it    jetstream.MessagesContext
}

// openRun opens the next run of the projector.
func (b *Bus) openRun(ctx context.Context) (*projectorRun, error) {
	s, err := b.js.Stream(ctx, routing.StreamContext)
	if err != nil {
		return nil, b.wrap("stream "+routing.StreamContext, err)
	}
	r := &projectorRun{epoch: uint64(s.CachedInfo().Created.UnixNano())}
	r.ctx, r.stop = context.WithCancel(ctx)
	r.run, r.from = b.proj.begin(r.epoch, r.stop)
	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects:    contexts.Filters(),
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		InactiveThreshold: b.cfg.InactiveThreshold,
		MaxResetAttempts:  maxResets,
	}
	if r.from > 1 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, r.from
	}
	if r.cons, err = s.OrderedConsumer(ctx, cfg); err != nil {
		r.stop()
		return nil, b.wrap("contexts consumer", err)
	}
	if r.it, err = r.cons.Messages(); err != nil {
		r.stop()
		return nil, b.wrap("contexts consumer", err)
	}
	return r, nil
}

// projectFrom applies the run's events until its context ends or its consumer fails. It tries
// an event again only while the failure may pass (NATS away); an event that can never be
// applied is passed over.
func (b *Bus) projectFrom(r *projectorRun) error {
	for {
		msg, err := r.it.Next(jetstream.NextContext(r.ctx))
		if err != nil {
			return err
		}
		meta, err := msg.Metadata()
		if err != nil {
			continue
		}
		seq := meta.Sequence.Stream
		for wait := time.Duration(0); ; {
			err := b.project(r.ctx, r.epoch, msg.Subject(), msg.Data(), seq, meta.Timestamp)
			if errors.Is(err, errConflict) {
				continue // another node wrote the view meanwhile: apply to the fresh one
			}
			if err == nil || !transient(err) {
				if reason := skipReason(err); reason != "" {
					b.log.Warn("contexts projector skipped an event", "subject", msg.Subject(), "seq", seq, "reason", reason, "err", err)
					b.cfg.Metrics.ViewSkipped("contexts", reason)
				}
				break
			}
			wait = nextWait(wait)
			b.log.Warn("contexts projector", "subject", msg.Subject(), "seq", seq, "err", err, "retry_in", wait)
			if !sleep(r.ctx, wait) {
				return r.ctx.Err()
			}
		}
		b.proj.applied(r.run, seq)
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

// skipReason names why an event was passed over, or is "" for one applied.
func skipReason(err error) string {
	var apiErr *jetstream.APIError
	switch {
	case err == nil:
		return ""
	case errors.Is(err, errMalformedView):
		return skipMalformedView
	case errors.Is(err, contexts.ErrMalformed):
		return skipMalformed
	case errors.Is(err, contexts.ErrIDTooLong):
		return skipIDTooLong
	case errors.Is(err, nats.ErrMaxPayload),
		errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum:
		return skipTooLarge
	default:
		return skipFailed
	}
}

// errConflict reports a view changed by another node between read and write; the event is
// applied again on the fresh view.
var errConflict = errors.New("bus: contexts view changed concurrently")

// errMalformedView reports a stored view that cannot be read.
var errMalformedView = errors.New("bus: malformed contexts view")

// project applies one event of the CONTEXT stream of epoch to its user's view. A view that
// cannot be read is replaced by one that starts with the event, and errMalformedView says so.
func (b *Bus) project(ctx context.Context, epoch uint64, subject string, data []byte, seq uint64, stored time.Time) error {
	tok, ok := contexts.UserToken(subject)
	if !ok {
		return nil
	}
	key := contexts.KeyOfToken(tok)
	view, rev, err := b.view(ctx, key)
	malformed := errors.Is(err, errMalformedView)
	if err != nil && !malformed {
		return err
	}
	if changed, err := view.Apply(epoch, subject, data, seq, stored); err != nil || !changed {
		return err
	}
	// The view fits contexts.MaxViewBytes; a server with a smaller payload limit gets less.
	if limit := int(b.nc.MaxPayload()) - viewHeadroom; limit < contexts.MaxViewBytes {
		view.Trim(contexts.MaxContexts, limit)
	}
	value, err := json.Marshal(view)
	if err != nil {
		return err
	}
	if rev == 0 {
		_, err = b.kv.Create(ctx, key, value)
	} else {
		_, err = b.kv.Update(ctx, key, value, rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || isWrongSequence(err) {
		return errConflict
	}
	if err != nil {
		return b.wrap("put "+key, err)
	}
	if malformed {
		return fmt.Errorf("%w %s: started again", errMalformedView, key)
	}
	return nil
}

// viewHeadroom is room for the headers and subject of a view's message within the server's
// payload limit.
const viewHeadroom = 1024

func isWrongSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

// view reads a user's view and its revision (0 when there is none). A view that cannot be read
// comes back empty, with its revision and errMalformedView.
func (b *Bus) view(ctx context.Context, key string) (*contexts.View, uint64, error) {
	entry, err := b.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return &contexts.View{}, 0, nil
	}
	if err != nil {
		return nil, 0, b.wrap("get "+key, err)
	}
	var v contexts.View
	if err := json.Unmarshal(entry.Value(), &v); err != nil {
		return &contexts.View{}, entry.Revision(), fmt.Errorf("%w %s: %v", errMalformedView, key, err)
	}
	return &v, entry.Revision(), nil
}

// snapshot returns the contexts snapshot of user as of the CONTEXT stream of epoch, and the
// stream sequence it reflects: every context event of the user up to that sequence, and none
// after it. A view of another epoch, or one that cannot be read, counts as empty.
func (b *Bus) snapshot(ctx context.Context, user string, epoch uint64) (data []byte, seq uint64, err error) {
	// The projector's position is read before the view: everything up to it was applied
	// before the view was read, so the view reflects at least that much.
	pEpoch, applied := b.proj.position()
	if pEpoch != epoch {
		applied = 0
	}
	key, err := contexts.Key(user)
	if err != nil {
		return nil, 0, err
	}
	view, _, err := b.view(ctx, key)
	if errors.Is(err, errMalformedView) {
		b.log.Warn("contexts snapshot", "user", user, "err", err)
	} else if err != nil {
		return nil, 0, err
	}
	if !view.Of(epoch) {
		view = &contexts.View{}
	}
	data, err = json.Marshal(view.Snapshot(time.Now()))
	if err != nil {
		return nil, 0, err
	}
	return data, max(applied, view.Seq), nil
}

// snapshotWanted reports whether a feed for sub starts with a contexts snapshot.
func (b *Bus) snapshotWanted(sub routing.Subscription) bool {
	if b.kv == nil || sub.Channel != routing.Contexts || sub.Cursor != nil || !sub.Since.IsZero() || sub.AllUsers {
		return false
	}
	if len(sub.Types) == 0 {
		return true
	}
	for _, t := range sub.Types {
		if t == (event.ContextsSnapshot{}).EventType() {
			return true
		}
	}
	return false
}
