package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/eventsd/eventsd/client"
)

// script is an http.RoundTripper that answers each request with the next of its answers and
// records the requests.
type script struct {
	mu       sync.Mutex
	answers  []func(*http.Request) (*http.Response, error)
	requests []*http.Request
}

func (s *script) RoundTrip(req *http.Request) (*http.Response, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, req)
	if len(s.answers) == 0 {
		return nil, errors.New("script: no more answers")
	}
	a := s.answers[0]
	if len(s.answers) > 1 { // the last answer repeats
		s.answers = s.answers[1:]
	}
	return a(req)
}

// header returns a header of every request so far.
func (s *script) header(name string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var hs []string
	for _, r := range s.requests {
		hs = append(hs, r.Header.Get(name))
	}
	return hs
}

// stream answers 200 with body, then holds the stream open until the request ends when open.
func stream(body string, open bool) func(*http.Request) (*http.Response, error) {
	return func(req *http.Request) (*http.Response, error) {
		var r io.Reader = strings.NewReader(body)
		if open {
			r = io.MultiReader(r, untilDone{req.Context()})
		}
		return &http.Response{StatusCode: 200, Status: "200 OK", Header: http.Header{"Content-Type": {"text/event-stream"}}, Body: io.NopCloser(r)}, nil
	}
}

// untilDone reads nothing until ctx ends, as an idle stream.
type untilDone struct{ ctx context.Context }

func (u untilDone) Read([]byte) (int, error) {
	<-u.ctx.Done()
	return 0, u.ctx.Err()
}

// answer answers status with a JSON error body and the given headers (name, value pairs).
func answer(status int, body string, header ...string) func(*http.Request) (*http.Response, error) {
	return func(*http.Request) (*http.Response, error) {
		h := http.Header{"Content-Type": {"application/json"}}
		for i := 0; i+1 < len(header); i += 2 {
			h.Set(header[i], header[i+1])
		}
		return &http.Response{StatusCode: status, Status: fmt.Sprintf("%d %s", status, http.StatusText(status)), Header: h, Body: io.NopCloser(strings.NewReader(body))}, nil
	}
}

func failure(err error) func(*http.Request) (*http.Response, error) {
	return func(*http.Request) (*http.Response, error) { return nil, err }
}

func newFollower(t *testing.T, s *script, cfg client.FollowerConfig) *client.Follower {
	t.Helper()
	cfg.URL, cfg.Token, cfg.HTTPClient = "http://eventsd.test/api/v1/stream/a2a", "tok", &http.Client{Transport: s}
	f, err := client.NewFollower(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestFollowReconnects: across a closed stream, a network error and a 503, the follower
// resumes after the last event each time, waits the backoff (or the Retry-After when longer),
// passes every event once and no heartbeat, and ends with its context.
func TestFollowReconnects(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		refused := errors.New("connection refused")
		s := &script{answers: []func(*http.Request) (*http.Response, error){
			stream("id: 1-e\ndata: a\n\nevent: heartbeat\ndata: {\"type\":\"heartbeat\"}\n\n: heartbeat\n\nid: 2-e\ndata: b\n\n", false),
			failure(refused),
			answer(503, `{"error":"bus: NATS unavailable"}`, "Retry-After", "3"),
			stream("event: resync\ndata: {\"type\":\"resync\"}\n\nid: 3-e\ndata: c\n\n", true),
		}}
		var retries []client.Retry
		f := newFollower(t, s, client.FollowerConfig{LastEventID: "0-e", OnRetry: func(r client.Retry) { retries = append(retries, r) }})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		var got []client.Frame
		start := time.Now()
		err := f.Follow(ctx, func(fr client.Frame) error {
			got = append(got, fr)
			if fr.Data == "c" {
				cancel()
			}
			return nil
		})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Follow() = %v, want context.Canceled", err)
		}
		want := []client.Frame{{ID: "1-e", Data: "a"}, {ID: "2-e", Data: "b"}, {Event: "resync", Data: `{"type":"resync"}`}, {ID: "3-e", Data: "c"}}
		if !slices.Equal(got, want) {
			t.Errorf("frames %+v, want %+v", got, want)
		}
		if ids := s.header("Last-Event-ID"); !slices.Equal(ids, []string{"0-e", "2-e", "2-e", "2-e"}) {
			t.Errorf("Last-Event-ID of the requests %q, want 0-e, then 2-e three times", ids)
		}
		if auth := s.header("Authorization"); auth[0] != "Bearer tok" || auth[3] != "Bearer tok" {
			t.Errorf("Authorization %q, want Bearer tok", auth)
		}
		if len(retries) != 3 {
			t.Fatalf("retries %+v, want 3", retries)
		}
		var answer *client.HTTPError
		for i, w := range []struct {
			is      func(error) bool
			wait    time.Duration
			attempt int
		}{
			{func(err error) bool { return errors.Is(err, client.ErrStreamEnded) }, 250 * time.Millisecond, 1},
			{func(err error) bool { return errors.Is(err, refused) }, 500 * time.Millisecond, 2},
			{func(err error) bool { return errors.As(err, &answer) && answer.StatusCode == 503 }, 3 * time.Second, 3},
		} {
			if r := retries[i]; !w.is(r.Err) || r.Wait != w.wait || r.Attempt != w.attempt || r.LastEventID != "2-e" {
				t.Errorf("retry %d = %+v, want a wait of %s, attempt %d, after 2-e", i, r, w.wait, w.attempt)
			}
		}
		if took, want := time.Since(start), 3750*time.Millisecond; took != want {
			t.Errorf("Follow took %s, want the waits: %s", took, want)
		}
		if id := f.LastEventID(); id != "3-e" {
			t.Errorf("LastEventID() = %q, want 3-e", id)
		}
	})
}

