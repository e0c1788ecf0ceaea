// Package sse is the event plane's HTTP face: Server-Sent Event streams with heartbeat and
// resume, event ingress, authentication, health and the connection count. It asks bus for feeds
// and publishes through it; it never talks to NATS itself.
package sse

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/httprate"

	"github.com/eventsd/eventsd/auth"
	"github.com/eventsd/eventsd/bus"
	"github.com/eventsd/eventsd/console"
	"github.com/eventsd/eventsd/event"
	"github.com/eventsd/eventsd/routing"
	"github.com/eventsd/eventsd/tasks"
)

// Broker is what the handler needs from the bus.
type Broker interface {
	// Subscribe opens the feed of one subscription; see bus.Bus.Subscribe.
	Subscribe(ctx context.Context, sub routing.Subscription) (*bus.Feed, error)
	// Publish stores one event on subject.
	Publish(ctx context.Context, subject string, data []byte, msgID string) (bus.Ack, error)
	// EnqueueRun stores a run request on its agent's work queue and follows it; see
	// bus.Bus.EnqueueRun.
	EnqueueRun(ctx context.Context, req bus.RunRequest, timeout time.Duration) (*bus.Run, error)
	// PublishRunEvent publishes an AG-UI event of a run; see bus.Bus.PublishRunEvent.
	PublishRunEvent(ctx context.Context, user, threadID, runID string, ev event.Event) (bus.Ack, error)
	// TaskView returns the view of an A2A task of user; see bus.Bus.TaskView.
	TaskView(ctx context.Context, user, taskID string) (*tasks.View, uint64, error)
	// PublishTaskEvent publishes an A2A event of a task; see bus.Bus.PublishTaskEvent.
	PublishTaskEvent(ctx context.Context, user, contextID, taskID string, ev event.Event, msgID string) (bus.Ack, error)
	// CancelTask asks the runtime that holds a task to cancel it; see bus.Bus.CancelTask.
	CancelTask(ctx context.Context, user, taskID string) (bool, error)
	// AgentDescription returns what an agent's runtimes say it does; see
	// bus.Bus.AgentDescription.
	AgentDescription(ctx context.Context, queue routing.Queue, agent string) (string, error)
	// Ready reports whether NATS is reachable and the streams exist.
	Ready(ctx context.Context) error
	// ServeConnections answers other nodes with local's count of open streams per user.
	ServeConnections(local func() []byte) error
	// GatherConnections collects every node's answer within wait.
	GatherConnections(ctx context.Context, wait time.Duration) ([][]byte, error)
}

// Config configures a Handler. Broker and Verifier are required.
type Config struct {
	Broker   Broker
	Verifier *auth.Verifier
	// Heartbeat is the idle time after which a stream gets a heartbeat frame; default 15s.
	Heartbeat time.Duration
	// WriteTimeout bounds each write to a stream; a client that does not take a frame in
	// time is disconnected. Default 10s.
	WriteTimeout time.Duration
	// MaxBody is the largest ingress body in bytes; default DefaultMaxBody.
	MaxBody int64
	// ReadTimeout bounds the time a request body may take to arrive; a body still arriving
	// after it is cut off. Streams and long answers are not affected. Default 10s.
	ReadTimeout time.Duration
	// MaxEvent is the largest stored event written to a stream; larger ones are skipped.
	// Default 1 MiB.
	MaxEvent int
	// MaxRunBody is the largest run request (a RunAgentInput) in bytes; default
	// DefaultMaxRunBody. With RunOverhead it must fit the NATS server's payload limit.
	MaxRunBody int64
	// RunTimeout is how long a run request waits for a runtime of its agent before the run
	// ends in RUN_ERROR no_runtime; default that of the streams (30 s).
	RunTimeout time.Duration
	// MaxRunDuration is how long a run started over HTTP may last before eventsd ends it in
	// RUN_ERROR run_timeout and tells its runtime to stop; default DefaultMaxRunDuration.
	MaxRunDuration time.Duration
	// Logger receives one line per connection and skipped events; default discards.
	Logger *slog.Logger
	// Metrics counts connections, frames and publishes; default NopMetrics.
	Metrics Metrics
	// SkipLogInterval is how often, at most, a skipped event is logged per subject; default 1m.
	SkipLogInterval time.Duration
	// MaxConnsPerUser and MaxConns limit open streams on this node per user and in all; 0 for
	// none. Past a limit a new stream gets 429 with Retry-After.
	MaxConnsPerUser int
	MaxConns        int
	// IngressRate limits the publishes per second for one user, whoever makes them (a service
	// publishing for many users is limited per user, not as one); 0 for none.
	IngressRate int
	// IngressBurst is how many publishes one user may make at once before IngressRate
	// applies; default twice IngressRate.
	IngressBurst int
	// MaxQuery is the longest query string accepted, in bytes; default 4096.
	MaxQuery int
	// PeerWait is how long /api/v1/connections waits for other nodes' answers; default 150ms.
	PeerWait time.Duration
	// CORSOrigins are the origins whose pages may call the API from another origin, each
	// scheme://host[:port] (e.g. "https://app.example.com"), with credentials: the
	// access_token cookie (see POST /api/v1/session) or an Authorization header. "*" alone
	// lets any origin in, without credentials. Empty: same origin only.
	CORSOrigins []string
	// PublicURL is where clients reach this server (scheme://host[:port][/prefix]), for the
	// URLs that A2A agent cards give; default the request's own scheme and host.
	PublicURL string
}

