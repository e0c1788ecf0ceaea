package sse

import (
	"sync"
	"time"

	"github.com/eventsd/eventsd/routing"
)

// Metrics receives what the handler counts. Every method must be safe for concurrent use;
// NopMetrics is the default.
type Metrics interface {
	// StreamOpened and StreamClosed bracket one SSE connection.
	StreamOpened(c routing.Channel)
	StreamClosed(c routing.Channel, reason string)
	// Delivered counts n frames written, Skipped stored events not written (reason:
	// "not_json", "too_large", ...), Heartbeats keep-alive frames.
	Delivered(c routing.Channel, n int)
	Skipped(c routing.Channel, reason string)
	Heartbeat(c routing.Channel)
	// Published counts ingress requests by outcome ("published", "rejected", "failed") and
	// observes how long a successful one took.
	Published(c routing.Channel, outcome string, took time.Duration)
}

// NopMetrics counts nothing.
type NopMetrics struct{}

// StreamOpened implements Metrics.
func (NopMetrics) StreamOpened(routing.Channel) {}

// StreamClosed implements Metrics.
func (NopMetrics) StreamClosed(routing.Channel, string) {}

// Delivered implements Metrics.
func (NopMetrics) Delivered(routing.Channel, int) {}

// Skipped implements Metrics.
func (NopMetrics) Skipped(routing.Channel, string) {}

// Heartbeat implements Metrics.
func (NopMetrics) Heartbeat(routing.Channel) {}

// Published implements Metrics.
func (NopMetrics) Published(routing.Channel, string, time.Duration) {}

// logLimiter lets one log line per key through per interval, so a producer that floods a
// subject with bad payloads cannot flood the log.
type logLimiter struct {
	interval time.Duration
	mu       sync.Mutex
	last     map[string]time.Time
}

func newLogLimiter(interval time.Duration) *logLimiter {
	return &logLimiter{interval: interval, last: map[string]time.Time{}}
}

// allow reports whether key may be logged now.
func (l *logLimiter) allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t, ok := l.last[key]; ok && now.Sub(t) < l.interval {
		return false
	}
	if len(l.last) >= 10_000 { // forget keys that are quiet, so the map stays bounded
		for k, t := range l.last {
			if now.Sub(t) >= l.interval {
				delete(l.last, k)
			}
		}
		if len(l.last) >= 10_000 {
			return false
		}
	}
	l.last[key] = now
	return true
}