// TestFollowBackoff: connections that deliver no event back off, doubling up to MaxBackoff,
// until MaxRetries; one that delivers an event (a frame with an id) starts again from
// MinBackoff.
func TestFollowBackoff(t *testing.T) {
	tests := []struct {
		name     string
		cfg      client.FollowerConfig
		answers  []func(*http.Request) (*http.Response, error)
		want     []time.Duration
		attempts []int
	}{
		{
			name:     "defaults",
			cfg:      client.FollowerConfig{MaxRetries: 7},
			answers:  []func(*http.Request) (*http.Response, error){answer(500, `{"error":"boom"}`)},
			want:     []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second},
			attempts: []int{1, 2, 3, 4, 5, 6, 7},
		},
		{
			name:     "bounds",
			cfg:      client.FollowerConfig{MinBackoff: time.Second, MaxBackoff: 3 * time.Second, MaxRetries: 4},
			answers:  []func(*http.Request) (*http.Response, error){answer(502, "bad gateway")},
			want:     []time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 3 * time.Second},
			attempts: []int{1, 2, 3, 4},
		},
		{
			name: "a frame resets the backoff",
			cfg:  client.FollowerConfig{MaxRetries: 2},
			answers: []func(*http.Request) (*http.Response, error){
				answer(500, "x"), answer(500, "x"), stream("id: 1\ndata: a\n\n", false), answer(500, "x"), answer(500, "x"),
			},
			want:     []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond},
			attempts: []int{1, 2, 1, 2},
		},
		{
			name: "frames without an id are no progress",
			cfg:  client.FollowerConfig{MaxRetries: 3},
			answers: []func(*http.Request) (*http.Response, error){
				answer(500, "x"), stream("event: resync\ndata: {}\n\n: heartbeat\n\n", false), answer(500, "x"),
			},
			want:     []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second},
			attempts: []int{1, 2, 3},
		},
		{
			name:     "Retry-After never shortens the backoff",
			cfg:      client.FollowerConfig{MinBackoff: 2 * time.Minute, MaxBackoff: 5 * time.Minute, MaxRetries: 1},
			answers:  []func(*http.Request) (*http.Response, error){answer(503, "{}", "Retry-After", "86400")},
			want:     []time.Duration{2 * time.Minute},
			attempts: []int{1},
		},
		{
			name:     "Retry-After is bounded",
			cfg:      client.FollowerConfig{MaxRetries: 1},
			answers:  []func(*http.Request) (*http.Response, error){answer(503, "{}", "Retry-After", "86400")},
			want:     []time.Duration{time.Minute},
			attempts: []int{1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var waits []time.Duration
				var attempts []int
				tt.cfg.OnRetry = func(r client.Retry) {
					waits = append(waits, r.Wait)
					attempts = append(attempts, r.Attempt)
				}
				s := &script{answers: tt.answers}
				err := newFollower(t, s, tt.cfg).Follow(t.Context(), func(client.Frame) error { return nil })
				var answer *client.HTTPError
				if !errors.As(err, &answer) || answer.StatusCode < 500 {
					t.Fatalf("Follow() = %v, want the last 5xx once MaxRetries ran out", err)
				}
				if !slices.Equal(waits, tt.want) || !slices.Equal(attempts, tt.attempts) {
					t.Errorf("waits %v, attempts %v; want %v, %v", waits, attempts, tt.want, tt.attempts)
				}
				if n := len(s.requests); n != len(tt.want)+1 {
					t.Errorf("%d requests, want %d", n, len(tt.want)+1)
				}
			})
		})
	}
}