// Handler serves the event plane's HTTP API.
type Handler struct {
	cfg          Config
	log          *slog.Logger
	conns        *registry
	router       chi.Router
	now          func() time.Time
	skipLog      *logLimiter
	credentialed map[string]bool       // the origins whose requests may carry the cookie (see foreignCookie)
	ingressLimit *httprate.RateLimiter // nil: no limit
	// subscribe opens a stream's feed: through the Broker, or a fake in this package's tests.
	subscribe func(ctx context.Context, sub routing.Subscription) (feed, error)

	streamsMu sync.Mutex
	streams   map[*stream]struct{} // open streams, for Close
	closing   bool
	streamsWG sync.WaitGroup // their goroutines (see stream), and the runs followed without a client
	done      chan struct{}  // closed by Close
}

// NewHandler returns the HTTP API with defaults filled in. It answers other nodes' questions
// about its connections through the Broker.
func NewHandler(cfg Config) (*Handler, error) {
	cfg = cfg.withDefaults()
	origins, err := corsOrigins(cfg.CORSOrigins)
	if err != nil {
		return nil, err
	}
	cfg.CORSOrigins = origins
	h := &Handler{cfg: cfg, log: cfg.Logger, conns: newRegistry(), now: time.Now, skipLog: newLogLimiter(cfg.SkipLogInterval),
		streams: map[*stream]struct{}{}, credentialed: map[string]bool{}, done: make(chan struct{})}
	for _, o := range origins {
		h.credentialed[o] = o != anyOrigin
	}
	h.subscribe = h.subscribeBroker
	if cfg.IngressRate > 0 {
		// A sliding window of one burst's length: up to IngressBurst publishes at once, and
		// IngressRate a second on average.
		window := time.Duration(float64(time.Second) * float64(cfg.IngressBurst) / float64(cfg.IngressRate))
		h.ingressLimit = httprate.NewRateLimiter(cfg.IngressBurst, window)
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	h.router = h.routes()
	err = cfg.Broker.ServeConnections(func() []byte {
		users := h.conns.snapshot()
		b, _ := json.Marshal(users)
		return b
	})
	return h, err
}

// withDefaults fills in what cfg leaves unset.
func (cfg Config) withDefaults() Config {
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 15 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.IngressBurst < cfg.IngressRate {
		cfg.IngressBurst = 2 * cfg.IngressRate
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = 10 * time.Second
	}
	if cfg.MaxEvent <= 0 {
		cfg.MaxEvent = 1 << 20
	}
	if cfg.MaxRunBody <= 0 {
		cfg.MaxRunBody = DefaultMaxRunBody
	}
	if cfg.MaxRunDuration <= 0 {
		cfg.MaxRunDuration = DefaultMaxRunDuration
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NopMetrics{}
	}
	if cfg.SkipLogInterval <= 0 {
		cfg.SkipLogInterval = time.Minute
	}
	if cfg.MaxQuery <= 0 {
		cfg.MaxQuery = 4096
	}
	if cfg.PeerWait <= 0 {
		cfg.PeerWait = 150 * time.Millisecond
	}
	return cfg
}

// routes mounts the API's endpoints.
func (h *Handler) routes() chi.Router {
	r := chi.NewRouter()
	if len(h.cfg.CORSOrigins) > 0 {
		// Before all else: CORS headers go on every answer, errors included, and a preflight
		// is answered before auth or a limit sees it. None at all without origins (the
		// library's empty list would allow them all).
		r.Use(h.corsHandler())
	}
	// Then, on every route, those that refuse a request without reading its body too:
	// net/http reads what is left of a small body after the handler, with no deadline of its
	// own.
	r.Use(BodyDeadline(h.cfg.ReadTimeout))
	r.Use(h.limitQuery)
	r.Get("/healthz", h.healthz)
	r.Get("/readyz", h.readyz)
	r.Get("/api/v1/stream/{channel}", h.serveStream)
	r.Get("/api/v1/analytics/stream", h.serveStream)
	r.Get("/api/v1/agui/threads/{threadId}/stream", h.serveStream)
	r.Post("/api/v1/events/{channel}", h.publish)
	r.Post("/api/v1/webhook/{channel}", h.webhook)
	r.Post("/api/v1/agui/agents/{agent}/run", h.serveRun)
	r.Get("/api/v1/a2a/{agent}/.well-known/agent-card.json", h.serveAgentCard)
	r.Post("/api/v1/a2a/{agent}", h.serveA2A)
	r.Get("/api/v1/connections", h.connections)
	r.Post("/api/v1/session", h.createSession)
	r.Delete("/api/v1/session", h.deleteSession)
	r.Handle("/", console.Handler())
	r.Handle("/console.*", console.Handler())
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path, "")
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed on "+r.URL.Path, "")
	})
	return r
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.router.ServeHTTP(w, r) }

