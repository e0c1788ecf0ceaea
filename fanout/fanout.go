// Package fanout hands one stream's events to the subscribers that want them, in order, once
// each. It knows nothing of NATS: the events come from a Source, and a subscriber that starts in
// the past reads them from a Reader until it has caught up.
//
// A Dispatcher serves one stream on this node. It reads the stream's Source and hands each event
// to the subscribers of its user token ("*": every user). A subscriber (Sub) is one connection's
// bounded queue: the dispatcher offers events to it, the connection takes them.
//
// # Words
//
//   - head: the stream's last sequence as the dispatcher last heard it from its Source. A
//     subscriber that joins live gets nothing at or before it.
//   - live: the dispatcher puts the subscriber's events straight into its queue.
//   - held: a subscriber catching up is not live yet; the dispatcher keeps the events it would
//     have queued in the member's held list, up to Limit, while the subscriber's own Reader
//     reads the stored events from where it started.
//   - caught up: the Reader returned an event with nothing pending after it (or had nothing to
//     read when it opened). Its last sequence is "seen".
//   - go live: the held events after seen move into the queue, the member becomes live. Events
//     at or before seen are dropped by the queue, which never takes a sequence at or before its
//     last: so the handover has no gap and no duplicate, even when the dispatcher is behind
//     the Reader.
//   - behind: a member that would pass Limit (held events, or queued events while live) is
//     dropped from the dispatcher; the subscriber catches up again with a new Reader from the
//     last sequence it queued, rather than buffering without bound.
//   - retired: the dispatcher's Source stopped. Every subscriber on it ends with the reason;
//     its clients resume by cursor, on a new dispatcher.
//
// # Locks and goroutines
//
// Dispatcher.mu guards its members (the map, each member's held list and live and behind
// flags), head and retired. queue.mu guards one queue. When both are taken, Dispatcher.mu comes
// first; no code holds a queue's lock while taking the dispatcher's. Nothing outside the
// package takes either. A Notify callback runs with no queue lock held, though possibly with the
// dispatcher's: it must return quickly and must not call back into the package.
//
// Run is the caller's goroutine. A subscriber that catches up, or that Follow feeds for its
// whole life, has one goroutine of its own, started with Config.Go (Follow's spawn); it ends
// when the
// subscriber has gone live, fails, or is closed, and Close waits for it.
package fanout

import (
	"context"
	"errors"
	"slices"
	"sync"

	"github.com/eventsd/eventsd/routing"
)

// Event is one stored event as a subscriber receives it.
type Event struct {
	Subject string
	Cursor  routing.Cursor
	Data    []byte
	// Compact is set when Data is known to be valid JSON without insignificant whitespace (a
	// dispatcher's Prepare checks each event once for all its subscribers); otherwise it is
	// unchecked.
	Compact bool
}

// Stored is an event as a Source or Reader yields it.
type Stored struct {
	Event
	// Pending is how many events the stream holds after this one for the reader.
	Pending uint64
	// Pass marks an event that is not for the subscriber (the Reader counted why): only its
	// sequence counts, as read.
	Pass bool
}

// Source yields a stream's events in order, for a dispatcher.
type Source interface {
	// Next returns the next event, waiting until ctx ends. An error stops the dispatcher.
	Next(ctx context.Context) (Stored, error)
}

// Reader reads one subscriber's stored events in order, from where it was opened.
type Reader interface {
	// Empty reports whether the reader knew when it opened that it has nothing to read, and
	// then the sequence it starts after.
	Empty() (after uint64, ok bool)
	// Next returns the next event, waiting until ctx ends.
	Next(ctx context.Context) (Stored, error)
	// Close releases the reader. It is called once, by the goroutine that read.
	Close()
}

// Opener opens a Reader of a subscriber's events from sequence from on.
type Opener func(ctx context.Context, from uint64) (Reader, error)

// Want is what a subscriber follows on a dispatcher.
type Want struct {
	Token string   // the user token, "*" for every user
	Types []string // only these event types; empty for all
	// Open opens a Reader from a sequence, for catching up again after falling behind.
	Open Opener
}

// AllUsers is the Want.Token of a subscriber to every user's events.
const AllUsers = "*"

// Config configures a Dispatcher.
type Config struct {
	// Limit is how many events may wait for one subscriber, queued or held, before it is
	// behind and catches up again. Required.
	Limit int
	// ReadAhead is how many events a subscriber's Reader may queue before it waits for the
	// connection to take them. Required.
	ReadAhead int
	// After is the sequence the Source starts after: the dispatcher's first head.
	After uint64
	// Prepare, if set, is called once for each event at least one subscriber gets, before any
	// gets it, and they get what it returns (its JSON checked once for all of them, say).
	Prepare func(Event) Event
	// Skipped, if set, is called for each event whose subject names no user
	// (routing.ParseSubject fails): no one gets it.
	Skipped func(err error)
	// Go starts a subscriber's goroutine; default a plain go statement. A caller that waits for
	// every goroutine it caused (on shutdown) passes its WaitGroup's Go.
	Go func(func())
}

// Dispatcher fans one stream's events out to its subscribers by user token.
type Dispatcher struct {
	cfg     Config
	mu      sync.Mutex
	members map[string][]*member // by user token; AllUsers for every user's
	head    uint64
	retired error // set once its Source stopped
}

