package fanout

import (
	"context"
	"errors"
	"sync"
)

// keepQueue is the capacity a drained queue keeps; a larger one is given back, so a subscriber
// that once took a burst does not hold its memory while idle.
const keepQueue = 64

// errEnded stops a Reader's pump whose subscriber has ended.
var errEnded = errors.New("fanout: subscriber ended")

// queue holds a subscriber's events between what produces them (its Reader or the dispatcher)
// and the connection that takes them. It holds no memory while empty and grows only as far as
// its producers' limits. It never takes an event at or before the last it has had, which is what
// makes every handover free of duplicates.
type queue struct {
	mu     sync.Mutex
	events []Event
	last   uint64 // the last sequence it has had: queued, or passed over
	ended  bool
	err    error
	ready  chan struct{} // holds a token while events wait or the queue has ended
	room   chan struct{} // holds a token when a waiting put may try again
	notify func()        // called after ready is signalled; nil: none
}

func newQueue() *queue {
	return &queue{ready: make(chan struct{}, 1), room: make(chan struct{}, 1)}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// unlock releases q.mu and then, if wake, tells the connection that events wait or the queue
// has ended: its callback runs without the queue's lock.
func (q *queue) unlock(wake bool) {
	fn := q.notify
	q.mu.Unlock()
	if wake {
		signal(q.ready)
		if fn != nil {
			fn()
		}
	}
}

// appendLocked queues ev unless it is at or before the last event had, and reports whether the
// connection must be told: only when ev is the one event waiting. While others wait, it was told
// already, and the take that drains them takes ev too (or tells it again).
func (q *queue) appendLocked(ev Event) (wake bool) {
	if ev.Cursor.Seq <= q.last {
		return false
	}
	q.events = append(q.events, ev)
	q.last = ev.Cursor.Seq
	return len(q.events) == 1
}

// offer queues ev unless limit events are waiting already; it reports false then. An ended
// queue takes nothing and reports true.
func (q *queue) offer(ev Event, limit int) bool {
	q.mu.Lock()
	if q.ended {
		q.unlock(false)
		return true
	}
	if len(q.events) >= limit {
		q.unlock(false)
		return false
	}
	q.unlock(q.appendLocked(ev))
	return true
}

// put queues ev, waiting while limit events are waiting, until ctx ends or the queue ends.
func (q *queue) put(ctx context.Context, ev Event, limit int) error {
	for {
		q.mu.Lock()
		if q.ended {
			q.unlock(false)
			return errEnded
		}
		if len(q.events) < limit {
			q.unlock(q.appendLocked(ev))
			return nil
		}
		q.unlock(false)
		select {
		case <-q.room:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// handOver queues the events held for the subscriber that come after seen, the last sequence
// its Reader read: whatever the dispatcher sent at or before it, the subscriber has had.
func (q *queue) handOver(seen uint64, held []Event) {
	q.mu.Lock()
	q.last = max(q.last, seen)
	wake := false
	for _, ev := range held {
		wake = q.appendLocked(ev) || wake
	}
	q.unlock(wake)
}

// pass records that the subscriber has had every event up to seq, so that none of them is
// queued.
func (q *queue) pass(seq uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.last = max(q.last, seq)
}

// lastQueued returns the last sequence the subscriber has had.
func (q *queue) lastQueued() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.last
}

// end stops the queue with err, unless it has ended already. Events already queued can still
// be taken.
func (q *queue) end(err error) {
	q.mu.Lock()
	if q.ended {
		q.unlock(false)
		return
	}
	q.ended, q.err = true, err
	signal(q.room)
	q.unlock(true)
}

// take appends up to max waiting events to dst. more is false once the queue has ended and
// nothing is left.
func (q *queue) take(dst []Event, max int) (_ []Event, more bool) {
	q.mu.Lock()
	n := min(len(q.events), max)
	dst = append(dst, q.events[:n]...)
	rest := copy(q.events, q.events[n:])
	clear(q.events[rest:]) // drop the taken events' data
	q.events = q.events[:rest]
	if rest == 0 && cap(q.events) > keepQueue {
		q.events = nil
	}
	signal(q.room)
	more = rest > 0 || !q.ended
	q.unlock(rest > 0 || q.ended)
	return dst, more
}

// setNotify has fn called whenever ready is signalled from now on, and at once if events wait
// or the queue has ended.
func (q *queue) setNotify(fn func()) {
	q.mu.Lock()
	q.notify = fn
	q.unlock(len(q.events) > 0 || q.ended)
}

// len returns how many events wait.
func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.events)
}

// failure returns the error the queue ended with.
func (q *queue) failure() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.err
}
