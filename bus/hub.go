package bus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

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

// ErrBehind ends a feed whose client fell so far behind that its queue filled; the client
// resumes by cursor.
var ErrBehind = errors.New("bus: client fell behind")

// maxResets bounds how often an ordered consumer recreates itself in a row before its iterator
// fails; unbounded, a consumer whose server is gone would retry for ever and hold up Close.
const maxResets = 5

// hub is the shared feed of one stream on this node.
type hub struct {
	epoch uint64
	mu    sync.Mutex
	subs  map[string][]*hubSub // by user token; "*" for all-users subscriptions
	dead  bool                 // its consumer failed: its subscriptions end, a new hub replaces it
}

// hubSub is one connection's place on a hub.
type hubSub struct {
	token string
	types []string // empty: every type
	q     chan Event
	cut   chan struct{} // closed when the hub dropped it for falling behind
}

// hubFor returns the stream's hub, starting it on first use.
func (b *Bus) hubFor(ctx context.Context, stream string, epoch uint64) (*hub, error) {
	b.hubsMu.Lock()
	defer b.hubsMu.Unlock()
	if h := b.hubs[stream]; h != nil {
		return h, nil
	}
	s, err := b.js.Stream(ctx, stream)
	if err != nil {
		return nil, b.wrap("stream "+stream, err)
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy:     jetstream.DeliverNewPolicy,
		InactiveThreshold: b.cfg.InactiveThreshold,
		MaxResetAttempts:  maxResets,
		NamePrefix:        HubConsumerPrefix + nuid.Next(),
	})
	if err != nil {
		return nil, b.wrap("shared consumer on "+stream, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(1024))
	if err != nil {
		return nil, b.wrap("shared consumer on "+stream, err)
	}
	h := &hub{epoch: epoch, subs: map[string][]*hubSub{}}
	b.hubs[stream] = h
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		defer b.deleteConsumer(b.bg, stream, cons)
		defer it.Stop()
		if err := h.run(b.bg, it); err != nil {
			b.log.Warn("shared consumer failed", "stream", stream, "err", err)
			b.hubsMu.Lock()
			if b.hubs[stream] == h {
				delete(b.hubs, stream)
			}
			b.hubsMu.Unlock()
			h.retire()
		}
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
		h.dispatch(msg.Subject(), msg.Data(), meta.Sequence.Stream)
	}
}

// tokenAndType splits "<...>.<user token>.<TYPE>".
func tokenAndType(subject string) (string, string) {
	i := strings.LastIndexByte(subject, '.')
	if i < 0 {
		return "", ""
	}
	j := strings.LastIndexByte(subject[:i], '.')
	return subject[j+1 : i], subject[i+1:]
}

func (h *hub) dispatch(subject string, data []byte, seq uint64) {
	tok, typ := tokenAndType(subject)
	h.mu.Lock()
	defer h.mu.Unlock()
	mine, all := h.subs[tok], h.subs["*"]
	if len(mine)+len(all) == 0 {
		return
	}
	ev := Event{Subject: subject, Cursor: routing.Cursor{Seq: seq, Epoch: h.epoch}}
	ev.Data, ev.Compact = compact(data)
	h.send(mine, ev, typ)
	h.send(all, ev, typ)
}

// compact returns data without insignificant whitespace, and whether it is valid JSON; invalid
// data comes back as it is, for the connection to skip and count.
func compact(data []byte) ([]byte, bool) {
	var buf bytes.Buffer
	buf.Grow(len(data))
	if err := json.Compact(&buf, data); err != nil {
		return data, false
	}
	if bytes.Equal(buf.Bytes(), data) {
		return data, true
	}
	return buf.Bytes(), true
}

func (h *hub) send(subs []*hubSub, ev Event, typ string) {
	var full []*hubSub
	for _, s := range subs {
		if len(s.types) > 0 && !slices.Contains(s.types, typ) {
			continue
		}
		select {
		case s.q <- ev:
		default: // its queue is full: cut it off rather than buffer without bound
			full = append(full, s)
		}
	}
	for _, s := range full {
		h.remove(s)
		close(s.cut)
	}
}

// retire ends every subscription of a hub whose consumer failed.
func (h *hub) retire() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.dead = true
	for _, subs := range h.subs {
		for _, s := range subs {
			close(s.cut)
		}
	}
	h.subs = map[string][]*hubSub{}
}

// isDead reports whether the hub was retired.
func (h *hub) isDead() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.dead
}

// register adds a subscription; its events queue in a channel of size events.
func (h *hub) register(token string, types []string, size int) *hubSub {
	s := &hubSub{token: token, types: types, q: make(chan Event, size), cut: make(chan struct{})}
	h.mu.Lock()
	h.subs[token] = append(h.subs[token], s)
	h.mu.Unlock()
	return s
}

// unregister removes s; the hub sends nothing to it afterwards.
func (h *hub) unregister(s *hubSub) {
	h.mu.Lock()
	h.remove(s)
	h.mu.Unlock()
}

func (h *hub) remove(s *hubSub) {
	subs := h.subs[s.token]
	if i := slices.Index(subs, s); i >= 0 {
		subs = slices.Delete(subs, i, i+1)
	}
	if len(subs) == 0 {
		delete(h.subs, s.token)
	} else {
		h.subs[s.token] = subs
	}
}

// errCut reports why the hub dropped a subscription, or nil.
func (h *hub) errCut(s *hubSub) error {
	select {
	case <-s.cut:
		if h.isDead() {
			return fmt.Errorf("%w: shared consumer failed", ErrUnavailable)
		}
		return fmt.Errorf("%w: more than %d events queued", ErrBehind, cap(s.q))
	default:
		return nil
	}
}
