package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/eventsd/eventsd/contexts"
	"github.com/eventsd/eventsd/routing"
)

// Event is one stored event as a connection receives it.
type Event struct {
	Subject string
	Cursor  routing.Cursor
	Data    []byte
	// Compact is set when Data is known to be valid JSON without insignificant whitespace (the
	// shared feed checks each event once for all its connections); otherwise it is unchecked.
	Compact bool
}

// Notice reasons: why a feed does not continue exactly after the client's cursor.
const (
	// NoticeStreamRecreated: the cursor comes from an earlier life of the stream (it was deleted
	// and created again, or the cursor belongs to another stream); the feed starts at the
	// stream's first event.
	NoticeStreamRecreated = "stream_recreated"
	// NoticeCursorExpired: events after the cursor are no longer retained; the feed starts at
	// the oldest event the stream still holds.
	NoticeCursorExpired = "cursor_expired"
)

// Notice tells a resuming client that it may have missed events.
type Notice struct {
	Reason string
	Cursor routing.Cursor // the cursor the client asked for
	First  uint64         // the first sequence the stream still holds
}

// Feed is the ordered flow of one subscription's events. Its events come from a JetStream
// consumer of its own, created by Subscribe and deleted by Close.
type Feed struct {
	// Notice is set when the feed does not start right after the requested cursor.
	Notice *Notice
	// Snapshot, when set, is a CONTEXTS_SNAPSHOT system event to send before the feed's
	// events; they continue right after the sequence it reflects.
	Snapshot *Event

	events chan Event
	err    error  // set before events is closed
	last   uint64 // the last sequence the catch-up consumer delivered
	abort  context.CancelCauseFunc
	done   chan struct{}
}

// Events delivers the feed's events in stream order. It is closed when the feed ends; Err says
// why.
func (f *Feed) Events() <-chan Event { return f.events }

// Err returns the error that ended the feed, or nil if it was closed or its context ended. Call
// it after Events is closed.
func (f *Feed) Err() error { return f.err }

// Close stops the feed, deletes its consumer and waits until both are done. It is safe to call
// more than once.
func (f *Feed) Close() {
	f.abort(nil)
	<-f.done
}

