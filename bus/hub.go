package bus

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/eventsd/eventsd/event"
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

// HubConsumerPrefix starts the name of every shared-feed consumer.
const HubConsumerPrefix = "hub-"

// maxResets bounds how often an ordered consumer recreates itself in a row before its iterator
// fails; unbounded, a consumer whose server is gone would retry for ever and hold up Close.
const maxResets = 5

// quickHeartbeat is how often the server of the shared feed's consumer shows it is alive while
// there is nothing to deliver. After two missed beats the ordered consumer recreates itself from
// its last event, on a server that is up: the shared feed stalls for about 2 s, not the
// client's default 10 s, when the NATS node holding its consumer goes away.
const quickHeartbeat = time.Second

// hub is the shared feed of one stream on this node.
type hub struct {
	epoch   uint64
	channel routing.Channel // the channel its stream serves, for counting what it skips
	metrics Metrics
	limit   int // events queued or held for one feed before it is dropped to catch up again
	mu      sync.Mutex
	subs    map[string][]*hubSub // by user token; "*" for all-users subscriptions
	dead    bool                 // its consumer stopped: its feeds end, a new hub replaces it
	// head is the stream's last sequence as the hub last heard it: what a feed that joins live
	// now does not get, even from a hub still behind after its consumer was recreated.
	head uint64
	// stop ends its consumer and its feeds with the cause: its stream was recreated, and the
	// consumer would carry on in the new stream under the old epoch.
	stop context.CancelCauseFunc
}

// hubSub is one feed's place on a hub.
type hubSub struct {
	token string
	types []string // empty: every type
	feed  *Feed
	// Until its feed has caught up, the hub holds the events for it in held; once it is live,
	// they go straight to the feed's queue. Guarded by hub.mu.
	held   []Event
	live   bool
	behind bool // dropped while catching up, for holding more than limit events
}

// liveHub returns the stream's running hub, or nil.
func (b *Bus) liveHub(stream string) *hub {
	b.hubsMu.Lock()
	defer b.hubsMu.Unlock()
	return b.hubs[stream]
}

// hubFor returns the stream's hub, starting it on first use.
func (b *Bus) hubFor(ctx context.Context, stream string, epoch uint64) (*hub, error) {
	b.hubsMu.Lock()
	defer b.hubsMu.Unlock()
	if h := b.hubs[stream]; h != nil {
		return h, nil
	}
	channel, err := routing.Follows(stream)
	if err != nil {
		return nil, err
	}
	s, err := b.js.Stream(ctx, stream)
	if err != nil {
		return nil, b.wrap("stream "+stream, err)
	}
	if uint64(s.CachedInfo().Created.UnixNano()) != epoch { // recreated since the caller looked
		return nil, fmt.Errorf("%w: %s", ErrStreamRecreated, stream)
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       newFrom(s.CachedInfo()),
		InactiveThreshold: b.cfg.InactiveThreshold,
		MaxResetAttempts:  maxResets,
		NamePrefix:        HubConsumerPrefix + nuid.Next(),
	})
	if err != nil {
		return nil, b.wrap("shared consumer on "+stream, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(1024), jetstream.PullHeartbeat(quickHeartbeat))
	if err != nil {
		return nil, b.wrap("shared consumer on "+stream, err)
	}
	h := &hub{epoch: epoch, channel: channel, metrics: b.cfg.Metrics, limit: b.cfg.Queue, subs: map[string][]*hubSub{}}
	hctx, stop := context.WithCancelCause(b.bg)
	h.stop = stop
	b.hubs[stream] = h
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		defer b.deleteConsumer(b.bg, stream, cons)
		defer it.Stop()
		defer stop(nil)
		err := h.run(hctx, it)
		switch {
		case err != nil:
			b.log.Warn("shared consumer failed", "stream", stream, "err", err)
		case errors.Is(context.Cause(hctx), ErrUnavailable):
			err = context.Cause(hctx) // stopped: its stream was recreated
		default:
			err = errors.New("shutting down")
		}
		b.hubsMu.Lock()
		if b.hubs[stream] == h {
			delete(b.hubs, stream)
		}
		b.hubsMu.Unlock()
		if !errors.Is(err, ErrStreamRecreated) {
			err = fmt.Errorf("%w: shared consumer: %v", ErrUnavailable, err)
		}
		h.retire(err)
	}()
	return h, nil
}