// TestFollowFinal: a 4xx answer and fn's error end Follow at once, without a retry.
func TestFollowFinal(t *testing.T) {
	fnFailed := errors.New("printing failed")
	tests := []struct {
		name    string
		answer  func(*http.Request) (*http.Response, error)
		check   func(error) bool
		message string // the error's text, when checked
		lastID  string
	}{
		{
			name:   "400 with a field",
			answer: answer(400, `{"error":"routing: invalid cursor","field":"last_event_id"}`),
			check: func(err error) bool {
				var a *client.HTTPError
				return errors.As(err, &a) && a.StatusCode == 400 && a.Field == "last_event_id"
			},
			message: "eventsd answered 400 Bad Request: routing: invalid cursor (field last_event_id)",
			lastID:  "0-e",
		},
		{
			name:    "401",
			answer:  answer(401, `{"error":"token expired"}`),
			check:   func(err error) bool { var a *client.HTTPError; return errors.As(err, &a) && a.StatusCode == 401 },
			message: "eventsd answered 401 Unauthorized: token expired",
			lastID:  "0-e",
		},
		{
			name:   "429 despite Retry-After",
			answer: answer(429, `{"error":"too many streams: per user"}`, "Retry-After", "5"),
			check: func(err error) bool {
				var a *client.HTTPError
				return errors.As(err, &a) && a.StatusCode == 429 && a.RetryAfter == 5*time.Second
			},
			lastID: "0-e",
		},
		{
			name:   "fn's error, unchanged",
			answer: stream("id: 1-e\ndata: a\n\nid: 2-e\ndata: fail\n\n", true),
			check:  func(err error) bool { return err == fnFailed },
			lastID: "1-e", // the frame fn failed on was not received
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := &script{answers: []func(*http.Request) (*http.Response, error){tt.answer}}
				retried := false
				f := newFollower(t, s, client.FollowerConfig{LastEventID: "0-e", OnRetry: func(client.Retry) { retried = true }})
				err := f.Follow(t.Context(), func(fr client.Frame) error {
					if fr.Data == "fail" {
						return fnFailed
					}
					return nil
				})
				if !tt.check(err) || (tt.message != "" && err.Error() != tt.message) {
					t.Fatalf("Follow() = %v, want the %s error %q", err, tt.name, tt.message)
				}
				if retried || len(s.requests) != 1 {
					t.Errorf("%d requests, retried %v: want one request and no retry", len(s.requests), retried)
				}
				if id := f.LastEventID(); id != tt.lastID {
					t.Errorf("LastEventID() = %q, want %q", id, tt.lastID)
				}
			})
		})
	}
}

// TestFollowEndsWithContext: a context that ends during a backoff wait ends Follow at once.
func TestFollowEndsWithContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &script{answers: []func(*http.Request) (*http.Response, error){answer(503, "{}")}}
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		err := newFollower(t, s, client.FollowerConfig{}).Follow(ctx, func(client.Frame) error { return nil })
		if !errors.Is(err, context.DeadlineExceeded) || len(s.requests) != 1 {
			t.Fatalf("Follow() = %v after %d requests, want context.DeadlineExceeded after 1", err, len(s.requests))
		}
	})
}

