package sse

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/eventsd/eventsd/auth"
	"github.com/eventsd/eventsd/bus"
	"github.com/eventsd/eventsd/event"
	"github.com/eventsd/eventsd/routing"
)

// inputError is a client mistake in an ingress request; field names the part at fault.
type inputError struct {
	status int
	field  string
	msg    string
}

func (e *inputError) Error() string { return e.msg }

func badRequest(field, format string, args ...any) *inputError {
	return &inputError{status: http.StatusBadRequest, field: field, msg: fmt.Sprintf(format, args...)}
}

// publish serves POST /api/v1/events/{channel}: the body is the event itself, for the caller or,
// for service and admin callers, for the user named by ?user=.
func (h *Handler) publish(w http.ResponseWriter, r *http.Request) {
	h.ingest(w, r, false)
}

// webhook serves POST /api/v1/webhook/{agui,a2a}: the event carries a top-level user_id, which
// must be the caller's own unless the caller is service or admin, and which is not stored.
func (h *Handler) webhook(w http.ResponseWriter, r *http.Request) {
	h.ingest(w, r, true)
}

func (h *Handler) ingest(w http.ResponseWriter, r *http.Request, webhook bool) {
	start := h.now()
	id, ok := h.authenticate(w, r)
	if !ok {
		return
	}
	channel, err := routing.ParsePublishChannel(chi.URLParam(r, "channel"))
	if err == nil && webhook && channel != routing.AGUI && channel != routing.A2A {
		err = fmt.Errorf("%w %q: webhooks exist for agui and a2a", routing.ErrUnknownChannel, channel)
	}
	if err != nil {
		writeError(w, http.StatusNotFound, err.Error(), "channel")
		return
	}
	// The limit is the target user's, whoever publishes: one service publishing for many users
	// is not limited as one user. Where the target is known before the body (the caller, or
	// ?user= from a caller allowed to name it), it is checked first, so that a caller over the
	// limit costs no body read (a ?user= it may not name is refused once the body is read); a
	// webhook names its user in the body.
	if !webhook {
		if tok, ok := targetBeforeBody(r, id); ok && h.overLimit(w, r, channel, tok) {
			return
		}
	}
	subject, body, err := h.readEvent(w, r, id, channel, webhook)
	if err != nil {
		h.cfg.Metrics.Published(channel, "rejected", 0)
		writeInputError(w, err)
		return
	}
	target, _ := routing.ParseSubject(subject) // SubjectFor wrote it
	if webhook && h.overLimit(w, r, channel, target.Token) {
		return
	}
	ack, err := h.cfg.Broker.Publish(r.Context(), subject, body, msgID(channel, target.Token, r.Header.Get("Idempotency-Key")))
	if err != nil {
		h.cfg.Metrics.Published(channel, "failed", 0)
		h.log.Warn("publish failed", "subject", subject, "err", err)
		writeFailure(w, err, "")
		return
	}
	h.cfg.Metrics.Published(channel, "published", h.now().Sub(start))
	writeJSON(w, http.StatusOK, map[string]any{"status": "published", "stream": ack.Stream, "seq": ack.Seq, "duplicate": ack.Duplicate})
}

// targetBeforeBody returns the token of the user a publish is for when the request says so
// before its body: the caller, or the ?user= that the caller may name. A ?user= the caller may
// not name gets its 403 later and must not spend that user's budget.
func targetBeforeBody(r *http.Request, id auth.Identity) (string, bool) {
	user := id.User
	if q := r.URL.Query(); q.Has("user") {
		if q.Get("user") != id.User && !id.Privileged() {
			return "", false
		}
		user = q.Get("user")
	}
	tok, err := routing.UserToken(user)
	return tok, err == nil
}

// overLimit spends one of the target user's publishes, or answers 429 and reports true.
func (h *Handler) overLimit(w http.ResponseWriter, r *http.Request, channel routing.Channel, token string) bool {
	if h.ingressLimit == nil || !h.ingressLimit.OnLimit(w, r, token) {
		return false
	}
	h.cfg.Metrics.Published(channel, "rejected", 0)
	writeError(w, http.StatusTooManyRequests, fmt.Sprintf("more than %d publishes a second (bursts of %d) for this user", h.cfg.IngressRate, h.cfg.IngressBurst), "")
	return true
}

// Sizes that ingress adds to an event's body before it is stored, for checking that
// --max-body fits the NATS server's payload limit.
const (
	// DefaultMaxBody is the default largest ingress body: 1 MiB, NATS's default payload
	// limit, less room for the added timestamp and the headers.
	DefaultMaxBody = 1<<20 - 2<<10
	// StampOverhead bounds what the added timestamp field takes.
	StampOverhead = 64
	// MaxMsgID bounds the Nats-Msg-Id ingress writes: channel, user token and key.
	MaxMsgID = 512
)

