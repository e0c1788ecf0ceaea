package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsd/eventsd/bus"
)

// natsTimeout bounds each NATS connect and JetStream API call of the benchmark, as bus's
// default does for eventsd's.
const natsTimeout = 5 * time.Second

// NATS is the benchmark's own connection to the plane's NATS server: it publishes the load and
// runs the plain NATS reference beside eventsd, which it does not share a connection with.
type NATS struct {
	nc  *nats.Conn
	js  jetstream.JetStream
	cfg bus.Config // for the connection each plain subscriber opens
}

// ConnectNATS connects to the NATS server cfg names, with its credentials; only URL, Name and
// Auth are read. It fails if no server answers before ctx is done.
func ConnectNATS(ctx context.Context, cfg bus.Config) (*NATS, error) {
	if cfg.URL == "" {
		return nil, fmt.Errorf("%w: no URL", bus.ErrUnavailable)
	}
	if cfg.Name == "" {
		cfg.Name = "eventsd-bench"
	}
	opts, err := cfg.Auth.Options()
	if err != nil {
		return nil, err
	}
	opts = append(opts, nats.Name(cfg.Name))
	if deadline, ok := ctx.Deadline(); ok {
		opts = append(opts, nats.Timeout(time.Until(deadline)))
	}
	nc, err := nats.Connect(cfg.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: connect %s: %v", bus.ErrUnavailable, bus.RedactURL(cfg.URL), err)
	}
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(natsTimeout))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("bench: jetstream: %w", err)
	}
	return &NATS{nc: nc, js: js, cfg: cfg}, nil
}

// Close closes the connection.
func (n *NATS) Close() { n.nc.Close() }

// publish stores one event and returns its stream sequence.
func (n *NATS) publish(ctx context.Context, subject string, data []byte) (uint64, error) {
	ack, err := n.js.Publish(ctx, subject, data)
	if err != nil {
		return 0, fmt.Errorf("bench: publish %s: %w", subject, err)
	}
	return ack.Sequence, nil
}

// publishAsync stores one event without waiting for the acknowledgement, which the returned
// future carries; waitPublished waits for all of them.
func (n *NATS) publishAsync(subject string, data []byte) (jetstream.PubAckFuture, error) {
	f, err := n.js.PublishAsync(subject, data)
	if err != nil {
		return nil, fmt.Errorf("bench: publish %s: %w", subject, err)
	}
	return f, nil
}

// waitPublished waits until every publishAsync is acknowledged.
func (n *NATS) waitPublished(ctx context.Context) error {
	select {
	case <-n.js.PublishAsyncComplete():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// corePublish sends data on subject with plain NATS: nothing stores it.
func (n *NATS) corePublish(subject string, data []byte) error {
	return n.nc.Publish(subject, data)
}

// coreSubscribe calls fn for every plain NATS message on subject until the returned stop. The
// subscriber has a NATS connection of its own, as every SSE client has its own TCP connection.
func (n *NATS) coreSubscribe(subject string, fn func(data []byte)) (stop func(), err error) {
	opts, err := n.cfg.Auth.Options()
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(n.cfg.URL, append(opts, nats.Name(n.cfg.Name), nats.Timeout(natsTimeout))...)
	if err != nil {
		return nil, fmt.Errorf("%w: connect %s: %v", bus.ErrUnavailable, bus.RedactURL(n.cfg.URL), err)
	}
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) { fn(m.Data) })
	if err == nil {
		_ = sub.SetPendingLimits(-1, -1)
		err = nc.Flush()
	}
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("bench: subscribe %s: %w", subject, err)
	}
	return nc.Close, nil
}

// readStored reads n stored events on subject of stream, from sequence from on, with a plain
// ordered consumer pulling as eventsd's shared feed does, and deletes it: what a replay costs
// without eventsd.
func (n *NATS) readStored(ctx context.Context, stream, subject string, from uint64, count int) error {
	s, err := n.js.Stream(ctx, stream)
	if err != nil {
		return fmt.Errorf("bench: stream %s: %w", stream, err)
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subject}, DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: from,
		InactiveThreshold: 10 * time.Second,
	})
	if err != nil {
		return fmt.Errorf("bench: consumer on %s: %w", stream, err)
	}
	defer n.deleteConsumer(ctx, stream, cons)
	it, err := cons.Messages(jetstream.PullMaxMessages(512), jetstream.PullHeartbeat(time.Second))
	if err != nil {
		return fmt.Errorf("bench: consumer on %s: %w", stream, err)
	}
	defer it.Stop()
	for range count {
		if _, err := it.Next(jetstream.NextContext(ctx)); err != nil {
			return fmt.Errorf("bench: read %s: %w", subject, err)
		}
	}
	return nil
}

// deleteConsumer deletes a consumer readStored made, with a context of its own: ctx may be
// done. A consumer it cannot delete goes after its inactivity threshold.
func (n *NATS) deleteConsumer(ctx context.Context, stream string, cons jetstream.Consumer) {
	info := cons.CachedInfo()
	if info == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), natsTimeout)
	defer cancel()
	_ = n.js.DeleteConsumer(ctx, stream, info.Name)
}

// consumerNames lists the names of a stream's consumers.
func (n *NATS) consumerNames(ctx context.Context, stream string) ([]string, error) {
	s, err := n.js.Stream(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("bench: stream %s: %w", stream, err)
	}
	lister := s.ConsumerNames(ctx)
	var names []string
	for name := range lister.Name() {
		names = append(names, name)
	}
	if err := lister.Err(); err != nil {
		return nil, fmt.Errorf("bench: consumers of %s: %w", stream, err)
	}
	return names, nil
}
