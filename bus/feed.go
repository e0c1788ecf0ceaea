package bus

import (
	"context"
	"errors"
	"fmt"
	"sync"
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

// SkipBadSubject is the Metrics.Skipped reason for a stored event whose subject is not
// <channel>.<user token>.<TYPE> (routing.ParseSubject): it names no user, so it reaches no one,
// whichever path would have delivered it.
const SkipBadSubject = "bad_subject"

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
// consumer of its own, from the node's shared feed, or from the first until it has caught up
// and then the second. A live feed on the shared path has no goroutine and no memory of its
// own beyond a small struct until events arrive.
type Feed struct {
	notice  *Notice
	prelude []Event

	b     *Bus
	q     *queue
	ctx   context.Context
	abort context.CancelCauseFunc
	wg    sync.WaitGroup // its consumer goroutine, while it has one

	// The stream it reads, for catching up again.
	stream  jetstream.Stream
	name    string
	channel routing.Channel // the channel its stream serves, for counting what it skips
	filters []string
	epoch   uint64

	h   *hub    // the shared feed, when it uses one
	sub *hubSub // its place there; guarded by h.mu
}

// Ready receives when events are waiting or the feed has ended; then call Take.
func (f *Feed) Ready() <-chan struct{} { return f.q.ready }

// Epoch is the epoch of the stream the feed reads: the Epoch of every cursor it gives.
func (f *Feed) Epoch() uint64 { return f.epoch }

// Notice is set when the feed does not start right after the requested cursor.
func (f *Feed) Notice() *Notice { return f.notice }

// Prelude returns the events to send before the feed's own, computed when it opened: the
// CONTEXTS_SNAPSHOT system event of a contexts feed, whose events continue right after the
// sequence it reflects. Empty for other feeds.
func (f *Feed) Prelude() []Event { return f.prelude }

// Take appends up to max waiting events to dst, in stream order. more is false once the feed
// has ended and every event has been taken; Err then says why.
func (f *Feed) Take(dst []Event, max int) (_ []Event, more bool) { return f.q.take(dst, max) }

// Notify has fn called whenever Ready would receive from then on (events wait, or the feed has
// ended), and at once if that is so already: a consumer can follow many feeds without a
// goroutine waiting on each. fn is called with the feed's lock held: it must return quickly and
// must not call the feed's methods.
func (f *Feed) Notify(fn func()) {
	f.q.mu.Lock()
	defer f.q.mu.Unlock()
	f.q.notify = fn
	if len(f.q.events) > 0 || f.q.ended {
		fn()
	}
}

// Next waits for the feed's next event, for as long as ctx allows. Once the feed has ended it
// returns Err, or ErrClosed if the feed was closed or its context ended.
func (f *Feed) Next(ctx context.Context) (Event, error) {
	var one [1]Event
	for {
		evs, more := f.Take(one[:0], 1)
		if len(evs) == 1 {
			return evs[0], nil
		}
		if !more {
			if err := f.Err(); err != nil {
				return Event{}, err
			}
			return Event{}, ErrClosed
		}
		select {
		case <-f.Ready():
		case <-ctx.Done():
			return Event{}, ctx.Err()
		}
	}
}

// ErrClosed is what Next returns once a feed was closed or its context ended.
var ErrClosed = errors.New("bus: feed closed")

// Err returns the error that ended the feed, or nil if it was closed or its context ended.
func (f *Feed) Err() error {
	f.q.mu.Lock()
	defer f.q.mu.Unlock()
	return f.q.err
}

// Close stops the feed, deletes its consumer and waits until both are done. It is safe to call
// more than once.
func (f *Feed) Close() {
	f.abort(nil)
	if f.h != nil {
		f.h.leave(f)
	}
	f.wg.Wait()
	f.b.mu.Lock()
	delete(f.b.feeds, f)
	f.b.mu.Unlock()
}

// Subscribe opens a feed for sub. When it returns without error the consumer exists on the
// server, so every event stored from then on reaches the feed. The feed ends when ctx is done or
// Close is called; the caller must call Close.
func (b *Bus) Subscribe(ctx context.Context, sub routing.Subscription) (*Feed, error) {
	name, err := sub.Stream()
	if err != nil {
		return nil, err
	}
	if !b.connected(ctx) {
		return nil, fmt.Errorf("%w: subscribe: not connected", ErrUnavailable)
	}
	filters, err := sub.Filters()
	if err != nil {
		return nil, err
	}
	tok := "*"
	if !sub.AllUsers {
		tok, _ = routing.UserToken(sub.User)
	}
	if h := b.liveHub(name); h != nil && sub.Cursor == nil && sub.Since.IsZero() && !b.snapshotWanted(sub) {
		// Live from now on a shared feed that is running: no consumer, no API call.
		f := b.newFeed(ctx, nil, name, filters, h.epoch)
		f.h = h
		f.join(tok, sub.Types, true)
		return f, nil
	}
	select {
	case b.creating <- struct{}{}:
		defer func() { <-b.creating }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	var snapshot []byte
	var snapshotSeq uint64
	snapshotEpoch := b.knownEpoch(name)
	if b.snapshotWanted(sub) {
		// Before the stream's state is read, so that the state's last sequence is at or past
		// the snapshot's.
		if snapshot, snapshotSeq, err = b.snapshot(ctx, sub.User, snapshotEpoch); err != nil {
			return nil, err
		}
	}
	stream, err := b.js.Stream(ctx, name)
	if err != nil {
		return nil, b.wrap("stream "+name, err)
	}
	info := stream.CachedInfo()
	epoch := uint64(info.Created.UnixNano())
	if snapshot != nil && snapshotEpoch != epoch {
		// The stream was recreated since the bus last looked: the snapshot must be of this one.
		if snapshot, snapshotSeq, err = b.snapshot(ctx, sub.User, epoch); err != nil {
			return nil, err
		}
	}
	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects: filters,
		// What is new from here, as a sequence (see newFrom).
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       newFrom(info),
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
		snapshotEvent = &Event{
			Subject: "context.system." + tok + ".CONTEXTS_SNAPSHOT",
			Cursor:  routing.Cursor{Seq: snapshotSeq, Epoch: epoch},
			Data:    snapshot,
		}
	}
	f := b.newFeed(ctx, stream, name, filters, epoch)
	f.notice = notice
	if snapshotEvent != nil {
		f.prelude = []Event{*snapshotEvent}
	}
	if b.cfg.Delivery == DeliveryShared {
		h, err := b.hubFor(ctx, name, epoch)
		if err != nil {
			f.Close()
			return nil, err
		}
		// Joined before any catch-up consumer exists, so every event stored from here on
		// reaches the feed, and the catch-up hands over without a gap.
		live := sub.Cursor == nil && sub.Since.IsZero() && snapshot == nil
		f.h = h
		s := f.join(tok, sub.Types, live)
		if live {
			return f, nil
		}
		cons, it, err := b.openConsumer(ctx, stream, name, cfg)
		if err != nil {
			f.Close()
			return nil, err
		}
		f.start(func(ctx context.Context) error { return f.catchUp(ctx, s, cons, it, skipUntil) })
		return f, nil
	}
	cons, it, err := b.openConsumer(ctx, stream, name, cfg)
	if err != nil {
		f.Close()
		return nil, err
	}
	f.start(func(ctx context.Context) error {
		_, err := f.pump(ctx, it, skipUntil, false)
		it.Stop()
		b.deleteConsumer(ctx, name, cons)
		return err
	})
	return f, nil
}

// newFrom is the sequence of the next event the stream will store. A consumer of new events
// starts there rather than with DeliverNewPolicy: an ordered consumer recreated before it has
// delivered anything (its NATS node went away) applies its policy again, and "new" would then
// skip what was stored in between.
func newFrom(info *jetstream.StreamInfo) uint64 {
	return info.State.LastSeq + 1
}

// newFeed makes an empty feed that ends when ctx does, and lists it for endFeeds.
func (b *Bus) newFeed(ctx context.Context, stream jetstream.Stream, name string, filters []string, epoch uint64) *Feed {
	channel, _ := routing.Follows(name) // name comes from Subscription.Stream, so it has one
	f := &Feed{b: b, q: newQueue(), stream: stream, name: name, channel: channel, filters: filters, epoch: epoch}
	f.ctx, f.abort = context.WithCancelCause(ctx)
	context.AfterFunc(f.ctx, func() { f.q.end(abortCause(f.ctx)) })
	b.mu.Lock()
	b.feeds[f] = struct{}{}
	if b.staleEpoch(name, epoch) { // recreated since the caller looked: its client resumes
		f.abort(fmt.Errorf("%w: %s", ErrStreamRecreated, name))
	}
	b.mu.Unlock()
	return f
}

// start runs fn on a goroutine of the feed's. fn returns nil only when the feed goes on
// without it; an error ends the feed, unless the feed's context ended, which ends it already.
func (f *Feed) start(fn func(ctx context.Context) error) {
	f.wg.Add(1)
	f.b.wg.Add(1)
	go func() {
		defer f.b.wg.Done()
		defer f.wg.Done()
		if err := fn(f.ctx); err != nil && f.ctx.Err() == nil {
			f.q.end(err)
		}
	}()
}

// join puts the feed on its hub: live, the hub queues its events from now on; otherwise the hub
// holds them until the feed has caught up.
func (f *Feed) join(token string, types []string, live bool) *hubSub {
	s := &hubSub{token: token, types: types, feed: f, live: live}
	f.h.mu.Lock()
	defer f.h.mu.Unlock()
	if live { // what was stored before it joined is not the feed's
		f.q.pass(f.h.head)
	}
	f.h.add(s)
	return s
}

// catchUp passes the events of the feed's own consumer into its queue until it has caught up,
// deletes the consumer, then hands over to the hub. Without a consumer (nil cons), and again
// whenever the hub dropped the feed meanwhile for holding too many events, it opens one from the
// last event queued.
func (f *Feed) catchUp(ctx context.Context, s *hubSub, cons jetstream.Consumer, it jetstream.MessagesContext, skipUntil uint64) error {
	for {
		if cons == nil {
			var err error
			if cons, it, err = f.b.catchUpConsumer(ctx, f.stream, f.name, f.filters, f.q.lastQueued()+1); err != nil {
				f.h.unregister(s)
				return err
			}
		}
		var seen uint64
		var err error
		info := cons.CachedInfo()
		if info != nil {
			seen = info.Delivered.Stream // where it starts, in case nothing is pending
		}
		if info == nil || info.NumPending > 0 {
			seen, err = f.pumpUntilCaughtUp(ctx, it, skipUntil)
		}
		it.Stop()
		f.b.deleteConsumer(ctx, f.name, cons)
		if err != nil {
			f.h.unregister(s)
			return err
		}
		if f.h.goLive(s, seen) {
			return nil
		}
		s = f.join(s.token, s.types, false)
		cons, it, skipUntil = nil, nil, 0
	}
}

// rejoin catches up again after the hub dropped the live feed for falling behind, from the
// last event queued. The hub calls it with its lock held.
func (f *Feed) rejoin(old *hubSub) {
	if f.ctx.Err() != nil {
		return
	}
	s := &hubSub{token: old.token, types: old.types, feed: f}
	f.h.add(s)
	f.start(func(ctx context.Context) error { return f.catchUp(ctx, s, nil, nil, 0) })
}

// pullOpts sets how many events a connection's consumer may hold in this process and how soon
// it notices that its server went away. A catch-up consumer on the shared path lives only until
// it has caught up, so it pulls in larger batches for replay speed and, like the shared feed,
// checks its server every quickHeartbeat. A consumer that lives as long as its connection keeps
// the feed's buffer and the client's default heartbeat (5 s): a heartbeat a second for every
// connection would cost more than the wait it saves.
func (b *Bus) pullOpts() []jetstream.PullMessagesOpt {
	if b.cfg.Delivery == DeliveryShared {
		return []jetstream.PullMessagesOpt{jetstream.PullMaxMessages(512), jetstream.PullHeartbeat(quickHeartbeat)}
	}
	return []jetstream.PullMessagesOpt{jetstream.PullMaxMessages(b.cfg.Buffer)}
}

// catchUpConsumer creates a consumer for the filtered events from sequence from.
func (b *Bus) catchUpConsumer(ctx context.Context, stream jetstream.Stream, name string, filters []string, from uint64) (jetstream.Consumer, jetstream.MessagesContext, error) {
	if stream == nil { // the feed joined a running hub without reading the stream
		var err error
		if stream, err = b.js.Stream(ctx, name); err != nil {
			return nil, nil, b.wrap("stream "+name, err)
		}
	}
	select {
	case b.creating <- struct{}{}:
		defer func() { <-b.creating }()
	case <-ctx.Done():
		return nil, nil, ctx.Err()
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
	it, err := cons.Messages(b.pullOpts()...)
	if err != nil {
		return nil, nil, b.wrap("consumer on "+name, err)
	}
	b.cfg.Metrics.ConsumerCreated(time.Since(created))
	return cons, it, nil
}

// pumpUntilCaughtUp runs pump until a message arrives that had nothing pending behind it,
// and returns that message's sequence.
func (f *Feed) pumpUntilCaughtUp(ctx context.Context, it jetstream.MessagesContext, skipUntil uint64) (uint64, error) {
	seen, err := f.pump(ctx, it, skipUntil, true)
	if errors.Is(err, errCaughtUp) {
		return seen, nil
	}
	return seen, err
}

// errCaughtUp stops pump once the consumer has nothing pending.
var errCaughtUp = errors.New("caught up")

// pump moves messages from the consumer into the feed until ctx ends, the feed ends or the
// consumer fails, or, with untilCaughtUp, until it has queued a message with nothing pending
// behind it; it always returns an error saying which. Up to
// skipUntil it passes only events that can change a contexts view. It returns the sequence of
// the last message it saw.
func (f *Feed) pump(ctx context.Context, it jetstream.MessagesContext, skipUntil uint64, untilCaughtUp bool) (seen uint64, err error) {
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return seen, ctx.Err()
			}
			return seen, fmt.Errorf("%w: consumer: %v", ErrUnavailable, err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return seen, fmt.Errorf("bus: consumer: %w", err)
		}
		seen = meta.Sequence.Stream
		if _, err := routing.ParseSubject(msg.Subject()); err != nil {
			f.b.cfg.Metrics.Skipped(f.channel, SkipBadSubject)
		} else if seen > skipUntil || contexts.Relevant(msg.Subject()) {
			ev := Event{Subject: msg.Subject(), Cursor: routing.Cursor{Seq: seen, Epoch: f.epoch}, Data: msg.Data()}
			if err := f.q.put(ctx, ev, f.b.cfg.Buffer); err != nil {
				return seen, err
			}
		}
		if untilCaughtUp && meta.NumPending == 0 {
			return seen, errCaughtUp
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
