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

// The projector's backoff when another node wrote a view between its read and its write: from
// conflictMin, doubling up to conflictMax, so that on a replicated bucket it does not spin until
// the other write is seen.
const (
	conflictMin = time.Millisecond
	conflictMax = 100 * time.Millisecond
)

// Reasons the contexts projector passes an event over (Metrics.ViewSkipped).
const (
	skipMalformed     = "malformed"      // the event is not a JSON object
	skipIDTooLong     = "id_too_long"    // its context id is over contexts.MaxIDBytes
	skipTooLarge      = "too_large"      // the view would be over the server's payload limit
	skipMalformedView = "malformed_view" // the stored view could not be read: it starts again
	skipFailed        = "failed"         // the bucket refused the view for another lasting reason
	skipRebuild       = "rebuild_failed" // a missing view could not be rebuilt: it starts again
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
// Events waiting are applied in batches (up to batchEvents events or batchBytes), with one read
// and one write of each user's view, so that one user's flood costs the others little. An
// event that can never be applied is logged, counted (Metrics.ViewSkipped) and passed over;
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
	ctx    context.Context
	stop   context.CancelFunc
	run    uint64
	epoch  uint64
	from   uint64
	stream jetstream.Stream // the CONTEXT stream of epoch
	cons   jetstream.Consumer
	it     jetstream.MessagesContext
}