// run dispatches the stream's events until ctx ends or the consumer fails (an ordered
// consumer returns only errors it could not recover from).
func (h *hub) run(ctx context.Context, it jetstream.MessagesContext) error {
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		meta, err := msg.Metadata()
		if err != nil {
			continue
		}
		h.dispatch(msg.Subject(), msg.Data(), meta.Sequence.Stream, meta.NumPending)
	}
}

// dispatch hands event seq to its user's feeds; pending more events are stored after it. An
// event whose subject names no user reaches no one and is counted.
func (h *hub) dispatch(subject string, data []byte, seq, pending uint64) {
	subj, err := routing.ParseSubject(subject)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.head = max(h.head, seq+pending)
	if err != nil {
		h.metrics.Skipped(h.channel, SkipBadSubject)
		return
	}
	mine, all := h.subs[subj.Token], h.subs["*"]
	if len(mine)+len(all) == 0 {
		return
	}
	ev := Event{Subject: subject, Cursor: routing.Cursor{Seq: seq, Epoch: h.epoch}}
	ev.Data, ev.Compact = compact(data)
	h.send(mine, ev, subj.Type)
	h.send(all, ev, subj.Type)
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

func (h *hub) send(subs []*hubSub, ev Event, typ string) {
	var dropped []*hubSub
	for _, s := range subs {
		if len(s.types) > 0 && !slices.Contains(s.types, typ) {
			continue
		}
		switch {
		case s.live && s.feed.q.offer(ev, h.limit):
		case !s.live && len(s.held) < h.limit:
			s.held = append(s.held, ev)
		default: // too far behind: it catches up again rather than buffer without bound
			dropped = append(dropped, s)
		}
	}
	for _, s := range dropped {
		h.remove(s)
		if s.live {
			s.feed.rejoin(s)
		} else {
			s.behind, s.held = true, nil
		}
	}
}

// retire ends every feed on a hub whose consumer stopped.
func (h *hub) retire(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.dead = true
	for _, subs := range h.subs {
		for _, s := range subs {
			s.feed.q.end(err)
		}
	}
	h.subs = map[string][]*hubSub{}
}

// add puts s on the hub; the caller holds h.mu. A feed joining a retired hub ends at once.
func (h *hub) add(s *hubSub) {
	s.feed.sub = s
	if h.dead {
		s.feed.q.end(fmt.Errorf("%w: shared consumer stopped", ErrUnavailable))
		return
	}
	h.subs[s.token] = append(h.subs[s.token], s)
}

// goLive hands the events held for s after seen to its feed and from then on queues the
// hub's events after seen for it directly. It reports false if the hub dropped s meanwhile.
func (h *hub) goLive(s *hubSub, seen uint64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s.behind {
		return false
	}
	// The hub may be behind the catch-up consumer (its own consumer was being recreated, say):
	// whatever it sends at or before seen, the feed has had already.
	q := s.feed.q
	q.pass(seen)
	q.mu.Lock()
	for _, ev := range s.held {
		q.appendLocked(ev)
	}
	q.mu.Unlock()
	s.held, s.live = nil, true
	return true
}

// unregister removes s; the hub sends nothing to it afterwards.
func (h *hub) unregister(s *hubSub) {
	h.mu.Lock()
	h.remove(s)
	h.mu.Unlock()
}

// leave takes feed f off the hub, wherever it is.
func (h *hub) leave(f *Feed) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if f.sub != nil {
		h.remove(f.sub)
	}
}

func (h *hub) remove(s *hubSub) {
	subs := h.subs[s.token]
	i := slices.Index(subs, s)
	if i < 0 {
		return
	}
	subs = slices.Delete(subs, i, i+1)
	if len(subs) == 0 {
		delete(h.subs, s.token)
	} else {
		h.subs[s.token] = subs
	}
}
