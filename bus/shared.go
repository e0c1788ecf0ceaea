package bus

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/eventsd/eventsd/event"
	"github.com/eventsd/eventsd/fanout"
	"github.com/eventsd/eventsd/routing"
)

// Delivery modes: where a connection's live events come from.
const (
	// DeliveryShared: one consumer per stream and node fans events out in process to the
	// connections by user. A resuming connection catches up on a consumer of its own, deleted
	// as soon as it has caught up, then joins the shared feed with no gap and no duplicate.
	DeliveryShared = "shared"
	// DeliveryConsumer: every connection has its own consumer for its whole life.
	DeliveryConsumer = "consumer"
)

// SharedConsumerPrefix starts the name of every shared feed's consumer.
const SharedConsumerPrefix = "shared-"

// maxResets bounds how often an ordered consumer recreates itself in a row before its iterator
// fails; unbounded, a consumer whose server is gone would retry for ever and hold up Close.
const maxResets = 5

// quickHeartbeat is how often the server of the shared feed's consumer shows it is alive while
// there is nothing to deliver. After two missed beats the ordered consumer recreates itself from
// its last event, on a server that is up: the shared feed stalls for about 2 s, not the
// client's default 10 s, when the NATS node holding its consumer goes away.
const quickHeartbeat = time.Second

// sharedFeed is the shared feed of one stream on this node: one ordered consumer of every
// event, whose dispatcher hands them to the node's feeds by user.
type sharedFeed struct {
	epoch uint64
	d     *fanout.Dispatcher
	// stop ends its consumer and its feeds with the cause: its stream was recreated, and the
	// consumer would carry on in the new stream under the old epoch.
	stop context.CancelCauseFunc
	// run reads the consumer into the dispatcher until stopped; it starts once the shared feed
	// is listed, so that whatever stops it finds it there.
	run func()
}

// sharedFeeds holds the running shared feed of each stream, and the starts in flight, so that
// a stream's shared feed starts once while no lock is held across its JetStream calls.
type sharedFeeds struct {
	mu       sync.Mutex
	feeds    map[string]*sharedFeed
	starting map[string]chan struct{} // closed when the start in flight ends
}

// running returns the stream's running shared feed, or nil.
func (s *sharedFeeds) running(name string) *sharedFeed {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.feeds[name]
}

// claim returns the stream's running shared feed; or, while another caller starts it, a
// channel closed when that start ends; or neither, and the caller starts it and then calls
// started.
func (s *sharedFeeds) claim(name string) (*sharedFeed, chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sf := s.feeds[name]; sf != nil {
		return sf, nil
	}
	if wait := s.starting[name]; wait != nil {
		return nil, wait
	}
	s.starting[name] = make(chan struct{})
	return nil, nil
}

// started ends the claimed start of the stream's shared feed: sf runs, unless it is nil.
func (s *sharedFeeds) started(name string, sf *sharedFeed) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sf != nil {
		s.feeds[name] = sf
	}
	close(s.starting[name])
	delete(s.starting, name)
}

// remove forgets sf, unless another shared feed replaced it already.
func (s *sharedFeeds) remove(name string, sf *sharedFeed) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.feeds[name] != sf {
		return false
	}
	delete(s.feeds, name)
	return true
}

