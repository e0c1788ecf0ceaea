package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// Sentinel errors of the client.
var (
	// ErrInvalidConfig is returned by NewFollower for a configuration it cannot follow.
	ErrInvalidConfig = errors.New("client: invalid follower configuration")
	// ErrStreamEnded is why a Follower reconnects when the server closed the stream between
	// frames (eventsd does, for one, when it shuts down).
	ErrStreamEnded = errors.New("client: the server ended the stream")
)

// Defaults of FollowerConfig.
const (
	DefaultMaxLine    = 8 << 20
	DefaultMinBackoff = 250 * time.Millisecond
	DefaultMaxBackoff = 10 * time.Second
)

// maxRetryAfter bounds the wait a Retry-After header can ask for, so that a misconfigured
// proxy cannot park a follower for hours.
const maxRetryAfter = time.Minute

// FollowerConfig configures a Follower. Only URL and Token are required.
type FollowerConfig struct {
	// URL is the stream to follow, with its query, e.g.
	// http://127.0.0.1:8080/api/v1/stream/agui?types=RUN_STARTED,RUN_FINISHED.
	URL string
	// Token is the bearer token sent with every request.
	Token string
	// LastEventID, when set, resumes the stream after this event id.
	LastEventID string
	// HTTPClient sends the requests; default http.DefaultClient. NewHTTPClient makes one for
	// a server with a private CA or for h2c. Its Timeout must be zero: a client timeout would
	// cut every stream.
	HTTPClient *http.Client
	// MaxLine bounds one line of the stream, in bytes; default DefaultMaxLine.
	MaxLine int
	// MinBackoff is the first wait before a reconnect. It doubles with each connection in a
	// row that delivered no event (a frame with an id; heartbeats and resync frames alone are
	// no progress), up to MaxBackoff; a connection that delivered one starts it again.
	// Defaults DefaultMinBackoff and DefaultMaxBackoff. A Retry-After the server sends
	// lengthens a wait, up to a minute.
	MinBackoff, MaxBackoff time.Duration
	// MaxRetries bounds how many times in a row the follower reconnects after a connection
	// that delivered no event; 0 reconnects until the context ends.
	MaxRetries int
	// OnRetry, when set, is told of each reconnect before its wait, on the goroutine running
	// Follow.
	OnRetry func(Retry)
}

// Retry tells FollowerConfig.OnRetry why and when a Follower reconnects.
type Retry struct {
	// Err is why the connection ended: ErrStreamEnded, an *HTTPError with a 5xx status, or
	// the error of the network or of reading the stream.
	Err error
	// Wait is how long the follower waits before it reconnects.
	Wait time.Duration
	// LastEventID is what the reconnect resumes after; empty when no event has come yet.
	LastEventID string
	// Attempt counts the connections in a row that delivered no event, this one included: 1
	// after a connection that delivered one.
	Attempt int
}

// Follower follows one event stream across dropped connections: it reconnects with the id
// of the last event it received as Last-Event-ID, so eventsd sends every event after it, with
// none lost or repeated.
type Follower struct {
	cfg FollowerConfig

	mu     sync.Mutex
	lastID string
}

// NewFollower returns a Follower for cfg, with its defaults set. Errors wrap ErrInvalidConfig.
func NewFollower(cfg FollowerConfig) (*Follower, error) {
	u, err := url.Parse(cfg.URL)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: URL: %v", ErrInvalidConfig, err)
	case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		return nil, fmt.Errorf("%w: URL %q: want http:// or https:// and a host", ErrInvalidConfig, cfg.URL)
	case cfg.Token == "":
		return nil, fmt.Errorf("%w: no token", ErrInvalidConfig)
	case cfg.HTTPClient != nil && cfg.HTTPClient.Timeout != 0:
		return nil, fmt.Errorf("%w: HTTPClient.Timeout %s: want 0, a timeout would cut every stream", ErrInvalidConfig, cfg.HTTPClient.Timeout)
	case cfg.MaxLine < 0, cfg.MinBackoff < 0, cfg.MaxBackoff < 0, cfg.MaxRetries < 0:
		return nil, fmt.Errorf("%w: MaxLine, MinBackoff, MaxBackoff and MaxRetries: want 0 (the default) or more", ErrInvalidConfig)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	if cfg.MaxLine == 0 {
		cfg.MaxLine = DefaultMaxLine
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = max(DefaultMaxBackoff, cfg.MinBackoff)
	}
	if cfg.MinBackoff > cfg.MaxBackoff {
		return nil, fmt.Errorf("%w: MinBackoff %s is more than MaxBackoff %s", ErrInvalidConfig, cfg.MinBackoff, cfg.MaxBackoff)
	}
	return &Follower{cfg: cfg, lastID: cfg.LastEventID}, nil
}

