package sse

import (
	"context"
	"errors"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventsd/eventsd/bus"
	"github.com/eventsd/eventsd/event"
	"github.com/eventsd/eventsd/routing"
)

// A stream serves one SSE connection, the same way whatever carries it: it opens with its
// head and its feed's prelude, then writes its feed's events as they come, a heartbeat after
// Config.Heartbeat without a frame, and closes once, for one reason ("client", "write",
// "feed", "nats", "shutdown"). When its feed ends because the feed's JetStream stream was
// deleted and created again, it opens a new feed from the last event it sent and goes on.
//
// Where net/http lets go of the connection (HTTP/1.1), the stream takes it over: net/http keeps
// a goroutine (with its stack), a second goroutine watching for the client leaving, and read
// and write buffers for as long as a handler runs, more than twice what an idle stream needs.
// Elsewhere (HTTP/2) the handler goroutine stays and the stream writes to its ResponseWriter.
//
// Goroutines and locks:
//   - The watcher notices the client leaving and calls close("client"): on a taken-over
//     connection, a goroutine blocked in conn.Read; on a held one, a context.AfterFunc on the
//     request's context.
//   - The writer (write) is the only code that writes to the wire, uses fw, batch, last and
//     restarts, and replaces feed. It runs only while there is something to write: on a
//     taken-over connection, on a goroutine that wake starts and that ends when nothing is
//     left; on a held one, on the handler goroutine (hold), which wake signals through kick.
//   - The heartbeat timer's function and the feed's Notify callback (possibly called with the
//     shared feed's lock held) only set flags and call wake.
//   - mu guards the flags and feed; no feed method is called with it held, since the feed may
//     call wake with the shared feed's lock held.
//   - The Handler lists open streams under its streamsMu, for Close; its streamsWG counts the
//     watchers, the writers and the held handlers, so Close returns once none runs.
type stream struct {
	h      *Handler
	sub    routing.Subscription
	start  time.Time
	ctx    context.Context // the stream's life, not a request's: feeds opened in it end with it
	cancel context.CancelFunc
	out    wire
	kick   chan struct{} // held streams only: wakes the handler goroutine to write
	beat   *time.Timer
	sent   atomic.Int64

	mu      sync.Mutex
	feed    feed
	writing bool // the writer runs
	again   bool // woken while writing: the writer looks again before it stops
	beatDue bool // the heartbeat timer fired
	closed  bool

	fw       frameWriter
	batch    []bus.Event
	last     routing.Cursor // of the last event sent, or the one the stream was opened with; zero: none
	restarts int            // feeds reopened in a row without an event sent
}

// wire is what a stream writes to: the connection taken over from net/http, or a heldWriter.
type wire interface {
	SetWriteDeadline(t time.Time) error
	Write(b []byte) (int, error)
	Close() error
}

// A busy connection takes the events waiting for it together and sends their frames in few
// writes: one system call for many frames instead of one for each.
const (
	maxBatchEvents = 256      // events taken at once
	maxBatchBytes  = 64 << 10 // frames written at once, unless one frame is larger
	keepBatch      = 16       // events a connection keeps room for between batches
)

// maxRestarts is how many times in a row a stream opens a new feed, for its stream was
// recreated, without an event sent in between; past it, the stream closes and its client
// resumes by itself.
const maxRestarts = 3

func (h *Handler) newStream(ctx context.Context, cancel context.CancelFunc, f feed, sub routing.Subscription) *stream {
	s := &stream{h: h, sub: sub, start: h.now(), ctx: ctx, cancel: cancel, feed: f,
		fw: frameWriter{maxEvent: h.cfg.MaxEvent}}
	if sub.Cursor != nil {
		s.last = *sub.Cursor
	}
	return s
}

// serve sends the stream's head and prelude, then serves it: off net/http on the connection
// it takes over, or, where it cannot take it (HTTP/2), on this goroutine until it closes.
func (s *stream) serve(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	streamHeaders(hdr)
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		// Whatever the client sent after its request is not read: a stream reads nothing.
		hdr.Set("Connection", "close") // the body ends when the connection does
		s.fw.buf.WriteString("HTTP/1.1 200 OK\r\n")
		_ = hdr.Write(&s.fw.buf)
		s.fw.buf.WriteString("\r\n")
		s.out = conn
		s.open(func(wg *sync.WaitGroup) {
			wg.Go(func() {
				var b [1]byte
				_, err := conn.Read(b[:]) // the client sends nothing: a read that returns means it left
				s.close("client", err)
			})
		})
		return
	}
	// Held: this goroutine stays, runs the writer whenever it is woken, and sees the client
	// leave (its request's context ends), with no goroutine or callback of its own.
	w.WriteHeader(http.StatusOK)
	hw := &heldWriter{w: w, rc: http.NewResponseController(w), done: make(chan struct{}), left: r.Context().Done()}
	s.out, s.kick = hw, make(chan struct{}, 1)
	if s.open(func(wg *sync.WaitGroup) { wg.Add(1) }) { // this goroutine, which writes to w
		s.hold(hw)
		s.h.streamsWG.Done()
	}
}