// member is a subscriber's place on a dispatcher; its fields are guarded by Dispatcher.mu.
type member struct {
	sub    *Sub
	held   []Event
	live   bool
	behind bool
}

// NewDispatcher returns a dispatcher with no subscribers.
func NewDispatcher(cfg Config) *Dispatcher {
	if cfg.Go == nil {
		cfg.Go = func(fn func()) { go fn() }
	}
	return &Dispatcher{cfg: cfg, members: map[string][]*member{}, head: cfg.After}
}

// Run hands the events of src to the subscribers until ctx ends (it returns nil then) or src
// fails (it returns src's error). It does not retire the dispatcher: the caller does, with the
// reason its subscribers end with.
func (d *Dispatcher) Run(ctx context.Context, src Source) error {
	for {
		st, err := src.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		d.Dispatch(st)
	}
}

// Dispatch hands one event to its user's subscribers. Events must come in stream order.
func (d *Dispatcher) Dispatch(st Stored) {
	subj, err := routing.ParseSubject(st.Subject)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.head = max(d.head, st.Cursor.Seq+st.Pending)
	if err != nil {
		if d.cfg.Skipped != nil {
			d.cfg.Skipped(err)
		}
		return
	}
	mine, all := d.members[subj.Token], d.members[AllUsers]
	if len(mine)+len(all) == 0 {
		return
	}
	ev := st.Event
	if d.cfg.Prepare != nil {
		ev = d.cfg.Prepare(ev)
	}
	d.send(mine, ev, subj.Type)
	d.send(all, ev, subj.Type)
}

// send offers ev to the members that want its type; the caller holds d.mu.
func (d *Dispatcher) send(members []*member, ev Event, typ string) {
	var behind []*member
	for _, m := range members {
		if len(m.sub.want.Types) > 0 && !slices.Contains(m.sub.want.Types, typ) {
			continue
		}
		switch {
		case m.live && m.sub.q.offer(ev, d.cfg.Limit):
		case !m.live && len(m.held) < d.cfg.Limit:
			m.held = append(m.held, ev)
		default:
			behind = append(behind, m)
		}
	}
	for _, m := range behind {
		d.remove(m)
		if m.live {
			m.sub.rejoin()
		} else {
			m.behind, m.held = true, nil // its catch-up goes on, and starts again
		}
	}
}

// Retire ends every subscriber with err (its Source stopped); a subscriber that joins later
// ends at once.
func (d *Dispatcher) Retire(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.retired = err
	for _, ms := range d.members {
		for _, m := range ms {
			m.sub.q.end(err)
		}
	}
	d.members = map[string][]*member{}
}

// Join subscribes to want's events live: from the next event after head.
func (d *Dispatcher) Join(ctx context.Context, want Want) *Sub {
	s := newSub(ctx, d, want)
	d.mu.Lock()
	defer d.mu.Unlock()
	s.q.pass(d.head) // what was stored before it joined is not the subscriber's
	d.add(&member{sub: s, live: true})
	return s
}

// JoinAt subscribes to want's events from a point in the past: first opens the Reader of the
// stored events to catch up on. The dispatcher holds its new events from before first is
// called, so that none falls between the two; the subscriber goes live once the Reader has
// caught up. JoinAt returns when first has returned.
func (d *Dispatcher) JoinAt(ctx context.Context, want Want, first func(context.Context) (Reader, error)) (*Sub, error) {
	s := newSub(ctx, d, want)
	m := d.hold(s)
	r, err := first(ctx)
	if err != nil {
		s.Close()
		return nil, err
	}
	s.start(func(ctx context.Context) error { return s.catchUp(ctx, m, r) })
	return s, nil
}

// hold puts s on the dispatcher as a member catching up.
func (d *Dispatcher) hold(s *Sub) *member {
	m := &member{sub: s}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.add(m)
	return m
}

// add puts m on the dispatcher; the caller holds d.mu. On a retired dispatcher m's subscriber
// ends at once.
func (d *Dispatcher) add(m *member) {
	m.sub.m = m
	if d.retired != nil {
		m.sub.q.end(d.retired)
		return
	}
	tok := m.sub.want.Token
	d.members[tok] = append(d.members[tok], m)
}

// goLive hands the events held for m after seen to its subscriber's queue and makes m live.
// It reports false if m fell behind meanwhile.
func (d *Dispatcher) goLive(m *member, seen uint64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if m.behind {
		return false
	}
	m.sub.q.handOver(seen, m.held)
	m.held, m.live = nil, true
	return true
}

// leave takes s off the dispatcher, wherever it is.
func (d *Dispatcher) leave(s *Sub) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s.m != nil {
		d.remove(s.m)
	}
}

// remove takes m off the dispatcher; the caller holds d.mu.
func (d *Dispatcher) remove(m *member) {
	tok := m.sub.want.Token
	ms := d.members[tok]
	i := slices.Index(ms, m)
	if i < 0 {
		return
	}
	ms = slices.Delete(ms, i, i+1)
	if len(ms) == 0 {
		delete(d.members, tok)
	} else {
		d.members[tok] = ms
	}
}

// errCaughtUp stops a Reader's pump once it has nothing pending.
var errCaughtUp = errors.New("fanout: caught up")
