package bus

import (
	"context"
	"errors"
	"sync"
)

// keepQueue is the capacity a drained queue keeps; a larger one is given back, so a
// connection that once took a burst does not hold its memory while idle.
const keepQueue = 64

// errEnded stops a producer whose feed has ended.
var errEnded = errors.New("bus: feed ended")

// queue holds a feed's events between what produces them (its catch-up consumer or the shared
// feed) and the connection that sends them. It holds no memory while empty and grows only as
// far as its producers' limits.
type queue struct {
	mu     sync.Mutex
	events []Event
	last   uint64 // the last sequence the feed has had: queued, or passed over by its filter
	ended  bool
	err    error
	ready  chan struct{} // holds a token while events wait or the queue has ended
	room   chan struct{} // holds a token when a waiting put may try again
	notify func()        // called with mu held whenever ready is signalled; nil: none
}

func newQueue() *queue {
	return &queue{ready: make(chan struct{}, 1), room: make(chan struct{}, 1)}
}

// wake tells the consumer that events wait or the queue has ended.
func (q *queue) wake() {
	signal(q.ready)
	if q.notify != nil {
		q.notify()
	}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// appendLocked queues ev unless it is at or before the last event queued.
func (q *queue) appendLocked(ev Event) {
	if ev.Cursor.Seq <= q.last {
		return
	}
	q.events = append(q.events, ev)
	q.last = ev.Cursor.Seq
	q.wake()
}

// offer queues ev unless limit events are waiting already; it reports false then. An ended
// queue takes nothing and reports true.
func (q *queue) offer(ev Event, limit int) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.ended {
		return true
	}
	if len(q.events) >= limit {
		return false
	}
	q.appendLocked(ev)
	return true
}

// put queues ev, waiting while limit events are waiting, until ctx ends or the queue ends.
func (q *queue) put(ctx context.Context, ev Event, limit int) error {
	for {
		q.mu.Lock()
		if q.ended {
			q.mu.Unlock()
			return errEnded
		}
		if len(q.events) < limit {
			q.appendLocked(ev)
			q.mu.Unlock()
			return nil
		}
		q.mu.Unlock()
		select {
		case <-q.room:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// pass records that the feed has had every event up to seq, so that none of them is queued.
func (q *queue) pass(seq uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.last = max(q.last, seq)
}

// lastQueued returns the last sequence the feed has had.
func (q *queue) lastQueued() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.last
}

// end stops the queue with err, unless it has ended already. Events already queued can still
// be taken.
func (q *queue) end(err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.ended {
		return
	}
	q.ended, q.err = true, err
	q.wake()
	signal(q.room)
}

// take appends up to max waiting events to dst. more is false once the queue has ended and
// nothing is left.
func (q *queue) take(dst []Event, max int) (_ []Event, more bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := min(len(q.events), max)
	dst = append(dst, q.events[:n]...)
	rest := copy(q.events, q.events[n:])
	clear(q.events[rest:]) // drop the taken events' data
	q.events = q.events[:rest]
	if rest == 0 && cap(q.events) > keepQueue {
		q.events = nil
	}
	if rest > 0 || q.ended {
		q.wake()
	}
	signal(q.room)
	return dst, rest > 0 || !q.ended
}