// LastEventID returns the id of the last event received (or the configured one before any):
// what the next connection resumes after. It is safe to call while Follow runs.
func (f *Follower) LastEventID() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastID
}

func (f *Follower) setLastID(id string) {
	f.mu.Lock()
	f.lastID = id
	f.mu.Unlock()
}

// Follow reads the stream and calls fn with each frame, in order, until ctx ends, fn returns
// an error, the server refuses the stream or MaxRetries runs out. Heartbeat frames are not
// passed to fn; a resync frame (Event "resync") is. A frame's id counts as received once fn
// has returned nil for it.
//
// After a dropped connection, a closed stream or a 5xx answer it reconnects with backoff,
// resuming after LastEventID. A 4xx answer is final, as for a browser's EventSource (a 429
// too): Follow returns it as an *HTTPError. When
// ctx ends Follow returns ctx.Err(); when fn fails, fn's error unchanged. Follow may be called
// again after it returns, to go on from LastEventID, but not by two goroutines at once.
func (f *Follower) Follow(ctx context.Context, fn func(Frame) error) error {
	backoff := f.cfg.MinBackoff
	attempt := 0
	for {
		received, err := f.connect(ctx, fn)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var final finalError
		if errors.As(err, &final) {
			return final.error
		}
		if received {
			backoff, attempt = f.cfg.MinBackoff, 0
		}
		attempt++
		if f.cfg.MaxRetries > 0 && attempt > f.cfg.MaxRetries {
			return fmt.Errorf("client: %d connections in a row delivered no event: %w", attempt, err)
		}
		wait := backoff
		var answer *HTTPError
		if errors.As(err, &answer) {
			wait = max(wait, min(answer.RetryAfter, maxRetryAfter))
		}
		if f.cfg.OnRetry != nil {
			f.cfg.OnRetry(Retry{Err: err, Wait: wait, LastEventID: f.LastEventID(), Attempt: attempt})
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, f.cfg.MaxBackoff)
	}
}

// finalError marks an error that a reconnect would only repeat, or that is fn's.
type finalError struct{ error }

// connect reads the stream over one connection; it reports whether an event with an id arrived:
// heartbeats and resync frames alone are no progress, and do not reset the backoff.
func (f *Follower) connect(ctx context.Context, fn func(Frame) error) (received bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.cfg.URL, nil)
	if err != nil {
		return false, finalError{err}
	}
	req.Header.Set("Authorization", "Bearer "+f.cfg.Token)
	req.Header.Set("Accept", "text/event-stream")
	if id := f.LastEventID(); id != "" {
		req.Header.Set("Last-Event-ID", id)
	}
	resp, err := f.cfg.HTTPClient.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if err := CheckResponse(resp); err != nil {
		if resp.StatusCode < 500 {
			return false, finalError{err}
		}
		return false, err
	}
	r := NewReader(resp.Body, f.cfg.MaxLine)
	for {
		fr, err := r.Next()
		if errors.Is(err, io.EOF) {
			return received, ErrStreamEnded
		}
		if err != nil {
			return received, err
		}
		if fr.Event != "heartbeat" {
			if err := fn(fr); err != nil {
				return received, finalError{err}
			}
		}
		if fr.ID != "" {
			f.setLastID(fr.ID)
			received = true
		}
	}
}