// Router returns the chi router, so that the caller can mount more routes (metrics, console).
func (h *Handler) Router() chi.Router { return h.router }

// limitQuery refuses query strings longer than MaxQuery before anything parses them.
func (h *Handler) limitQuery(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.URL.RawQuery) > h.cfg.MaxQuery {
			writeError(w, http.StatusRequestURITooLong, fmt.Sprintf("query string over %d bytes", h.cfg.MaxQuery), "")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (h *Handler) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (h *Handler) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := h.cfg.Broker.Ready(ctx); err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error(), "")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (h *Handler) connections(w http.ResponseWriter, r *http.Request) {
	id, ok := h.authenticate(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	answers, err := h.cfg.Broker.GatherConnections(ctx, h.cfg.PeerWait)
	if err != nil {
		writeFailure(w, err, "")
		return
	}
	total, users := 0, map[string]int{}
	for _, a := range answers {
		var node map[string]int
		if json.Unmarshal(a, &node) != nil {
			continue
		}
		for u, n := range node {
			users[u] += n
			total += n
		}
	}
	if id.Has(auth.RoleAdmin) {
		writeJSON(w, http.StatusOK, map[string]any{"total": total, "users": users, "nodes": len(answers)})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"user": id.User, "count": users[id.User]})
}

// authenticate verifies the caller's token and that its subject can name a user, or writes 401
// (403 for a cookie sent from an origin not listed, see foreignCookie).
func (h *Handler) authenticate(w http.ResponseWriter, r *http.Request) (auth.Identity, bool) {
	if origin, foreign := h.foreignCookie(r); foreign {
		writeError(w, http.StatusForbidden, fmt.Sprintf("the %s cookie is not accepted from %s: list the origin in --cors-origins, "+
			"or send Authorization: Bearer <token>", auth.CookieName, origin), "")
		return auth.Identity{}, false
	}
	id, err := h.cfg.Verifier.VerifyRequest(r)
	if err == nil {
		_, err = routing.UserToken(id.User)
	}
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="eventsd"`)
		msg := err.Error()
		if errors.Is(err, auth.ErrNoToken) {
			msg = "no token: send Authorization: Bearer <token> or the access_token cookie"
		}
		writeError(w, http.StatusUnauthorized, msg, "")
		return auth.Identity{}, false
	}
	return id, true
}

// errorBody is the JSON of every error answer.
type errorBody struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

func writeError(w http.ResponseWriter, status int, msg, field string) {
	writeJSON(w, status, errorBody{Error: msg, Field: field})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeFailure answers an error from the layers below with its status. While NATS is away
// (503) it asks the client to retry after a second: NATS reconnects every 250 ms, and a
// failover within a cluster takes about that long.
func writeFailure(w http.ResponseWriter, err error, field string) {
	status := statusOf(err)
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	writeError(w, status, err.Error(), field)
}

// statusOf picks the HTTP status for an error from the layers below.
func statusOf(err error) int {
	switch {
	case errors.Is(err, bus.ErrUnavailable):
		return http.StatusServiceUnavailable
	case errors.Is(err, bus.ErrRunExists):
		return http.StatusConflict
	case errors.Is(err, bus.ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, bus.ErrCursorAhead), errors.Is(err, routing.ErrInvalidCursor),
		errors.Is(err, bus.ErrInvalidRun), errors.Is(err, routing.ErrInvalidAgent), errors.Is(err, routing.ErrInvalidQueue),
		errors.Is(err, routing.ErrInvalidType), errors.Is(err, routing.ErrInvalidUser),
		errors.Is(err, routing.ErrUnknownChannel):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}
