package sse

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventsd/eventsd/bus"
	"github.com/eventsd/eventsd/routing"
)

// A detached stream is served off net/http once its headers are out. net/http keeps a goroutine
// (with its stack), a second goroutine watching for the client leaving, and read and write
// buffers for as long as a handler runs: more than twice what eventsd needs for an idle stream.
// A detached stream has one small goroutine that notices the client leaving; a writer goroutine
// runs only while there is something to write (events, a heartbeat), woken by its feed.
type detached struct {
	h      *Handler
	conn   net.Conn
	feed   *bus.Feed
	cancel context.CancelFunc
	sub    routing.Subscription
	start  time.Time
	beat   *time.Timer
	sent   atomic.Int64

	mu      sync.Mutex
	writing bool // a writer goroutine runs; only it writes to conn and uses fw and batch
	again   bool // woken while writing: the writer looks again before it stops
	beatDue bool // the heartbeat timer fired
	closed  bool

	fw    frameWriter
	batch []bus.Event
}

// detach takes the connection over from net/http and serves the stream on it until it ends,
// then closes the feed and calls cancel. It fails, having done nothing, where net/http cannot
// hand the connection over.
func (h *Handler) detach(w http.ResponseWriter, feed *bus.Feed, sub routing.Subscription, start time.Time, cancel context.CancelFunc) error {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return err
	}
	// Whatever the client sent after its request is not read: a stream reads nothing.
	d := &detached{h: h, conn: conn, feed: feed, cancel: cancel, sub: sub, start: start,
		fw: frameWriter{maxEvent: h.cfg.MaxEvent}}
	hdr := w.Header()
	streamHeaders(hdr)
	hdr.Set("Connection", "close") // the body ends when the connection does
	d.fw.buf.WriteString("HTTP/1.1 200 OK\r\n")
	_ = hdr.Write(&d.fw.buf)
	d.fw.buf.WriteString("\r\n")
	err = h.openingFrames(&d.fw, feed, sub.Channel)
	if err == nil {
		err = d.send(d.fw.frames())
		d.fw.reset()
	}
	d.mu.Lock() // the timer's function takes it before anything reads d.beat
	d.beat = time.AfterFunc(h.cfg.Heartbeat, d.heartbeat)
	d.mu.Unlock()
	if err != nil {
		d.close("write", err)
		return nil
	}
	if !h.track(d) {
		d.close("shutdown", nil)
		return nil
	}
	feed.Notify(d.wake)
	return nil
}

// track lists d for Close and starts watching for its client leaving; false once the handler
// is closing. Under the lock that Close takes first, so that Close waits for the watcher.
func (h *Handler) track(d *detached) bool {
	h.detachedMu.Lock()
	defer h.detachedMu.Unlock()
	if h.closing {
		return false
	}
	h.detachedSet[d] = struct{}{}
	h.detachedWG.Go(d.watch)
	return true
}

// Close ends every detached stream and waits for their goroutines. Call it when shutting down,
// along with http.Server.Shutdown (which does not see them).
func (h *Handler) Close() {
	h.detachedMu.Lock()
	h.closing = true
	streams := make([]*detached, 0, len(h.detachedSet))
	for d := range h.detachedSet {
		streams = append(streams, d)
	}
	h.detachedMu.Unlock()
	for _, d := range streams {
		d.close("shutdown", nil)
	}
	h.detachedWG.Wait()
}

// watch waits for the client to leave: a stream's client sends nothing, so any read that
// returns ends the stream.
func (d *detached) watch() {
	var b [1]byte
	_, err := d.conn.Read(b[:])
	d.close("client", err)
}

func (d *detached) heartbeat() {
	d.mu.Lock()
	d.beatDue = true
	d.mu.Unlock()
	d.wake()
}

// wake starts a writer unless one runs. The feed calls it with its lock held.
func (d *detached) wake() {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.closed:
	case d.writing:
		d.again = true
	default:
		d.writing = true
		d.h.detachedWG.Go(d.write)
	}
}

// write sends what waits, then a heartbeat if one is due and nothing else went out, until
// nothing is left.
func (d *detached) write() {
	channel := d.sub.Channel
	for {
		batch, more := d.feed.Take(d.batch[:0], maxBatchEvents)
		n, err := d.h.writeEvents(&d.fw, batch, channel, channel == routing.Contexts, d.send)
		d.sent.Add(int64(n))
		clear(batch)
		d.batch = batch
		if cap(batch) > keepBatch {
			d.batch = nil
		}
		d.mu.Lock()
		beat := d.beatDue && n == 0
		d.beatDue = false
		d.mu.Unlock()
		if err == nil && beat {
			if err = d.send(heartbeatFor(channel)); err == nil {
				d.h.cfg.Metrics.Heartbeat(channel)
			}
		}
		if n > 0 || beat {
			d.beat.Reset(d.h.cfg.Heartbeat)
		}
		switch {
		case err != nil:
			d.close("write", err)
			return
		case !more:
			err := d.feed.Err()
			reason := "feed"
			if errors.Is(err, bus.ErrUnavailable) {
				reason = "nats"
			}
			d.close(reason, err)
			return
		}
		d.mu.Lock()
		if d.closed || !d.again && !d.beatDue {
			d.writing = false
			d.mu.Unlock()
			return
		}
		d.again = false
		d.mu.Unlock()
	}
}

// send writes b within the write timeout.
func (d *detached) send(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if err := d.conn.SetWriteDeadline(time.Now().Add(d.h.cfg.WriteTimeout)); err != nil {
		return err
	}
	_, err := d.conn.Write(b)
	return err
}

// close ends the stream once: the connection, the heartbeat, the feed (and its consumer).
func (d *detached) close(reason string, err error) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	d.closed = true
	d.mu.Unlock()
	d.beat.Stop()
	d.conn.Close()
	d.feed.Close() // without d.mu: the feed calls wake with its own lock held
	d.cancel()
	d.h.detachedMu.Lock()
	delete(d.h.detachedSet, d)
	d.h.detachedMu.Unlock()
	if reason == "client" {
		err = nil // reading ends with EOF or a reset when the client goes
	}
	d.h.finish(d.sub, d.start, int(d.sent.Load()), reason, err)
}