// Subscribe opens a feed for sub. When it returns without error the consumer exists on the
// server, so every event stored from then on reaches the feed. The feed ends when ctx is done or
// Close is called; the caller must call Close.
func (b *Bus) Subscribe(ctx context.Context, sub routing.Subscription) (*Feed, error) {
	name, err := sub.Stream()
	if err != nil {
		return nil, err
	}
	if !b.Connected() {
		return nil, fmt.Errorf("%w: subscribe: not connected", ErrUnavailable)
	}
	filters, err := sub.Filters()
	if err != nil {
		return nil, err
	}
	select {
	case b.creating <- struct{}{}:
		defer func() { <-b.creating }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	var snapshot []byte
	var snapshotSeq uint64
	if b.snapshotWanted(sub) {
		// Before the stream's state is read, so that the state's last sequence is at or past
		// the snapshot's.
		if snapshot, snapshotSeq, err = b.snapshot(ctx, sub.User); err != nil {
			return nil, err
		}
	}
	stream, err := b.js.Stream(ctx, name)
	if err != nil {
		return nil, b.wrap("stream "+name, err)
	}
	info := stream.CachedInfo()
	epoch := uint64(info.Created.UnixNano())
	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects:    filters,
		DeliverPolicy:     jetstream.DeliverNewPolicy,
		InactiveThreshold: b.cfg.InactiveThreshold,
		MaxResetAttempts:  maxResets,
		NamePrefix:        "sse-" + nuid.Next(),
	}
	var notice *Notice
	if !sub.Since.IsZero() && sub.Cursor == nil {
		cfg.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		cfg.OptStartTime = &sub.Since
	}
	if c := sub.Cursor; c != nil {
		switch {
		case c.Epoch != epoch:
			notice = &Notice{Reason: NoticeStreamRecreated, Cursor: *c, First: info.State.FirstSeq}
			cfg.DeliverPolicy = jetstream.DeliverAllPolicy
		case c.Seq > info.State.LastSeq:
			return nil, fmt.Errorf("%w: cursor %s, last sequence %d", ErrCursorAhead, c, info.State.LastSeq)
		case c.Seq+1 < info.State.FirstSeq:
			notice = &Notice{Reason: NoticeCursorExpired, Cursor: *c, First: info.State.FirstSeq}
			cfg.DeliverPolicy = jetstream.DeliverAllPolicy
		default:
			cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
			cfg.OptStartSeq = c.Seq + 1
		}
	}
	var skipUntil uint64
	var snapshotEvent *Event
	if snapshot != nil {
		// Events after the snapshot follow it. Of those stored before this connection, only
		// the context events the snapshot does not reflect yet are sent; the rest are history
		// a new connection does not get.
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = snapshotSeq + 1
		skipUntil = max(info.State.LastSeq, snapshotSeq)
		tok, _ := routing.UserToken(sub.User)
		snapshotEvent = &Event{
			Subject: "context.system." + tok + ".CONTEXTS_SNAPSHOT",
			Cursor:  routing.Cursor{Seq: snapshotSeq, Epoch: epoch},
			Data:    snapshot,
		}
	}
	var h *hub
	var reg *hubSub
	if b.cfg.Delivery == DeliveryShared {
		if h, err = b.hubFor(ctx, name, epoch); err != nil {
			return nil, err
		}
		// Registered before any catch-up consumer exists, so every event stored from here on
		// reaches the queue, and the catch-up can hand over without a gap.
		tok := "*"
		if !sub.AllUsers {
			tok, _ = routing.UserToken(sub.User)
		}
		reg = h.register(tok, sub.Types, b.cfg.Queue)
	}
	live := h != nil && cfg.DeliverPolicy == jetstream.DeliverNewPolicy
	var cons jetstream.Consumer
	var it jetstream.MessagesContext
	if !live {
		if cons, it, err = b.openConsumer(ctx, stream, name, cfg); err != nil {
			if reg != nil {
				h.unregister(reg)
			}
			return nil, err
		}
	}

	ctx, abort := context.WithCancelCause(ctx)
	f := &Feed{
		Notice:   notice,
		Snapshot: snapshotEvent,
		events:   make(chan Event, b.cfg.Buffer),
		abort:    abort,
		done:     make(chan struct{}),
	}
	b.mu.Lock()
	b.feeds[f] = struct{}{}
	b.mu.Unlock()
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		defer close(f.done)
		defer func() {
			b.mu.Lock()
			delete(b.feeds, f)
			b.mu.Unlock()
		}()
		if h == nil {
			f.err = f.pump(ctx, it, epoch, skipUntil, false)
			close(f.events)
			it.Stop()
			b.deleteConsumer(ctx, name, cons)
			return
		}
		f.err = f.shared(ctx, b, stream, name, filters, h, reg, cons, it, epoch, skipUntil)
		close(f.events)
	}()
	return f, nil
}

// shared runs a feed on the shared hub: it catches up on a consumer of its own while it has
// one (deleting it once caught up), then passes on the hub's events after the last one sent. If
// the client falls so far behind that the hub drops it, it catches up again from its last event
// on a new consumer instead of holding more in memory.
func (f *Feed) shared(ctx context.Context, b *Bus, stream jetstream.Stream, name string, filters []string, h *hub, reg *hubSub,
	cons jetstream.Consumer, it jetstream.MessagesContext, epoch, skipUntil uint64) error {
	var last uint64
	defer func() { h.unregister(reg) }()
	for {
		if it != nil {
			var err error
			if info := cons.CachedInfo(); info == nil || info.NumPending > 0 {
				var got uint64
				got, err = f.pumpUntilCaughtUp(ctx, it, epoch, skipUntil)
				last = max(last, got)
			}
			it.Stop()
			b.deleteConsumer(ctx, name, cons)
			it, skipUntil = nil, 0
			if err != nil {
				return err
			}
		}
		if err := f.forward(ctx, h, reg, &last); !errors.Is(err, ErrBehind) {
			return err
		}
		// Dropped by the hub: join again, then catch up from the last event sent.
		h.unregister(reg)
		reg = h.register(reg.token, reg.types, cap(reg.q))
		var err error
		cons, it, err = b.catchUpConsumer(ctx, stream, name, filters, last+1)
		if err != nil {
			return err
		}
	}
}

// pullBatch is how many events a connection's consumer may hold in this process. A catch-up
// consumer on the shared path lives only until it has caught up, so it pulls in larger batches
// for replay speed; a consumer that lives as long as its connection keeps the feed's buffer.
func (b *Bus) pullBatch() int {
	if b.cfg.Delivery == DeliveryShared {
		return 512
	}
	return b.cfg.Buffer
}