func TestNewFollowerRefuses(t *testing.T) {
	ok := client.FollowerConfig{URL: "http://127.0.0.1:8080/api/v1/stream/agui", Token: "tok"}
	tests := []struct {
		name string
		edit func(*client.FollowerConfig)
	}{
		{"no URL", func(c *client.FollowerConfig) { c.URL = "" }},
		{"no scheme", func(c *client.FollowerConfig) { c.URL = "127.0.0.1:8080/api/v1/stream/agui" }},
		{"another scheme", func(c *client.FollowerConfig) { c.URL = "nats://127.0.0.1:4222" }},
		{"no host", func(c *client.FollowerConfig) { c.URL = "http:///api/v1/stream/agui" }},
		{"no token", func(c *client.FollowerConfig) { c.Token = "" }},
		{"a client timeout", func(c *client.FollowerConfig) { c.HTTPClient = &http.Client{Timeout: time.Minute} }},
		{"negative MaxLine", func(c *client.FollowerConfig) { c.MaxLine = -1 }},
		{"negative MaxRetries", func(c *client.FollowerConfig) { c.MaxRetries = -1 }},
		{"MinBackoff over MaxBackoff", func(c *client.FollowerConfig) { c.MinBackoff, c.MaxBackoff = time.Minute, time.Second }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.edit(&cfg)
			if _, err := client.NewFollower(cfg); !errors.Is(err, client.ErrInvalidConfig) {
				t.Errorf("NewFollower(%+v) = %v, want ErrInvalidConfig", cfg, err)
			}
		})
	}
	if _, err := client.NewFollower(ok); err != nil {
		t.Errorf("NewFollower(%+v) = %v, want a follower", ok, err)
	}
}

func TestCheckResponse(t *testing.T) {
	future := time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)
	tests := []struct {
		name   string
		status int
		header http.Header
		body   string
		want   string        // Error(); "" for nil
		after  time.Duration // RetryAfter, or -1 for "about an hour"
	}{
		{"ok", 200, nil, "", "", 0},
		{"JSON", 400, nil, `{"error":"bad type","field":"types"}`, "eventsd answered 400 Bad Request: bad type (field types)", 0},
		{"not JSON", 502, nil, "  <html>bad gateway</html>\n", "eventsd answered 502 Bad Gateway: <html>bad gateway</html>", 0},
		{"JSON without error", 500, nil, `{"field":"x"}`, `eventsd answered 500 Internal Server Error: {"field":"x"} (field x)`, 0},
		{"Retry-After seconds", 503, http.Header{"Retry-After": {"1"}}, `{"error":"e"}`, "eventsd answered 503 Service Unavailable: e", time.Second},
		{"Retry-After date", 503, http.Header{"Retry-After": {future}}, `{"error":"e"}`, "eventsd answered 503 Service Unavailable: e", -1},
		{"Retry-After past", 503, http.Header{"Retry-After": {"Mon, 02 Jan 2006 15:04:05 GMT"}}, `{"error":"e"}`, "eventsd answered 503 Service Unavailable: e", 0},
		{"Retry-After garbage", 503, http.Header{"Retry-After": {"soon"}}, `{"error":"e"}`, "eventsd answered 503 Service Unavailable: e", 0},
		{"Retry-After negative", 503, http.Header{"Retry-After": {"-5"}}, `{"error":"e"}`, "eventsd answered 503 Service Unavailable: e", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := &http.Response{StatusCode: tt.status, Status: "", Header: tt.header, Body: io.NopCloser(strings.NewReader(tt.body))}
			if resp.Header == nil {
				resp.Header = http.Header{}
			}
			err := client.CheckResponse(resp)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("CheckResponse(%d) = %v, want nil", tt.status, err)
				}
				return
			}
			var answer *client.HTTPError
			if !errors.As(err, &answer) || err.Error() != tt.want {
				t.Fatalf("CheckResponse(%d, %q) = %v, want %q", tt.status, tt.body, err, tt.want)
			}
			if tt.after >= 0 && answer.RetryAfter != tt.after || tt.after < 0 && (answer.RetryAfter < 59*time.Minute || answer.RetryAfter > time.Hour) {
				t.Errorf("RetryAfter = %s, want %s", answer.RetryAfter, tt.after)
			}
		})
	}
}
