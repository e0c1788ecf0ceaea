package fanout

import (
	"context"
	"errors"
	"sync"
)

// ErrClosed is what Next returns once a subscriber was closed or its context ended.
var ErrClosed = errors.New("fanout: subscriber closed")

// Sub is one subscriber's ordered flow of events: a bounded queue that its dispatcher or its
// Reader fills and its connection takes from. A live subscriber on a dispatcher has no goroutine
// and holds no memory beyond a small struct until events arrive.
type Sub struct {
	q         *queue
	want      Want
	readAhead int // events a Reader may queue before it waits for the connection
	d         *Dispatcher
	m         *member // its place on d; guarded by d.mu
	ctx       context.Context
	stop      context.CancelCauseFunc
	spawn     func(func())
	wg        sync.WaitGroup // its goroutine, while it has one
}

func newSub(ctx context.Context, d *Dispatcher, want Want) *Sub {
	s := &Sub{q: newQueue(), want: want, readAhead: d.cfg.ReadAhead, d: d, spawn: d.cfg.Go}
	s.init(ctx)
	return s
}

// init ties the subscriber's life to ctx: when ctx ends, the subscriber ends with no error,
// unless End gave it one first.
func (s *Sub) init(ctx context.Context) {
	s.ctx, s.stop = context.WithCancelCause(ctx)
	context.AfterFunc(s.ctx, func() { s.q.end(nil) })
}

// Follow returns a subscriber fed by r for its whole life, with no dispatcher: what r reads is
// queued, up to readAhead events before r waits for the connection. When r fails, the
// subscriber ends with its error. spawn starts its goroutine (nil: a plain go statement).
func Follow(ctx context.Context, r Reader, readAhead int, spawn func(func())) *Sub {
	if spawn == nil {
		spawn = func(fn func()) { go fn() }
	}
	s := &Sub{q: newQueue(), readAhead: readAhead, spawn: spawn}
	s.init(ctx)
	s.start(func(ctx context.Context) error {
		defer r.Close()
		_, err := s.pump(ctx, r, false)
		return err
	})
	return s
}

// start runs fn on a goroutine of the subscriber's. fn returns nil only when the subscriber
// goes on without it; an error ends the subscriber, unless its context ended, which ends it
// already.
func (s *Sub) start(fn func(ctx context.Context) error) {
	s.wg.Add(1)
	s.spawn(func() {
		defer s.wg.Done()
		if err := fn(s.ctx); err != nil && s.ctx.Err() == nil {
			s.q.end(err)
		}
	})
}

// catchUp reads the stored events with r until it has caught up, then goes live on the
// dispatcher as m. Without a Reader (nil r), and again whenever m fell behind meanwhile, it
// opens one from the last event queued.
func (s *Sub) catchUp(ctx context.Context, m *member, r Reader) error {
	for {
		if r == nil {
			var err error
			if r, err = s.want.Open(ctx, s.q.lastQueued()+1); err != nil {
				s.d.leave(s)
				return err
			}
		}
		seen, err := s.readUntilCaughtUp(ctx, r)
		r.Close()
		if err != nil {
			s.d.leave(s)
			return err
		}
		if s.d.goLive(m, seen) {
			return nil
		}
		m, r = s.d.hold(s), nil
	}
}

// readUntilCaughtUp queues what r reads until it has read an event with nothing pending after
// it, and returns that event's sequence.
func (s *Sub) readUntilCaughtUp(ctx context.Context, r Reader) (seen uint64, err error) {
	if after, ok := r.Empty(); ok {
		return after, nil
	}
	seen, err = s.pump(ctx, r, true)
	if errors.Is(err, errCaughtUp) {
		return seen, nil
	}
	return seen, err
}

// pump queues what r reads until ctx ends, the subscriber ends or r fails, or, with
// untilCaughtUp, until it has read an event with nothing pending after it (errCaughtUp). It
// returns the sequence of the last event read.
func (s *Sub) pump(ctx context.Context, r Reader, untilCaughtUp bool) (seen uint64, err error) {
	for {
		st, err := r.Next(ctx)
		if err != nil {
			return seen, err
		}
		seen = st.Cursor.Seq
		if !st.Pass {
			if err := s.q.put(ctx, st.Event, s.readAhead); err != nil {
				return seen, err
			}
		}
		if untilCaughtUp && st.Pending == 0 {
			return seen, errCaughtUp
		}
	}
}

// rejoin catches up again after the dispatcher dropped the live subscriber for falling
// behind, from the last event queued. The dispatcher calls it with its lock held.
func (s *Sub) rejoin() {
	if s.ctx.Err() != nil {
		return
	}
	m := &member{sub: s}
	s.d.add(m)
	s.start(func(ctx context.Context) error { return s.catchUp(ctx, m, nil) })
}

// Ready receives when events wait or the subscriber has ended.
func (s *Sub) Ready() <-chan struct{} { return s.q.ready }

// Take appends up to max waiting events to dst, in stream order. more is false once the
// subscriber has ended and every event has been taken; Err then says why.
func (s *Sub) Take(dst []Event, max int) (_ []Event, more bool) { return s.q.take(dst, max) }

// Notify has fn called whenever Ready would receive from then on (events wait, or the
// subscriber has ended), and at once if that is so already: a connection can follow many
// subscribers without a goroutine waiting on each. fn may run with the dispatcher's lock held:
// it must return quickly and must not call into this package.
func (s *Sub) Notify(fn func()) { s.q.setNotify(fn) }

// Next waits for the next event, for as long as ctx allows. Once the subscriber has ended it
// returns Err, or ErrClosed if it was closed or its context ended.
func (s *Sub) Next(ctx context.Context) (Event, error) {
	var one [1]Event
	for {
		evs, more := s.Take(one[:0], 1)
		if len(evs) == 1 {
			return evs[0], nil
		}
		if !more {
			if err := s.Err(); err != nil {
				return Event{}, err
			}
			return Event{}, ErrClosed
		}
		select {
		case <-s.Ready():
		case <-ctx.Done():
			return Event{}, ctx.Err()
		}
	}
}

// Len returns how many events wait to be taken.
func (s *Sub) Len() int { return s.q.len() }

// Err returns the error that ended the subscriber, or nil if it was closed or its context
// ended.
func (s *Sub) Err() error { return s.q.failure() }

// End ends the subscriber with err, unless it has ended already; the events queued can still
// be taken.
func (s *Sub) End(err error) {
	s.q.end(err)
	s.stop(err)
}

// Close ends the subscriber, takes it off its dispatcher and waits for its goroutine. It is
// safe to call more than once.
func (s *Sub) Close() {
	s.stop(nil)
	if s.d != nil {
		s.d.leave(s)
	}
	s.wg.Wait()
}
