package sse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventsd/eventsd/auth"
	"github.com/eventsd/eventsd/bus"
	"github.com/eventsd/eventsd/event"
	"github.com/eventsd/eventsd/routing"
	"github.com/eventsd/eventsd/tasks"
)

// fakeFeed is a feed that holds its events from the start and then ends with err.
type fakeFeed struct {
	notice  *bus.Notice
	prelude []bus.Event
	epoch   uint64
	err     error

	mu     sync.Mutex
	events []bus.Event
	closed bool
}

func (f *fakeFeed) Take(dst []bus.Event, max int) ([]bus.Event, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := min(len(f.events), max)
	dst = append(dst, f.events[:n]...)
	f.events = f.events[n:]
	return dst, len(f.events) > 0
}

func (f *fakeFeed) Notify(fn func()) { fn() } // events wait, or the feed has ended

func (f *fakeFeed) Err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	return f.err
}

func (f *fakeFeed) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
}

func (f *fakeFeed) isClosed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closed
}

func (f *fakeFeed) Notice() *bus.Notice  { return f.notice }
func (f *fakeFeed) Prelude() []bus.Event { return f.prelude }
func (f *fakeFeed) Epoch() uint64        { return f.epoch }

// fakeBroker is a Broker for a Handler whose feeds come from elsewhere.
type fakeBroker struct{}

func (fakeBroker) Subscribe(context.Context, routing.Subscription) (*bus.Feed, error) {
	return nil, errors.New("fakeBroker: no feeds")
}
func (fakeBroker) Publish(context.Context, string, []byte, string) (bus.Ack, error) {
	return bus.Ack{}, errors.New("fakeBroker: no publishing")
}
func (fakeBroker) EnqueueRun(context.Context, bus.RunRequest, time.Duration) (*bus.Run, error) {
	return nil, errors.New("fakeBroker: no runs")
}
func (fakeBroker) PublishRunEvent(context.Context, string, string, string, event.Event) (bus.Ack, error) {
	return bus.Ack{}, errors.New("fakeBroker: no publishing")
}
func (fakeBroker) TaskView(context.Context, string, string) (*tasks.View, uint64, error) {
	return nil, 0, errors.New("fakeBroker: no tasks")
}
func (fakeBroker) PublishTaskEvent(context.Context, string, string, string, event.Event, string) (bus.Ack, error) {
	return bus.Ack{}, errors.New("fakeBroker: no publishing")
}
func (fakeBroker) CancelTask(context.Context, string, string) (bool, error) {
	return false, errors.New("fakeBroker: no tasks")
}
func (fakeBroker) AgentDescription(context.Context, routing.Queue, string) (string, error) {
	return "", errors.New("fakeBroker: no agents")
}
func (fakeBroker) Ready(context.Context) error          { return nil }
func (fakeBroker) ServeConnections(func() []byte) error { return nil }
func (fakeBroker) GatherConnections(context.Context, time.Duration) ([][]byte, error) {
	return nil, nil
}

// closedReasons hands over why each stream closed.
type closedReasons struct {
	NopMetrics
	reasons chan string
}

func (m closedReasons) StreamClosed(_ routing.Channel, reason string) { m.reasons <- reason }

