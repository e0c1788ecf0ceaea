package bus

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/eventsd/eventsd/routing"
)

// Notice reasons: why a feed does not continue exactly after the client's cursor.
const (
	// NoticeStreamRecreated: the cursor comes from an earlier life of the stream (it was deleted
	// and created again, or the cursor belongs to another stream); the feed starts at the
	// stream's first event.
	NoticeStreamRecreated = "stream_recreated"
	// NoticeCursorExpired: events after the cursor are no longer retained; the feed starts at
	// the oldest event the stream still holds.
	NoticeCursorExpired = "cursor_expired"
)

// Notice tells a resuming client that it may have missed events.
type Notice struct {
	Reason string
	Cursor routing.Cursor // the cursor the client asked for
	First  uint64         // the first sequence the stream still holds
}

// position is what startOf needs to know of a stream.
type position struct {
	epoch       uint64
	first, last uint64 // the first and last sequence it holds
}

// start is where a feed's events begin in its stream.
type start struct {
	// live: from the next event stored on; on the shared path the shared feed alone serves it.
	live bool
	// from is the first sequence to read. 0: from the first event stored at or after since,
	// or, with no since, from the stream's first event.
	from   uint64
	since  time.Time
	notice *Notice
	// skipUntil: up to this sequence only the events that can change a contexts view are sent
	// (the feed opens with a snapshot that reflects the rest).
	skipUntil uint64
}

// startOf works out where a feed for sub starts in a stream at pos. snapshot, when the feed
// opens with a contexts snapshot, is the sequence the snapshot reflects. Nothing else goes in:
// the answer is the same for the same question.
func startOf(sub routing.Subscription, pos position, snapshot *uint64) (start, error) {
	c := sub.Cursor
	switch {
	case snapshot != nil:
		// Events after the snapshot follow it. Of those stored before this connection, only the
		// context events the snapshot does not reflect yet are sent; the rest are history a new
		// connection does not get.
		return start{from: *snapshot + 1, skipUntil: max(pos.last, *snapshot)}, nil
	case c != nil && c.Epoch != pos.epoch:
		return start{notice: &Notice{Reason: NoticeStreamRecreated, Cursor: *c, First: pos.first}}, nil
	case c != nil && c.Seq > pos.last:
		return start{}, fmt.Errorf("%w: cursor %s, last sequence %d", ErrCursorAhead, c, pos.last)
	case c != nil && c.Seq+1 < pos.first:
		return start{notice: &Notice{Reason: NoticeCursorExpired, Cursor: *c, First: pos.first}}, nil
	case c != nil:
		return start{from: c.Seq + 1}, nil
	case !sub.Since.IsZero():
		return start{since: sub.Since}, nil
	}
	// What is new from here, as a sequence (see newFrom).
	return start{live: true, from: pos.last + 1}, nil
}

// config is the ordered consumer that reads a feed's events from s.
func (s start) config(filters []string, inactive time.Duration) jetstream.OrderedConsumerConfig {
	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects:    filters,
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		InactiveThreshold: inactive,
		MaxResetAttempts:  maxResets,
		NamePrefix:        "sse-" + nuid.Next(),
	}
	switch {
	case s.from > 0:
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, s.from
	case !s.since.IsZero():
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &s.since
	}
	return cfg
}

// newFrom is the sequence of the next event the stream will store. A consumer of new events
// starts there rather than with DeliverNewPolicy: an ordered consumer recreated before it has
// delivered anything (its NATS node went away) applies its policy again, and "new" would then
// skip what was stored in between.
func newFrom(info *jetstream.StreamInfo) uint64 {
	return info.State.LastSeq + 1
}

// opening is what Subscribe learns before it opens a feed.
type opening struct {
	stream  jetstream.Stream
	epoch   uint64
	start   start
	prelude []Event
}

// locate reads the stream a feed for sub follows, and the contexts snapshot it opens with if
// it wants one, and works out where it starts.
func (b *Bus) locate(ctx context.Context, sub routing.Subscription, name string) (opening, error) {
	var snapshot []byte
	var snapshotSeq uint64
	var err error
	wanted, known := b.snapshotWanted(sub), b.knownEpoch(name)
	if wanted {
		// Before the stream's state is read, so that the state's last sequence is at or past
		// the snapshot's.
		if snapshot, snapshotSeq, err = b.snapshot(ctx, sub.User, known); err != nil {
			return opening{}, err
		}
	}
	s, err := b.js.Stream(ctx, name)
	if err != nil {
		return opening{}, b.wrap("stream "+name, err)
	}
	info := s.CachedInfo()
	o := opening{stream: s, epoch: uint64(info.Created.UnixNano())}
	if wanted && known != o.epoch {
		// The stream was recreated since the bus last looked: the snapshot must be of this one.
		if snapshot, snapshotSeq, err = b.snapshot(ctx, sub.User, o.epoch); err != nil {
			return opening{}, err
		}
	}
	pos := position{epoch: o.epoch, first: info.State.FirstSeq, last: info.State.LastSeq}
	if sub.Thread != "" {
		return o, b.threadOpening(ctx, sub, &o, pos)
	}
	var at *uint64
	if wanted {
		tok, _ := routing.UserToken(sub.User) // sub.Stream checked it
		o.prelude = []Event{{
			Subject: "context.system." + tok + ".CONTEXTS_SNAPSHOT",
			Cursor:  routing.Cursor{Seq: snapshotSeq, Epoch: o.epoch},
			Data:    snapshot,
		}}
		at = &snapshotSeq
	}
	o.start, err = startOf(sub, pos, at)
	return o, err
}
