package sse

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/eventsd/eventsd/auth"
	"github.com/eventsd/eventsd/bus"
	"github.com/eventsd/eventsd/routing"
)

// stream serves one SSE connection: one channel of the caller's events, live or resumed. Once
// the request is checked and its feed open, the connection is taken over from net/http (see
// detach) and the stream goes on without this goroutine.
func (h *Handler) stream(w http.ResponseWriter, r *http.Request) {
	sub, ok := h.subscription(w, r)
	if !ok {
		return
	}
	if ok, limit := h.conns.tryAdd(sub.User, h.cfg.MaxConnsPerUser, h.cfg.MaxConns); !ok {
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusTooManyRequests, "too many streams: "+limit, "")
		return
	}
	// The feed outlives this handler when the stream is detached; until then, the client
	// leaving ends it.
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	leaving := context.AfterFunc(r.Context(), cancel)
	feed, err := h.cfg.Broker.Subscribe(ctx, sub)
	if err != nil {
		cancel()
		h.conns.add(sub.User, -1)
		field := ""
		if errors.Is(err, bus.ErrCursorAhead) {
			field = "last_event_id"
		}
		writeFailure(w, err, field)
		return
	}
	h.cfg.Metrics.StreamOpened(sub.Channel)
	start := h.now()
	if !leaving() { // the client left while its feed was set up
		feed.Close()
		h.finish(sub, start, 0, "client", nil)
		return
	}
	if err := h.detach(w, feed, sub, start, cancel); err != nil {
		feed.Close()
		cancel()
		h.finish(sub, start, 0, "write", err)
		writeError(w, http.StatusHTTPVersionNotSupported, "a stream needs an HTTP/1.1 connection: "+err.Error(), "")
	}
}

// finish accounts for a stream that has ended.
func (h *Handler) finish(sub routing.Subscription, start time.Time, sent int, reason string, err error) {
	h.conns.add(sub.User, -1)
	h.cfg.Metrics.StreamClosed(sub.Channel, reason)
	h.log.Info("sse connection closed", "user", sub.User, "channel", sub.Channel,
		"duration", h.now().Sub(start).Round(time.Millisecond), "events", sent, "reason", reason, "err", err)
}

// streamHeaders sets the response headers of every stream.
func streamHeaders(hdr http.Header) {
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("X-Accel-Buffering", "no")
}

// openingFrames encodes what a stream sends before its events: the resync notice, the contexts
// snapshot.
func (h *Handler) openingFrames(fw *frameWriter, feed *bus.Feed, channel routing.Channel) error {
	if n := feed.Notice(); n != nil {
		fw.notice(n, channel, h.now())
	}
	for _, ev := range feed.Prelude() {
		if _, err := fw.event(ev, channel == routing.Contexts); err != nil {
			return err
		}
	}
	return nil
}

// subscription authenticates the request and reads what it asks for. On a bad request it writes
// the error and reports false.
func (h *Handler) subscription(w http.ResponseWriter, r *http.Request) (sub routing.Subscription, ok bool) {
	id, ok := h.authenticate(w, r)
	if !ok {
		return sub, false
	}
	name := chi.URLParam(r, "channel")
	if name == "" {
		name = string(routing.Analytics)
	}
	channel, err := routing.ParseStreamChannel(name)
	if err != nil {
		writeError(w, http.StatusNotFound, err.Error(), "channel")
		return sub, false
	}
	sub = routing.Subscription{Channel: channel, User: id.User}
	q := r.URL.Query()
	if q.Get("all_users") == "true" {
		if !id.Has(auth.RoleAdmin) {
			writeError(w, http.StatusForbidden, "all_users=true needs an admin token", "all_users")
			return sub, false
		}
		sub.AllUsers = true
	}
	if s := q.Get("since"); s != "" {
		since, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("since %q is not an RFC 3339 time", s), "since")
			return sub, false
		}
		sub.Since = since
	}
	if t := q.Get("types"); t != "" {
		sub.Types = strings.Split(t, ",")
		for _, typ := range sub.Types {
			if err := routing.ValidateType(typ); err != nil {
				writeError(w, http.StatusBadRequest, err.Error(), "types")
				return sub, false
			}
		}
	}
	if c := lastEventID(r); c != "" {
		cursor, err := routing.ParseCursor(c)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error(), "last_event_id")
			return sub, false
		}
		sub.Cursor = &cursor
	}
	return sub, true
}

// lastEventID returns the resume cursor: the Last-Event-ID header, else the last_event_id
// query parameter.
func lastEventID(r *http.Request) string {
	if c := r.Header.Get("Last-Event-ID"); c != "" {
		return c
	}
	return r.URL.Query().Get("last_event_id")
}

// A busy connection takes the events waiting for it together and sends their frames in few
// writes: one system call for many frames instead of one for each.
const (
	maxBatchEvents = 256      // events taken at once
	maxBatchBytes  = 64 << 10 // frames written at once, unless one frame is larger
	keepBatch      = 16       // events a connection keeps room for between batches
)

// writeEvents encodes evs as frames, skipping those that cannot be frames, and writes them in
// as few writes as maxBatchBytes allows. It returns how many frames it wrote.
func (h *Handler) writeEvents(fw *frameWriter, evs []bus.Event, channel routing.Channel, wrap bool, write func([]byte) error) (int, error) {
	sent, n := 0, 0
	flush := func() error {
		if n == 0 {
			return nil
		}
		h.cfg.Metrics.Delivered(channel, n) // before the write, so a client that has the frames sees them counted
		err := write(fw.frames())
		fw.reset()
		if err == nil {
			sent, n = sent+n, 0
		}
		return err
	}
	for _, ev := range evs {
		if _, err := fw.event(ev, wrap); err != nil {
			h.skipped(channel, ev, err)
			continue
		}
		n++
		if len(fw.frames()) >= maxBatchBytes {
			if err := flush(); err != nil {
				return sent, err
			}
		}
	}
	return sent, flush()
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