// open writes what the stream sends first (its head, if any, and its feed's prelude), starts
// the heartbeat, lists the stream for Handler.Close and starts watching for the client leaving.
// It reports false if the stream has closed.
func (s *stream) open(watch func(*sync.WaitGroup)) bool {
	err := s.prelude(s.feed)
	if err == nil {
		err = s.flush() // even with nothing encoded, a held stream's headers go out
	}
	s.mu.Lock() // the timer's function takes it before anything reads s.beat
	s.beat = time.AfterFunc(s.h.cfg.Heartbeat, s.heartbeat)
	s.mu.Unlock()
	if err != nil {
		s.failed(err)
		return false
	}
	if !s.h.track(s, watch) {
		s.close("shutdown", nil)
		return false
	}
	s.feed.Notify(s.wake)
	return true
}

// hold runs a held stream's writer on the handler goroutine whenever it is woken, until the
// stream closes or its client leaves.
func (s *stream) hold(hw *heldWriter) {
	for {
		select {
		case <-hw.done: // closed, with a write due as well: close wins
			return
		default:
		}
		select {
		case <-s.kick:
			s.write()
		case <-hw.left:
			s.close(hw.why(nil))
			return
		case <-hw.done:
			return
		}
	}
}

// prelude encodes what a feed sends before its events: its notice (the resync frame), then
// its prelude events (the contexts snapshot).
func (s *stream) prelude(f feed) error {
	if n := f.Notice(); n != nil {
		s.fw.notice(n, s.sub.Channel, s.h.now())
	}
	prelude := f.Prelude()
	// A prelude is bounded where it is made (a view's limit): --max-event does not apply to it.
	defer func(max int) { s.fw.maxEvent = max }(s.fw.maxEvent)
	s.fw.maxEvent = 0
	for i, ev := range prelude {
		// A thread stream's prelude carries its cursor on its last frame only: a client that
		// lost the connection within it resumes from before it, and gets it whole again.
		withID := s.sub.Thread == "" || i == len(prelude)-1
		if _, err := s.fw.frame(ev, s.sub.Channel == routing.Contexts, withID); err != nil {
			return err
		}
		s.last = ev.Cursor
	}
	return nil
}

func (s *stream) heartbeat() {
	s.mu.Lock()
	s.beatDue = true
	s.mu.Unlock()
	s.wake()
}

// wake has the writer run unless it runs already. The feed may call it with the shared feed's
// lock held.
func (s *stream) wake() {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
	case s.writing:
		s.again = true
	case s.kick != nil:
		s.writing = true
		signal(s.kick)
	default:
		s.writing = true
		s.h.streamsWG.Go(s.write)
	}
}

// write is the stream's writer: it sends what waits, then a heartbeat if one is due and
// nothing else went out, until nothing is left.
func (s *stream) write() {
	for {
		n, more, err := s.writeWaiting()
		s.mu.Lock()
		beat := s.beatDue && n == 0
		s.beatDue = false
		s.mu.Unlock()
		if err == nil && beat {
			if err = s.send(heartbeatFor(s.sub.Channel)); err == nil {
				s.h.cfg.Metrics.Heartbeat(s.sub.Channel)
			}
		}
		wrote := n > 0 || beat
		switch {
		case err != nil:
			s.failed(err)
			return
		case !more:
			if !s.restart() {
				return
			}
			wrote = true
		}
		if !s.goOn(wrote) {
			return
		}
	}
}

// goOn ends a pass of the writer: it restarts the heartbeat if the pass wrote, and reports
// whether the writer looks again, or stops until it is woken.
func (s *stream) goOn(wrote bool) bool {
	if wrote {
		// Without s.mu: wake, which the shared feed calls with its lock held, would wait for it.
		// A stream that closes meanwhile stops the timer below.
		s.beat.Reset(s.h.cfg.Heartbeat)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		s.beat.Stop()
	}
	if s.closed || !s.again && !s.beatDue {
		s.writing = false
		return false
	}
	s.again = false
	return true
}

