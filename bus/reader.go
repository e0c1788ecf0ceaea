package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsd/eventsd/contexts"
	"github.com/eventsd/eventsd/fanout"
	"github.com/eventsd/eventsd/routing"
)

// consumerReader reads a feed's events from an ordered consumer of its own, which it deletes
// when closed: a fanout.Reader.
type consumerReader struct {
	b       *Bus
	stream  string
	channel routing.Channel // the channel its stream serves, for counting what it skips
	epoch   uint64
	cons    jetstream.Consumer
	it      jetstream.MessagesContext
	// skipUntil: up to this sequence only the events that can change a contexts view are for
	// the feed.
	skipUntil uint64
}

// openReader creates a feed's ordered consumer on s and starts pulling from it.
func (b *Bus) openReader(ctx context.Context, s jetstream.Stream, cfg jetstream.OrderedConsumerConfig, epoch, skipUntil uint64) (fanout.Reader, error) {
	name := s.CachedInfo().Config.Name
	created := time.Now()
	cons, err := s.OrderedConsumer(ctx, cfg)
	if err != nil {
		return nil, b.wrap("consumer on "+name, err)
	}
	it, err := cons.Messages(b.pullOpts()...)
	if err != nil {
		b.deleteConsumer(ctx, name, cons)
		return nil, b.wrap("consumer on "+name, err)
	}
	b.cfg.Metrics.ConsumerCreated(time.Since(created))
	channel, _ := routing.Follows(name) // a stream of routing.Streams
	return &consumerReader{b: b, stream: name, channel: channel, epoch: epoch, cons: cons, it: it, skipUntil: skipUntil}, nil
}

// catchUpOpener opens the readers of a feed that fell behind the shared feed: of the filtered
// events of stream name, of epoch epoch, from a sequence on. Once the stream is of another
// epoch, the sequence means nothing there: the feed ends with ErrStreamRecreated, and its client
// resumes with the stream_recreated notice.
func (b *Bus) catchUpOpener(name string, filters []string, epoch uint64) fanout.Opener {
	return func(ctx context.Context, from uint64) (fanout.Reader, error) {
		return b.catchUpReader(ctx, name, filters, epoch, from)
	}
}

// catchUpReader opens a reader for catchUpOpener.
func (b *Bus) catchUpReader(ctx context.Context, name string, filters []string, epoch, from uint64) (fanout.Reader, error) {
	s, err := b.js.Stream(ctx, name)
	if err != nil {
		return nil, b.wrap("stream "+name, err)
	}
	if uint64(s.CachedInfo().Created.UnixNano()) != epoch {
		return nil, fmt.Errorf("%w: %s", ErrStreamRecreated, name)
	}
	select {
	case b.creating <- struct{}{}:
		defer func() { <-b.creating }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return b.openReader(ctx, s, jetstream.OrderedConsumerConfig{
		FilterSubjects: filters, DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: from,
		InactiveThreshold: b.cfg.InactiveThreshold,
		MaxResetAttempts:  maxResets,
	}, epoch, 0)
}

// pullOpts sets how many events a connection's consumer may hold in this process and how soon
// it notices that its server went away. A catch-up consumer on the shared path lives only until
// it has caught up, so it pulls in larger batches for replay speed and, like the shared feed,
// checks its server every quickHeartbeat. A consumer that lives as long as its connection reads
// ReadAhead events ahead and keeps the client's default heartbeat (5 s): a heartbeat a second
// for every connection would cost more than the wait it saves.
func (b *Bus) pullOpts() []jetstream.PullMessagesOpt {
	if b.cfg.Delivery == DeliveryShared {
		return []jetstream.PullMessagesOpt{jetstream.PullMaxMessages(512), jetstream.PullHeartbeat(quickHeartbeat)}
	}
	return []jetstream.PullMessagesOpt{jetstream.PullMaxMessages(b.cfg.ReadAhead)}
}

// Empty reports whether the consumer had nothing to deliver when it was created, and then the
// sequence it starts after.
func (r *consumerReader) Empty() (after uint64, ok bool) {
	info := r.cons.CachedInfo()
	if info == nil || info.NumPending > 0 {
		return 0, false
	}
	return info.Delivered.Stream, true
}

// Next returns the consumer's next event. Events that are not for the feed are marked Pass: a
// subject that names no user (counted), or history before a snapshot.
func (r *consumerReader) Next(ctx context.Context) (fanout.Stored, error) {
	msg, err := r.it.Next(jetstream.NextContext(ctx))
	if err != nil {
		if ctx.Err() != nil {
			return fanout.Stored{}, ctx.Err()
		}
		return fanout.Stored{}, fmt.Errorf("%w: consumer: %v", ErrUnavailable, err)
	}
	meta, err := msg.Metadata()
	if err != nil {
		return fanout.Stored{}, fmt.Errorf("bus: consumer: %w", err)
	}
	seq := meta.Sequence.Stream
	st := fanout.Stored{
		Event:   Event{Subject: msg.Subject(), Cursor: routing.Cursor{Seq: seq, Epoch: r.epoch}, Data: msg.Data()},
		Pending: meta.NumPending,
	}
	if _, err := routing.ParseSubject(msg.Subject()); err != nil {
		r.b.cfg.Metrics.Skipped(r.channel, SkipBadSubject)
		st.Pass = true
	} else if seq <= r.skipUntil && !contexts.Relevant(msg.Subject()) {
		st.Pass = true
	}
	return st, nil
}

// Close stops pulling and deletes the consumer.
func (r *consumerReader) Close() {
	r.it.Stop()
	r.b.deleteConsumer(context.Background(), r.stream, r.cons)
}

// deleteConsumer removes a consumer at once rather than waiting for the inactivity threshold.
// Whoever used it may be gone already (ctx done), so it waits on a context of its own.
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