// TestStreamRestarts drives a stream with fake feeds, over a taken-over HTTP/1.1 connection and
// over HTTP/2: a feed that ends for its stream was recreated is followed by a new one from the
// last event sent (or the cursor the stream opened with, or the first event of the new
// stream), whose resync frame goes out on the same connection; a stream whose new feeds keep
// ending without an event closes after maxRestarts, as does one whose new feed cannot open.
func TestStreamRestarts(t *testing.T) {
	const oldEpoch, newEpoch = 1000, 2000
	ev := func(seq, epoch uint64, data string) bus.Event {
		return bus.Event{Subject: "a2a.alice.X", Cursor: routing.Cursor{Seq: seq, Epoch: epoch}, Data: []byte(data)}
	}
	frame := func(e bus.Event) string { return fmt.Sprintf("id: %s\ndata: %s\n\n", e.Cursor, e.Data) }
	resync := func(from string) string {
		return `event: resync` + "\n" + `data: {"type":"resync","reason":"stream_recreated","last_event_id":"` + from + `","first_seq":1}` + "\n\n"
	}
	recreated := fmt.Errorf("%w: A2A", bus.ErrStreamRecreated)
	// reopened is the feed that follows a recreated stream, from cursor.
	reopened := func(cursor string, err error, evs ...bus.Event) *fakeFeed {
		c, _ := routing.ParseCursor(cursor)
		return &fakeFeed{notice: &bus.Notice{Reason: bus.NoticeStreamRecreated, Cursor: c, First: 1}, epoch: newEpoch, err: err, events: evs}
	}
	first, next := ev(1, oldEpoch, `{"a":1}`), ev(1, newEpoch, `{"b":1}`)
	from1, from0 := first.Cursor.String(), routing.Cursor{Epoch: oldEpoch}.String()
	tests := []struct {
		name        string
		lastEventID string
		feeds       []*fakeFeed // what each Subscribe returns in turn; past them, an error
		wantCursors []string    // of each Subscribe after the first
		wantBody    string
		wantReason  string
	}{
		{"after an event", "",
			[]*fakeFeed{{epoch: oldEpoch, err: recreated, events: []bus.Event{first}}, reopened(from1, nil, next)},
			[]string{from1}, frame(first) + resync(from1) + frame(next), "feed"},
		{"nothing sent, opened live", "",
			[]*fakeFeed{{epoch: oldEpoch, err: recreated}, reopened(from0, nil, next)},
			[]string{from0}, resync(from0) + frame(next), "feed"},
		{"nothing sent, opened with a cursor", "5-rs",
			[]*fakeFeed{{epoch: oldEpoch, err: recreated}, reopened("5-rs", nil, next)},
			[]string{"5-rs"}, resync("5-rs") + frame(next), "feed"},
		{"new feeds that deliver nothing", "",
			append([]*fakeFeed{{epoch: oldEpoch, err: recreated, events: []bus.Event{first}}},
				slices.Repeat([]*fakeFeed{reopened(from1, recreated)}, maxRestarts)...),
			slices.Repeat([]string{from1}, maxRestarts), frame(first) + strings.Repeat(resync(from1), maxRestarts), "nats"},
		{"a new feed that cannot open", "",
			[]*fakeFeed{{epoch: oldEpoch, err: recreated, events: []bus.Event{first}}},
			[]string{from1}, frame(first), "nats"},
		{"a feed that ends otherwise", "",
			[]*fakeFeed{{epoch: oldEpoch, err: fmt.Errorf("%w: connection lost", bus.ErrUnavailable), events: []bus.Event{first}}},
			nil, frame(first), "nats"},
	}
	for _, http2 := range []bool{false, true} {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s/http2=%v", tt.name, http2), func(t *testing.T) {
				// The cases' feeds are used once per run.
				feeds := make([]*fakeFeed, len(tt.feeds))
				for i, f := range tt.feeds {
					feeds[i] = &fakeFeed{notice: f.notice, epoch: f.epoch, err: f.err, events: f.events}
				}
				body, cursors, reason := serveFakes(t, http2, tt.lastEventID, feeds)
				if body != tt.wantBody {
					t.Errorf("body = %q, want %q", body, tt.wantBody)
				}
				if fmt.Sprint(cursors) != fmt.Sprint(tt.wantCursors) {
					t.Errorf("reopened from %v, want %v", cursors, tt.wantCursors)
				}
				if reason != tt.wantReason {
					t.Errorf("closed for %q, want %q", reason, tt.wantReason)
				}
				for i, f := range feeds {
					if !f.isClosed() {
						t.Errorf("feed %d left open", i)
					}
				}
			})
		}
	}
}

// serveFakes serves one a2a stream whose Subscribes return feeds in turn, until it closes, and
// returns its body, the cursors of the Subscribes after the first, and why it closed.
func serveFakes(t *testing.T, http2 bool, lastEventID string, feeds []*fakeFeed) (body string, cursors []string, reason string) {
	t.Helper()
	secret := []byte("restart-test")
	m := closedReasons{reasons: make(chan string, 1)}
	h, err := NewHandler(Config{Broker: fakeBroker{}, Verifier: auth.NewVerifier(secret), Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	calls := 0
	h.subscribe = func(_ context.Context, sub routing.Subscription) (feed, error) {
		mu.Lock()
		defer mu.Unlock()
		if calls++; calls > 1 {
			cursors = append(cursors, sub.Cursor.String())
		}
		if calls > len(feeds) {
			return nil, fmt.Errorf("%w: no more feeds", bus.ErrUnavailable)
		}
		return feeds[calls-1], nil
	}
	ts := httptest.NewUnstartedServer(h)
	ts.EnableHTTP2 = http2
	ts.StartTLS()
	t.Cleanup(ts.Close)
	t.Cleanup(h.Close)
	tok, err := auth.Mint(secret, "alice", nil, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/api/v1/stream/a2a", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if got := resp.ProtoMajor == 2; got != http2 || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET over %s: %d, want 200 over HTTP/2: %v", resp.Proto, resp.StatusCode, http2)
	}
	b, err := io.ReadAll(resp.Body) // the stream ends by itself
	if err != nil {
		t.Fatal(err)
	}
	reason = <-m.reasons
	mu.Lock()
	defer mu.Unlock()
	return string(b), cursors, reason
}