// sharedFeed returns the stream's shared feed, starting it on first use.
func (b *Bus) sharedFeed(ctx context.Context, name string, epoch uint64) (*sharedFeed, error) {
	for {
		sf, wait := b.shared.claim(name)
		if sf != nil {
			return sf, nil
		}
		if wait == nil {
			break
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	sf, err := b.startShared(ctx, name, epoch)
	b.shared.started(name, sf)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	stale := b.staleEpoch(name, epoch) // recreated before it was listed, unseen by streamRecreated
	b.mu.Unlock()
	if stale {
		sf.stop(fmt.Errorf("%w: %s", ErrStreamRecreated, name))
	}
	b.wg.Go(sf.run)
	return sf, nil
}

// startShared creates the stream's shared consumer, from the next event stored on, and the
// dispatcher its run goroutine feeds until the bus closes, the consumer fails or the stream is
// recreated.
func (b *Bus) startShared(ctx context.Context, name string, epoch uint64) (*sharedFeed, error) {
	s, err := b.js.Stream(ctx, name)
	if err != nil {
		return nil, b.wrap("stream "+name, err)
	}
	info := s.CachedInfo()
	if uint64(info.Created.UnixNano()) != epoch { // recreated since the caller looked
		return nil, fmt.Errorf("%w: %s", ErrStreamRecreated, name)
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       newFrom(info),
		InactiveThreshold: b.cfg.InactiveThreshold,
		MaxResetAttempts:  maxResets,
		NamePrefix:        SharedConsumerPrefix + nuid.Next(),
	})
	if err != nil {
		return nil, b.wrap("shared consumer on "+name, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(1024), jetstream.PullHeartbeat(quickHeartbeat))
	if err != nil {
		b.deleteConsumer(ctx, name, cons)
		return nil, b.wrap("shared consumer on "+name, err)
	}
	channel, _ := routing.Follows(name) // a stream of routing.Streams
	sf := &sharedFeed{epoch: epoch, d: fanout.NewDispatcher(fanout.Config{
		Limit:     b.cfg.Queue,
		ReadAhead: b.cfg.ReadAhead,
		After:     info.State.LastSeq,
		Prepare:   compactEvent,
		Skipped:   func(error) { b.cfg.Metrics.Skipped(channel, SkipBadSubject) },
		Go:        b.wg.Go,
	})}
	run, stop := context.WithCancelCause(b.bg)
	sf.stop = stop
	sf.run = func() {
		err := sf.d.Run(run, sharedSource{it: it, epoch: epoch})
		b.retireShared(run, name, sf, err)
		it.Stop()
		b.deleteConsumer(run, name, cons)
		stop(nil)
	}
	return sf, nil
}

// retireShared ends the feeds of a shared feed that stopped: its consumer failed (err), its
// stream was recreated, or the bus is closing.
func (b *Bus) retireShared(run context.Context, name string, sf *sharedFeed, err error) {
	switch cause := context.Cause(run); {
	case err != nil:
		b.log.Warn("shared consumer failed", "stream", name, "err", err)
		err = fmt.Errorf("%w: shared consumer: %v", ErrUnavailable, err)
	case errors.Is(cause, ErrStreamRecreated):
		err = cause
	default:
		err = fmt.Errorf("%w: shared consumer: shutting down", ErrUnavailable)
	}
	b.shared.remove(name, sf)
	sf.d.Retire(err)
}

// joinShared puts a feed on its stream's shared feed: live, or catching up first on a
// consumer of its own from where o starts.
func (b *Bus) joinShared(ctx context.Context, name string, o opening, want fanout.Want, filters []string) (*fanout.Sub, error) {
	sf, err := b.sharedFeed(ctx, name, o.epoch)
	if err != nil {
		return nil, err
	}
	if o.start.live {
		return sf.d.Join(ctx, want), nil
	}
	return sf.d.JoinAt(ctx, want, func(ctx context.Context) (fanout.Reader, error) {
		return b.openReader(ctx, o.stream, o.start.config(filters, b.cfg.InactiveThreshold), o.epoch, o.start.skipUntil)
	})
}

// sharedSource is a shared feed's consumer as the dispatcher reads it.
type sharedSource struct {
	it    jetstream.MessagesContext
	epoch uint64
}

// Next returns the consumer's next event. An ordered consumer returns only errors it could not
// recover from.
func (s sharedSource) Next(ctx context.Context) (fanout.Stored, error) {
	for {
		msg, err := s.it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return fanout.Stored{}, err
		}
		meta, err := msg.Metadata()
		if err != nil {
			continue
		}
		return fanout.Stored{
			Event:   Event{Subject: msg.Subject(), Cursor: routing.Cursor{Seq: meta.Sequence.Stream, Epoch: s.epoch}, Data: msg.Data()},
			Pending: meta.NumPending,
		}, nil
	}
}

// compactEvent is ev with its data compacted (compact), checked once for all the connections
// of a shared feed.
func compactEvent(ev Event) Event {
	ev.Data, ev.Compact = compact(ev.Data)
	return ev
}

// compact returns data without insignificant whitespace, and whether it is JSON in valid
// UTF-8 (event.Compact); invalid data comes back as it is, for the connection to skip and
// count. Data that is compact already (the usual case) comes back without a copy.
func compact(data []byte) ([]byte, bool) {
	buf := compactBufs.Get().(*bytes.Buffer)
	defer compactBufs.Put(buf)
	buf.Reset()
	if err := event.Compact(buf, data); err != nil {
		return data, false
	}
	if buf.Len() == len(data) { // compacting only removes bytes: nothing was removed
		return data, true
	}
	return bytes.Clone(buf.Bytes()), true
}

var compactBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}