// writeWaiting writes the events waiting in the feed, in as few writes as maxBatchBytes
// allows. more is false once the feed has ended.
//
// The writer is a new goroutine at each wake, with a small stack: the calls from write down to
// send stay few and flat, or the stack grows (a copy) at every wake under load.
func (s *stream) writeWaiting() (sent int, more bool, err error) {
	batch, more := s.feed.Take(s.batch[:0], maxBatchEvents)
	for rest := batch; len(rest) > 0 && err == nil; {
		var n int
		var last routing.Cursor
		n, last, rest = s.encode(rest)
		if n == 0 {
			continue
		}
		s.h.cfg.Metrics.Delivered(s.sub.Channel, n) // before the write, so a client that has the frames sees them counted
		if err = s.flush(); err == nil {
			sent, s.last = sent+n, last
		}
	}
	s.sent.Add(int64(sent))
	clear(batch)
	s.batch = batch
	if cap(batch) > keepBatch {
		s.batch = nil
	}
	if sent > 0 {
		s.restarts = 0
	}
	return sent, more, err
}

// encode encodes events of evs as frames until maxBatchBytes of them wait, skipping those that
// cannot be frames. It returns how many it encoded, the last one's cursor, and the rest of evs.
func (s *stream) encode(evs []bus.Event) (n int, last routing.Cursor, rest []bus.Event) {
	channel := s.sub.Channel
	for i, ev := range evs {
		if s.sub.Thread != "" {
			if _, ok := attributedTo(&ev, s.sub.Thread, ""); !ok {
				continue
			}
		}
		if _, err := s.fw.event(ev, channel == routing.Contexts); err != nil {
			s.h.skipped(channel, ev, err)
			continue
		}
		n, last = n+1, ev.Cursor
		if len(s.fw.frames()) >= maxBatchBytes {
			return n, last, evs[i+1:]
		}
	}
	return n, last, nil
}

// attributedTo reports whether ev is an event of thread (and of run, where run is set), by its
// top-level threadId and runId, and returns its type. It leaves out of ev the attribution
// fields its type does not define, which the stock client strips with a warning each. It
// reads the event once.
func attributedTo(ev *bus.Event, thread, run string) (typ string, ok bool) {
	raw, err := event.Parse(ev.Data)
	if err != nil {
		return "", false
	}
	a := raw.Attribution()
	if a.ThreadID != thread || run != "" && a.RunID != run {
		return "", false
	}
	if data := raw.WithoutAttribution(ev.Data); len(data) != len(ev.Data) {
		ev.Data, ev.Compact = data, false
	}
	return a.Type, true
}

// restart follows the feed's end: when its stream was recreated, the stream goes on with a
// new feed, up to maxRestarts times in a row without an event sent; otherwise it closes. It
// reports whether the stream goes on.
func (s *stream) restart() bool {
	err := s.feed.Err()
	// A thread stream does not go on: a new prelude in the middle of a run would break its
	// client's verifier; its client connects again instead.
	if errors.Is(err, bus.ErrStreamRecreated) && s.restarts < maxRestarts && s.sub.Thread == "" {
		s.restarts++
		return s.reopen()
	}
	reason := "feed"
	if errors.Is(err, bus.ErrUnavailable) {
		reason = "nats"
	}
	s.close(reason, err)
	return false
}

// reopen replaces the ended feed with a new one from the last event sent, as a client resuming
// with its Last-Event-ID would get, and writes the new feed's prelude (its resync frame). It
// reports whether the stream goes on.
func (s *stream) reopen() bool {
	s.mu.Lock()
	old := s.feed
	s.feed = nil // the writer's until the new one is in: close leaves it alone
	closed := s.closed
	s.mu.Unlock()
	if closed { // close took the old feed
		return false
	}
	old.Close() // its consumer goes now, not when the stream closes
	cursor := s.last
	if cursor.Epoch == 0 { // nothing sent: from the new stream's first event
		cursor = routing.Cursor{Epoch: old.Epoch()}
	}
	sub := s.sub
	sub.Cursor = &cursor
	f, err := s.h.subscribe(s.ctx, sub)
	if err != nil {
		s.close("nats", err)
		return false
	}
	s.mu.Lock()
	closed = s.closed
	if !closed {
		s.feed = f
	}
	s.mu.Unlock()
	if closed {
		f.Close()
		return false
	}
	err = s.prelude(f)
	if err == nil {
		err = s.flush()
	}
	if err != nil {
		s.failed(err)
		return false
	}
	f.Notify(s.wake)
	return true
}

// flush writes the frames encoded since the last flush.
func (s *stream) flush() error {
	err := s.send(s.fw.frames())
	s.fw.reset()
	return err
}

// send writes b within the write timeout.
func (s *stream) send(b []byte) error { return writeWithin(s.out, s.h.cfg.WriteTimeout, b) }

// writeWithin writes b to out within timeout.
func writeWithin(out wire, timeout time.Duration, b []byte) error {
	if err := out.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	_, err := out.Write(b)
	return err
}