// openRun opens the next run of the projector.
func (b *Bus) openRun(ctx context.Context) (*projectorRun, error) {
	s, err := b.js.Stream(ctx, routing.StreamContext)
	if err != nil {
		return nil, b.wrap("stream "+routing.StreamContext, err)
	}
	r := &projectorRun{epoch: uint64(s.CachedInfo().Created.UnixNano()), stream: s}
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

// The projector's batches. While its consumer reports more events pending, it gathers up to
// batchEvents events or batchBytes of event data, then reads each user's view once, applies
// that user's events in order and writes the view once: a user who sends many events costs a
// view's read and write per batch, not per event. gatherWait is how long an event reported
// pending may take to arrive (it may have been discarded meanwhile) before the batch goes on
// without it.
const (
	batchEvents = 256
	batchBytes  = 4 << 20
	gatherWait  = 100 * time.Millisecond
)

// contextEvent is an event of the CONTEXT stream, as the projector applies it.
type contextEvent struct {
	subject string
	data    []byte
	seq     uint64
	stored  time.Time
}

// projectFrom applies the run's events, a batch at a time, until its context ends or its
// consumer fails. The position advances only once the whole batch is written.
func (b *Bus) projectFrom(r *projectorRun) error {
	for {
		batch, err := b.gather(r)
		if err != nil {
			return err
		}
		if len(batch) == 0 {
			continue
		}
		var order []string // the users in the order of their first event
		groups := map[string][]contextEvent{}
		for _, e := range batch {
			tok, ok := contexts.UserToken(e.subject)
			if !ok {
				continue
			}
			key := contexts.KeyOfToken(tok)
			if _, seen := groups[key]; !seen {
				order = append(order, key)
			}
			groups[key] = append(groups[key], e)
		}
		for _, key := range order {
			if err := b.projectUser(r, key, groups[key]); err != nil {
				return err
			}
		}
		b.proj.applied(r.run, batch[len(batch)-1].seq)
	}
}

// gather waits for the next event and returns it with those that follow it at once: while the
// consumer reports more pending, up to batchEvents events or batchBytes of data.
func (b *Bus) gather(r *projectorRun) ([]contextEvent, error) {
	var batch []contextEvent
	size := 0
	for pending := true; pending && len(batch) < batchEvents && size < batchBytes; {
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
		batch = append(batch, contextEvent{subject: msg.Subject(), data: msg.Data(), seq: meta.Sequence.Stream, stored: meta.Timestamp})
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
	ev     contextEvent
	reason string
	err    error
}

// projectUser applies one user's events of a batch to their view. It tries again while the
// failure may pass (NATS away), and on the fresh view when another node wrote it meanwhile
// (applying is idempotent). If the view cannot be written for a lasting reason, it applies the
// events one at a time, so that only an event that can never be applied is passed over.
func (b *Bus) projectUser(r *projectorRun, key string, events []contextEvent) error {
	for wait, conflictWait := time.Duration(0), time.Duration(0); ; {
		skips, err := b.project(r, key, events)
		if errors.Is(err, errConflict) {
			conflictWait = min(max(2*conflictWait, conflictMin), conflictMax)
			if !sleep(r.ctx, conflictWait) {
				return r.ctx.Err()
			}
			continue
		}
		if err != nil && transient(err) {
			wait = nextWait(wait)
			b.log.Warn("contexts projector", "subject", events[0].subject, "seq", events[0].seq, "err", err, "retry_in", wait)
			if !sleep(r.ctx, wait) {
				return r.ctx.Err()
			}
			continue
		}
		if err != nil && len(events) > 1 {
			for i := range events {
				if err := b.projectUser(r, key, events[i:i+1]); err != nil {
					return err
				}
			}
			return nil
		}
		if err != nil {
			skips = append(skips, skip{events[0], skipReason(err), err})
		}
		for _, s := range skips {
			b.log.Warn("contexts projector skipped an event", "subject", s.ev.subject, "seq", s.ev.seq, "reason", s.reason, "err", s.err)
			b.cfg.Metrics.ViewSkipped("contexts", s.reason)
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

// project applies events of the run's CONTEXT stream, all of one user's, in order, to the view
// under key, and writes it once if they changed it. It returns the events that can never be
// applied; a view that cannot be read is replaced (rebuilt as below, then the events), and a
// skip with skipMalformedView (for the first of them) says so.
//
// A view that reflects nothing of the stream (never written, dropped from a full bucket, one
// that cannot be read, or one of an earlier life of the stream) is first rebuilt from the
// user's events the stream still holds before the first of events: without that, the view
// would start again at the first event's sequence, and every later replay would take the
// user's earlier events as applied.
func (b *Bus) project(r *projectorRun, key string, events []contextEvent) ([]skip, error) {
	ctx, epoch := r.ctx, r.epoch
	view, rev, err := b.view(ctx, key, epoch)
	malformed := errors.Is(err, errMalformedView)
	if err != nil && !malformed {
		return nil, err
	}
	var skips []skip
	limit := b.viewLimit()
	changed := false
	if blank(view, epoch) {
		tok, _ := contexts.UserToken(events[0].subject)
		*view = contexts.View{}
		n, _, err := b.rebuild(ctx, r.stream, view, epoch, tok, events[0].seq, limit, len(events))
		if err != nil && transient(err) {
			return nil, err
		}
		if err != nil {
			// Started again from the events, as a view that cannot be read is.
			*view = contexts.View{}
			err = fmt.Errorf("rebuild %s: %w", key, err)
			skips = append(skips, skip{events[0], skipRebuild, err})
		}
		changed = n > 0 && err == nil
	}
	for _, e := range events {
		// Trimmed to the bound after every event, so that the view is the same however the
		// events are grouped.
		ok, err := view.ApplyWithin(limit, epoch, e.subject, e.data, e.seq, e.stored)
		if err != nil {
			skips = append(skips, skip{e, skipReason(err), err})
		}
		changed = changed || ok
	}
	if !changed {
		return skips, nil
	}
	value, err := json.Marshal(view)
	if err != nil {
		return nil, err
	}
	if rev == 0 {
		_, err = b.kv.Create(ctx, key, value)
	} else {
		_, err = b.kv.Update(ctx, key, value, rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || isWrongSequence(err) {
		return nil, errConflict
	}
	if err != nil {
		return nil, b.wrap("put "+key, err)
	}
	if malformed {
		err := fmt.Errorf("%w %s: started again", errMalformedView, key)
		skips = append([]skip{{events[0], skipMalformedView, err}}, skips...)
	}
	return skips, nil
}

// viewHeadroom is room for the headers and subject of a view's message within the server's
// payload limit.
const viewHeadroom = 1024

// viewLimit is the most JSON a view may take: contexts.MaxViewBytes, or less on a server with a
// smaller payload limit.
func (b *Bus) viewLimit() int {
	return min(int(b.nc.MaxPayload())-viewHeadroom, contexts.MaxViewBytes)
}

// blank reports whether a view as read reflects none of the CONTEXT stream of epoch: none
// stored, or one of an earlier life of the stream (a view of a later life is left alone:
// Apply ignores the events of this one).
func blank(v *contexts.View, epoch uint64) bool {
	return v.Seq == 0 || v.Epoch < epoch
}

// rebuild applies to view, in stream order, the context events of the user of token tok that
// the CONTEXT stream of epoch (s) holds before sequence before (0: all it holds now), within
// limit bytes. It returns how many it read and the sequence through which the view now
// reflects every event of the user (0 if the stream was recreated meanwhile).
//
// It reads them with an ordered consumer, filtered to that user's events, that it deletes once
// done. It first asks the stream how many such events it holds, and opens none if it holds no
// more than known (the events about to be applied), or if the user's first event it holds is
// not before them, as for a user seen for the first time. An event that can never be applied
// is passed over without being counted: it was counted when the projector first met it. It
// reads at most what the stream holds of the user, and returns a failure of NATS as such
// (transient).
func (b *Bus) rebuild(ctx context.Context, s jetstream.Stream, view *contexts.View, epoch uint64, tok string, before uint64, limit, known int) (read int, through uint64, err error) {
	info, err := s.Info(ctx, jetstream.WithSubjectFilter("context.*."+tok+".*"))
	if err != nil {
		return 0, 0, b.wrap("stream "+routing.StreamContext, err)
	}
	if uint64(info.Created.UnixNano()) != epoch {
		return 0, 0, nil // recreated: the watcher restarts the projector
	}
	if before == 0 {
		before = info.State.LastSeq + 1
	}
	through = before - 1
	stored := 0
	for subject, n := range info.State.Subjects {
		if contexts.Relevant(subject) {
			stored += int(n)
		}
	}
	if stored <= known || before <= info.State.FirstSeq {
		return 0, through, nil
	}
	if known > 0 {
		// Some of the user's events may come after those about to be applied (the projector
		// is behind): is the user's first event stored before them? (Of any type: one that
		// cannot change the view makes the consumer below read nothing.) So a replay of the
		// stream from its start opens no consumer for a user's first events.
		first, err := s.GetMsg(ctx, info.State.FirstSeq, jetstream.WithGetMsgSubject("context.*."+tok+".*"))
		if errors.Is(err, jetstream.ErrMsgNotFound) || err == nil && first.Sequence >= before {
			return 0, through, nil
		}
		if err != nil {
			return 0, 0, b.wrap("stream "+routing.StreamContext, err)
		}
	}
	created := time.Now()
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects:    contexts.FiltersOf(tok),
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		InactiveThreshold: b.cfg.InactiveThreshold,
		MaxResetAttempts:  maxResets,
	})
	if err != nil {
		return 0, 0, b.wrap("contexts rebuild consumer", err)
	}
	it, err := cons.Messages()
	if err != nil {
		return 0, 0, b.wrap("contexts rebuild consumer", err)
	}
	b.cfg.Metrics.ConsumerCreated(time.Since(created))
	defer b.deleteConsumer(ctx, routing.StreamContext, cons)
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
			return read, 0, b.wrap("contexts rebuild", err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return read, 0, b.wrap("contexts rebuild", err)
		}
		if meta.Sequence.Stream >= before {
			return read, through, nil
		}
		read++
		_, _ = view.ApplyWithin(limit, epoch, msg.Subject(), msg.Data(), meta.Sequence.Stream, meta.Timestamp)
		if meta.NumPending == 0 {
			return read, through, nil
		}
	}
}

// isWrongSequence reports a compare-and-set conflict: a replicated stream (R>1) reports it with
// a code of its own.
func isWrongSequence(err error) bool {
	return isAPIError(err, jetstream.JSErrCodeStreamWrongLastSequence, jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// view reads a user's view and its revision (0 when there is none), as of the CONTEXT stream
// of epoch: a view stored without an epoch is stamped (contexts.View.Stamp). A view that is
// not there (never written, or dropped from a full bucket) comes back empty; one that cannot
// be read comes back empty, with its revision and errMalformedView.
func (b *Bus) view(ctx context.Context, key string, epoch uint64) (*contexts.View, uint64, error) {
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
	v.Stamp(epoch, entry.Created())
	return &v, entry.Revision(), nil
}

// ensureBucket creates the CONTEXTS bucket, or updates it to the configured settings. It holds
// at most the streams' byte limit, and its stream discards its oldest values when full, so that
// past the limit the views of the users least recently written are dropped (they count as
// empty) rather than every write refused. A bucket is created to discard new values: it is
// created so, while empty, and then changed in place; one that is there is only changed in
// place, never by the key-value API, which would set it to refuse writes until changed again.
func (b *Bus) ensureBucket(ctx context.Context) error {
	const description = "each user's contexts view, for CONTEXTS_SNAPSHOT"
	maxBytes, replicas := b.cfg.Streams.MaxBytes, max(b.cfg.Streams.Replicas, 1)
	if maxBytes <= 0 {
		maxBytes = -1
	}
	s, err := b.js.Stream(ctx, bucketStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		_, err = b.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      routing.BucketContexts,
			Description: description,
			History:     1,
			MaxBytes:    maxBytes,
			Storage:     jetstream.FileStorage,
			Replicas:    replicas,
		})
		if err != nil && !errors.Is(err, jetstream.ErrBucketExists) { // another node's is as good
			return err
		}
		s, err = b.js.Stream(ctx, bucketStream)
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

// snapshot returns the contexts snapshot of user as of the CONTEXT stream of epoch, and the
// stream sequence it reflects: every context event of the user up to that sequence, and none
// after it. A view of another epoch, or one that cannot be read, counts as empty. A user with
// no view of this stream (never written, or dropped from a full bucket) gets one rebuilt from
// the events the stream holds, as the projector would (not stored: the projector stores it
// with the user's next event); if that fails, the empty view.
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
	view, _, err := b.view(ctx, key, epoch)
	if errors.Is(err, errMalformedView) {
		b.log.Warn("contexts snapshot", "user", user, "err", err)
	} else if err != nil {
		return nil, 0, err
	}
	if !view.Of(epoch) {
		view = &contexts.View{}
	}
	if blank(view, epoch) {
		rebuilt, through, err := b.snapshotRebuild(ctx, user, epoch)
		if err != nil {
			b.log.Warn("contexts snapshot: rebuild", "user", user, "err", err)
		} else if through > 0 {
			view, applied = rebuilt, max(applied, through)
		}
	}
	data, err = json.Marshal(view.Snapshot(time.Now()))
	if err != nil {
		return nil, 0, err
	}
	return data, max(applied, view.Seq), nil
}

// snapshotRebuild builds user's view from the events the CONTEXT stream of epoch holds, and
// returns it with the sequence through which it reflects them (0 if the stream is of another
// epoch).
func (b *Bus) snapshotRebuild(ctx context.Context, user string, epoch uint64) (*contexts.View, uint64, error) {
	tok, err := routing.UserToken(user)
	if err != nil {
		return nil, 0, err
	}
	s, err := b.js.Stream(ctx, routing.StreamContext)
	if err != nil {
		return nil, 0, b.wrap("stream "+routing.StreamContext, err)
	}
	view := &contexts.View{}
	_, through, err := b.rebuild(ctx, s, view, epoch, tok, 0, b.viewLimit(), 0)
	if err != nil {
		return nil, 0, err
	}
	return view, through, nil
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
