package sse

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/eventsd/eventsd/auth"
	"github.com/eventsd/eventsd/bus"
	"github.com/eventsd/eventsd/routing"
)

// feed is what a stream needs from its source of events; *bus.Feed is one (see bus.Feed for
// what each method promises).
type feed interface {
	// Take appends up to max waiting events to dst; more is false once the feed has ended and
	// every event has been taken.
	Take(dst []bus.Event, max int) (_ []bus.Event, more bool)
	// Notify has fn called, possibly with the shared feed's lock held, whenever events wait or
	// the feed ends.
	Notify(fn func())
	// Err says why the feed ended: nil if it was closed.
	Err() error
	// Close ends the feed and releases what it holds on the server.
	Close()
	// Notice and Prelude are what the stream sends before the feed's events, computed when
	// the feed opened.
	Notice() *bus.Notice
	Prelude() []bus.Event
	// Epoch is the epoch of the stream the feed reads.
	Epoch() uint64
}

// subscribeBroker opens a feed through the Broker.
func (h *Handler) subscribeBroker(ctx context.Context, sub routing.Subscription) (feed, error) {
	f, err := h.cfg.Broker.Subscribe(ctx, sub)
	if err != nil {
		return nil, err // not f: a nil *bus.Feed would make a feed that is not nil
	}
	return f, nil
}

// serveStream answers GET /api/v1/stream/{channel}: it checks the request, opens the feed and
// serves the stream (see stream) until it ends, or hands it off its connection.
func (h *Handler) serveStream(w http.ResponseWriter, r *http.Request) {
	sub, ok := h.subscription(w, r)
	if !ok {
		return
	}
	if !h.admit(w, sub.User) {
		return
	}
	// The stream's life may outlast this handler (see stream); until it is open, the client
	// leaving ends it.
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	leaving := context.AfterFunc(r.Context(), cancel)
	f, err := h.subscribe(ctx, sub)
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
	s := h.newStream(ctx, cancel, f, sub)
	if !leaving() { // the client left while its feed was set up
		f.Close()
		h.finish(sub, s.start, 0, "client", nil)
		return
	}
	s.serve(w, r)
}

// admit counts a new stream of user, or answers 429 with Retry-After past a limit and reports
// false.
func (h *Handler) admit(w http.ResponseWriter, user string) bool {
	ok, limit := h.conns.tryAdd(user, h.cfg.MaxConnsPerUser, h.cfg.MaxConns)
	if !ok {
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusTooManyRequests, "too many streams: "+limit, "")
	}
	return ok
}

// finish accounts for a stream that has ended, and gives its place back to its user.
func (h *Handler) finish(sub routing.Subscription, start time.Time, sent int, reason string, err error) {
	h.conns.add(sub.User, -1)
	h.streamEnded(sub, start, sent, reason, err)
}

// streamEnded counts and logs a stream that has ended.
func (h *Handler) streamEnded(sub routing.Subscription, start time.Time, sent int, reason string, err error) {
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

// subscription authenticates the request and reads what it asks for. On a bad request it writes
// the error and reports false.
func (h *Handler) subscription(w http.ResponseWriter, r *http.Request) (sub routing.Subscription, ok bool) {
	id, ok := h.authenticate(w, r)
	if !ok {
		return sub, false
	}
	sub, ok = streamOf(w, r)
	if !ok {
		return sub, false
	}
	sub.User = id.User
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

// streamOf reads which stream a request is for from its path: a channel's, or a thread's.
func streamOf(w http.ResponseWriter, r *http.Request) (routing.Subscription, bool) {
	name := chi.URLParam(r, "channel")
	if name == "" {
		name = string(routing.Analytics)
	}
	thread := chi.URLParam(r, "threadId")
	if r.URL.RawPath != "" { // chi routes on the raw path when there is one: escaped
		var err error
		if thread, err = url.PathUnescape(thread); err != nil {
			writeError(w, http.StatusBadRequest, "thread id: "+err.Error(), "threadId")
			return routing.Subscription{}, false
		}
	}
	if thread != "" {
		name = string(routing.AGUI)
	}
	channel, err := routing.ParseStreamChannel(name)
	if err != nil {
		writeError(w, http.StatusNotFound, err.Error(), "channel")
		return routing.Subscription{}, false
	}
	if thread != "" && !threadQuery(w, thread, r.URL.Query()) {
		return routing.Subscription{}, false
	}
	return routing.Subscription{Channel: channel, Thread: thread}, true
}

// threadQuery checks a thread stream's request: a thread id of at most bus.MaxRunIDLen bytes,
// and none of the parameters that would break its prelude (a thread stream is the user's
// own, whole, from its prelude on).
func threadQuery(w http.ResponseWriter, thread string, q url.Values) bool {
	if len(thread) > bus.MaxRunIDLen {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("thread id over %d bytes", bus.MaxRunIDLen), "threadId")
		return false
	}
	for _, p := range []string{"all_users", "types", "since"} {
		if q.Has(p) {
			writeError(w, http.StatusBadRequest, p+" is not for thread streams: a thread stream is the thread's whole, from its prelude on", p)
			return false
		}
	}
	return true
}

// lastEventID returns the resume cursor: the Last-Event-ID header, else the last_event_id
// query parameter.
func lastEventID(r *http.Request) string {
	if c := r.Header.Get("Last-Event-ID"); c != "" {
		return c
	}
	return r.URL.Query().Get("last_event_id")
}