// failed closes the stream after a write failed with err; on a held stream, a write fails too
// when its client leaves, which is then the reason.
func (s *stream) failed(err error) {
	if hw, ok := s.out.(*heldWriter); ok {
		s.close(hw.why(err))
		return
	}
	s.close("write", err)
}

// close ends the stream once: the connection, the heartbeat, the feed (and its consumer).
func (s *stream) close(reason string, err error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	f := s.feed
	s.mu.Unlock()
	s.beat.Stop()
	s.out.Close()
	if f != nil { // nil while the writer opens a new feed, which it closes itself
		f.Close() // without s.mu: the feed may call wake with the shared feed's lock held
	}
	s.cancel()
	s.h.untrack(s)
	if reason == "client" {
		err = nil // reading ends with EOF or a reset when the client goes
	}
	s.h.finish(s.sub, s.start, int(s.sent.Load()), reason, err)
}

// clockStart is what heldWriter measures time from.
var clockStart = time.Now()

// heldWriter is the response of a handler that stays for its stream's life, where net/http
// cannot let go of the connection (HTTP/2). Every write is flushed.
type heldWriter struct {
	w    http.ResponseWriter
	rc   *http.ResponseController
	done chan struct{}   // closed by Close: the handler returns, which ends the response
	left <-chan struct{} // closed when the request ends: the client left, or net/http reset it
	// due is the deadline of the write under way, as time since clockStart (a monotonic
	// reading, as net/http's timer has); 0 between writes.
	due atomic.Int64
}

func (hw *heldWriter) SetWriteDeadline(t time.Time) error {
	due := time.Duration(0)
	if !t.IsZero() {
		due = t.Sub(clockStart)
	}
	hw.due.Store(int64(due))
	return hw.rc.SetWriteDeadline(t)
}

// why gives the reason a held stream ends for, when its request has ended or a write has
// failed with err: a write past its deadline (net/http then resets the stream, which ends the
// request as a client leaving would), else the client leaving, else the write.
func (hw *heldWriter) why(err error) (string, error) {
	if due := time.Duration(hw.due.Load()); due != 0 && time.Since(clockStart) >= due {
		return "write", os.ErrDeadlineExceeded
	}
	select {
	case <-hw.left:
		return "client", nil
	default:
		return "write", err
	}
}

func (hw *heldWriter) Write(b []byte) (int, error) {
	n, err := hw.w.Write(b)
	if err == nil {
		err = hw.rc.Flush()
	}
	if err == nil {
		// An HTTP/2 stream's write deadline stays armed after the write and resets the stream
		// when it passes, written or not: cleared, an idle stream lives until its heartbeat.
		err = hw.rc.SetWriteDeadline(time.Time{})
	}
	if err == nil {
		hw.due.Store(0)
	}
	return n, err
}

// Close lets the handler return; the stream closes it once.
func (hw *heldWriter) Close() error {
	close(hw.done)
	return nil
}

// signal puts a token in c unless one waits there.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// track lists s for Close and has watch start watching for its client leaving, adding what it
// starts to wg; false once the handler is closing. Under the lock that Close takes first, so
// that Close waits for what watch started.
func (h *Handler) track(s *stream, watch func(wg *sync.WaitGroup)) bool {
	h.streamsMu.Lock()
	defer h.streamsMu.Unlock()
	if h.closing {
		return false
	}
	h.streams[s] = struct{}{}
	watch(&h.streamsWG)
	return true
}

func (h *Handler) untrack(s *stream) {
	h.streamsMu.Lock()
	defer h.streamsMu.Unlock()
	delete(h.streams, s)
}

// Close ends every open stream and waits for their goroutines. Call it when shutting down,
// along with http.Server.Shutdown (which does not see streams on taken-over connections). A
// held stream in the middle of a write ends when the write does, within the write timeout.
func (h *Handler) Close() {
	h.streamsMu.Lock()
	if !h.closing {
		close(h.done)
	}
	h.closing = true
	streams := make([]*stream, 0, len(h.streams))
	for s := range h.streams {
		streams = append(streams, s)
	}
	h.streamsMu.Unlock()
	for _, s := range streams {
		s.close("shutdown", nil)
	}
	h.streamsWG.Wait()
}

// skipped counts a stored event that cannot become a frame, and logs it unless its subject was
// logged recently.
func (h *Handler) skipped(channel routing.Channel, ev bus.Event, err error) {
	reason := "invalid"
	var skip errSkip
	if errors.As(err, &skip) {
		reason = skip.reason
	}
	h.cfg.Metrics.Skipped(channel, reason)
	if h.skipLog.allow(ev.Subject, h.now()) {
		h.log.Warn("stored event not sent", "subject", ev.Subject, "seq", ev.Cursor.Seq, "reason", reason)
	}
}