// DefaultMaxRunBody is the default largest run request of a Handler: 1 MiB, NATS's default
// payload limit, less RunOverhead and the headers. A larger --max-run-body needs a NATS server with a larger max_payload
// (the embedded one takes 8 MiB).
const DefaultMaxRunBody = 1<<20 - RunOverhead - bus.PublishOverhead

// DefaultMaxRunDuration is how long a run started over HTTP may last by default.
const DefaultMaxRunDuration = time.Hour

// maxIdempotencyKey bounds the Idempotency-Key header.
const maxIdempotencyKey = 128

// msgID scopes an Idempotency-Key to its channel and user: JetStream de-duplicates per
// stream, so with the key alone one user's key would drop another user's event (and tell them
// its sequence), and the CONTEXT stream, which holds the agui and a2a events together, would
// drop an a2a event that came with the key of an agui one.
func msgID(c routing.Channel, token, key string) string {
	if key == "" {
		return ""
	}
	return string(c) + "." + token + "." + key
}

// readEvent checks an ingress request and returns the subject and the event as it is stored.
func (h *Handler) readEvent(w http.ResponseWriter, r *http.Request, id auth.Identity, channel routing.Channel, webhook bool) (string, []byte, error) {
	if err := checkJSONContentType(r.Header.Get("Content-Type")); err != nil {
		return "", nil, err
	}
	if k := r.Header.Get("Idempotency-Key"); len(k) > maxIdempotencyKey || strings.ContainsFunc(k, func(c rune) bool { return c < 0x21 || c > 0x7e }) {
		return "", nil, badRequest("Idempotency-Key", "Idempotency-Key must be at most %d printable ASCII characters", maxIdempotencyKey)
	}
	raw, err := h.readBody(w, r, h.cfg.MaxBody, "--max-body")
	if err != nil {
		return "", nil, err
	}
	ev, err := event.Parse(raw)
	if err != nil {
		return "", nil, err
	}

	user := id.User
	if webhook {
		owner, err := ev.TakeUserID()
		if err != nil {
			return "", nil, err
		}
		if owner != id.User && !id.Privileged() {
			return "", nil, &inputError{status: http.StatusForbidden, field: "user_id", msg: "user_id names another user; only service and admin tokens may publish for others"}
		}
		user = owner
	} else if q := r.URL.Query(); q.Has("user") {
		if q.Get("user") != id.User && !id.Privileged() {
			return "", nil, &inputError{status: http.StatusForbidden, field: "user", msg: "only service and admin tokens may publish for another user"}
		}
		user = q.Get("user")
	}
	if _, err := routing.UserToken(user); err != nil {
		return "", nil, badRequest("user", "%v", err)
	}
	if err := ev.Validate(channel); err != nil {
		return "", nil, err
	}
	if channel == routing.AGUI {
		if err := ev.CheckAttribution(); err != nil {
			return "", nil, err
		}
	}
	if err := ev.Stamp(channel == routing.AGUI, h.now()); err != nil {
		return "", nil, err
	}
	subject, err := routing.SubjectFor(channel, user, ev.Type)
	if err != nil {
		return "", nil, badRequest("type", "%v", err)
	}
	return subject, ev.Encode(), nil
}

// readBody reads a request body of at most limit bytes, the value of flag.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request, limit int64, flag string) ([]byte, error) {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err == nil {
		return raw, nil
	}
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, &inputError{status: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("body over %d bytes (%s)", tooBig.Limit, flag)}
	}
	if isTimeout(err) {
		return nil, &inputError{status: http.StatusRequestTimeout, msg: fmt.Sprintf("body not received within %s", h.cfg.ReadTimeout)}
	}
	return nil, badRequest("", "reading body: %v", err)
}

// writeInputError answers a request the client got wrong (an inputError or an
// event.FieldError), or any other error with its status (writeFailure).
func writeInputError(w http.ResponseWriter, err error) {
	var in *inputError
	var fe *event.FieldError
	switch {
	case errors.As(err, &in):
		writeError(w, in.status, in.msg, in.field)
	case errors.As(err, &fe):
		writeError(w, http.StatusBadRequest, fe.Msg, fe.Field)
	default:
		writeFailure(w, err, "")
	}
}

func checkJSONContentType(ct string) error {
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && (mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")) {
		return nil
	}
	return &inputError{status: http.StatusUnsupportedMediaType, field: "Content-Type", msg: fmt.Sprintf("Content-Type %q: send application/json", ct)}
}