// catchUpConsumer creates a consumer for the filtered events from sequence from.
func (b *Bus) catchUpConsumer(ctx context.Context, stream jetstream.Stream, name string, filters []string, from uint64) (jetstream.Consumer, jetstream.MessagesContext, error) {
	select {
	case b.creating <- struct{}{}:
		defer func() { <-b.creating }()
	case <-ctx.Done():
		return nil, nil, abortCause(ctx)
	}
	return b.openConsumer(ctx, stream, name, jetstream.OrderedConsumerConfig{
		FilterSubjects: filters, DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: from,
		InactiveThreshold: b.cfg.InactiveThreshold,
		MaxResetAttempts:  maxResets,
	})
}

// openConsumer creates a connection's ordered consumer and starts pulling from it.
func (b *Bus) openConsumer(ctx context.Context, stream jetstream.Stream, name string, cfg jetstream.OrderedConsumerConfig) (jetstream.Consumer, jetstream.MessagesContext, error) {
	created := time.Now()
	cons, err := stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		return nil, nil, b.wrap("consumer on "+name, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(b.pullBatch()))
	if err != nil {
		return nil, nil, b.wrap("consumer on "+name, err)
	}
	b.cfg.Metrics.ConsumerCreated(time.Since(created))
	return cons, it, nil
}

// forward passes the hub's events after *last into the feed.
func (f *Feed) forward(ctx context.Context, h *hub, reg *hubSub, last *uint64) error {
	for {
		select {
		case <-ctx.Done():
			return abortCause(ctx)
		case <-reg.cut:
			return h.errCut(reg)
		case ev := <-reg.q:
			if ev.Cursor.Seq <= *last {
				continue // the catch-up sent it already
			}
			select {
			case f.events <- ev:
				*last = ev.Cursor.Seq
			case <-ctx.Done():
				return abortCause(ctx)
			case <-reg.cut:
				return h.errCut(reg)
			}
		}
	}
}

// pumpUntilCaughtUp runs pump until a message arrives that had nothing pending behind it,
// and returns that message's sequence.
func (f *Feed) pumpUntilCaughtUp(ctx context.Context, it jetstream.MessagesContext, epoch, skipUntil uint64) (uint64, error) {
	f.last = 0
	err := f.pump(ctx, it, epoch, skipUntil, true)
	if errors.Is(err, errCaughtUp) {
		return f.last, nil
	}
	if err == nil {
		err = abortCause(ctx)
	}
	return f.last, err
}

// errCaughtUp stops pump once the consumer has nothing pending.
var errCaughtUp = errors.New("caught up")

// pump moves messages from the consumer into the feed until ctx ends or the consumer fails,
// or, with untilCaughtUp, until it has sent a message with nothing pending behind it. Up to
// skipUntil it passes only events that can change a contexts view.
func (f *Feed) pump(ctx context.Context, it jetstream.MessagesContext, epoch, skipUntil uint64, untilCaughtUp bool) error {
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return abortCause(ctx)
			}
			return fmt.Errorf("%w: consumer: %v", ErrUnavailable, err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("bus: consumer: %w", err)
		}
		f.last = meta.Sequence.Stream
		if meta.Sequence.Stream > skipUntil || contexts.Relevant(msg.Subject()) {
			ev := Event{Subject: msg.Subject(), Cursor: routing.Cursor{Seq: meta.Sequence.Stream, Epoch: epoch}, Data: msg.Data()}
			select {
			case f.events <- ev:
			case <-ctx.Done():
				return abortCause(ctx)
			}
		}
		if untilCaughtUp && meta.NumPending == 0 {
			return errCaughtUp
		}
	}
}

// abortCause is nil for a feed closed or whose caller went away, and the reason otherwise.
func abortCause(ctx context.Context) error {
	if cause := context.Cause(ctx); errors.Is(cause, ErrUnavailable) {
		return cause
	}
	return nil
}

// deleteConsumer removes a feed's consumer at once rather than waiting for the inactivity
// threshold. The feed's context is already done, so it uses a fresh one.
func (b *Bus) deleteConsumer(ctx context.Context, stream string, cons jetstream.Consumer) {
	info := cons.CachedInfo()
	if info == nil || !b.Connected() {
		return // the inactivity threshold removes it
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.cfg.Timeout)
	defer cancel()
	start := time.Now()
	err := b.js.DeleteConsumer(ctx, stream, info.Name)
	b.cfg.Metrics.ConsumerDeleted(time.Since(start))
	if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		b.log.Warn("delete consumer", "stream", stream, "consumer", info.Name, "err", err)
	}
}
