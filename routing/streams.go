package routing

import (
	"fmt"
	"slices"
	"time"
)

// SubjectConnections is the core NATS subject on which every eventsd node answers with its
// open streams per user. No stream captures it.
const SubjectConnections = "eventsd.connections"

// BucketContexts is the key-value bucket that holds each user's contexts view.
const BucketContexts = "CONTEXTS"

// BucketThreads is the key-value bucket that holds the view of each AG-UI thread.
const BucketThreads = "THREADS"

// BucketTasks is the key-value bucket that holds the view of each A2A task.
const BucketTasks = "TASKS"

// Mapping copies every event stored under From into the CONTEXT stream under To. Both are
// subject patterns ending in ">", and the tokens matched by ">" are carried over unchanged.
type Mapping struct {
	Stream string // the stream that holds the source events
	From   string
	To     string
}

// Mappings is the context fan-in: AG-UI and A2A events also appear, durably and in their source
// order, on the contexts channel.
var Mappings = []Mapping{
	{Stream: StreamAGUI, From: "agui.>", To: "context.agui.>"},
	{Stream: StreamA2A, From: "a2a.>", To: "context.a2a.>"},
}

// StreamOptions are the operator's settings shared by every stream.
type StreamOptions struct {
	MaxAge       time.Duration // how long an event is kept; 0 for ever
	MaxBytes     int64         // size limit per stream in bytes, oldest events discarded first; 0 or less for none
	Replicas     int           // copies of each stream on a cluster
	Duplicates   time.Duration // window in which Nats-Msg-Id de-duplicates
	MaxConsumers int           // consumers per stream; one per open SSE connection
	RunTimeout   time.Duration // how long a run request waits for a runtime; RUNS keeps requests at least this long
}

// Bounds of the RUNS work queue, which holds the run requests that wait for a runtime: at most
// MaxRunQueueBytes in all (whatever the other streams' byte limit), and MaxRunsWaiting for one
// agent and user. Past either, a new request is refused.
const (
	MaxRunQueueBytes = 64 << 20
	MaxRunsWaiting   = 16
)

// DefaultStreamOptions are the settings used where the operator sets none.
var DefaultStreamOptions = StreamOptions{
	MaxAge:       24 * time.Hour,
	MaxBytes:     1 << 30,
	Replicas:     1,
	Duplicates:   2 * time.Minute,
	MaxConsumers: 100_000,
	RunTimeout:   30 * time.Second,
}

// StreamSpec describes one stream: what it captures and what it copies from other streams.
// Streams are file-backed and discard the oldest events when full, except work queues.
type StreamSpec struct {
	Name     string
	Subjects []string
	Sources  []Mapping
	// WorkQueue: a message is removed once a consumer acknowledges it, and a full stream refuses
	// new messages rather than dropping those still waiting.
	WorkQueue bool
	StreamOptions
}

// Streams returns the streams of the event plane with the given options: the four event
// streams and the RUNS work queue. Each captures only subjects of the form
// <channel>.<user token>.<TYPE> (runs.<agent>.<user token> and tasks.<agent>.<user token>), so that a JetStream publish to any
// other subject under a channel's prefix is refused rather than stored.
func Streams(o StreamOptions) []StreamSpec {
	runs := o
	if runs.MaxAge > 0 && runs.MaxAge < o.RunTimeout {
		runs.MaxAge = o.RunTimeout // a request must outlive its wait for a runtime
	}
	// Requests wait only until a runtime claims them: a small queue, so that it adds little to
	// the storage the server reserves for the streams.
	if runs.MaxBytes <= 0 || runs.MaxBytes > MaxRunQueueBytes {
		runs.MaxBytes = MaxRunQueueBytes
	}
	return []StreamSpec{
		{Name: StreamAGUI, Subjects: []string{"agui.*.*"}, StreamOptions: o},
		{Name: StreamA2A, Subjects: []string{"a2a.*.*"}, StreamOptions: o},
		{Name: StreamContext, Subjects: []string{"context.system.*.*"}, Sources: Mappings, StreamOptions: o},
		{Name: StreamAnalytics, Subjects: []string{"analytics.*.*"}, StreamOptions: o},
		{Name: StreamRuns, Subjects: []string{string(Runs) + ".*.*", string(Tasks) + ".*.*"}, WorkQueue: true, StreamOptions: runs},
	}
}

// Subscription is what one SSE connection follows: one channel of one user (or of every user,
// for admins), optionally only some event types, from after Cursor, else from Since, else only
// events published from now on.
type Subscription struct {
	Channel  Channel
	User     string
	AllUsers bool
	Types    []string
	Cursor   *Cursor
	Since    time.Time
	// Thread, on the agui channel, follows one AG-UI thread of the user: the feed opens with the
	// thread's prelude (from its view) and goes on with the user's events, which the reader
	// keeps to the thread's.
	Thread string
}

// Stream returns the stream the subscription reads.
func (s Subscription) Stream() (string, error) {
	if _, err := ParseStreamChannel(string(s.Channel)); err != nil {
		return "", err
	}
	return StreamFor(s.Channel)
}

// Filters returns the subject filters that select exactly the subscription's events, no matter
// what the user id contains.
func (s Subscription) Filters() ([]string, error) {
	var prefix string
	switch s.Channel {
	case AGUI:
		prefix = "agui."
	case A2A:
		prefix = "a2a."
	case Contexts:
		prefix = "context.*."
	case Analytics:
		prefix = "analytics."
	default:
		return nil, fmt.Errorf("%w %q: want agui, a2a, contexts or analytics", ErrUnknownChannel, s.Channel)
	}
	tok := "*"
	if !s.AllUsers {
		var err error
		if tok, err = UserToken(s.User); err != nil {
			return nil, err
		}
	}
	prefix += tok + "."
	if len(s.Types) == 0 {
		return []string{prefix + "*"}, nil
	}
	filters := make([]string, 0, len(s.Types))
	for _, t := range s.Types {
		if err := ValidateType(t); err != nil {
			return nil, err
		}
		// JetStream rejects overlapping filters, so a repeated type is kept once.
		if f := prefix + t; !slices.Contains(filters, f) {
			filters = append(filters, f)
		}
	}
	return filters, nil
}
