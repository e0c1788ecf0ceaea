package bus

import (
	"context"
	"fmt"

	"github.com/eventsd/eventsd/fanout"
	"github.com/eventsd/eventsd/routing"
)

// Event is one stored event as a connection receives it.
type Event = fanout.Event

// SkipBadSubject is the Metrics.Skipped reason for a stored event whose subject is not
// <channel>.<user token>.<TYPE> (routing.ParseSubject): it names no user, so it reaches no one,
// whichever path would have delivered it.
const SkipBadSubject = "bad_subject"

// ErrClosed is what Feed.Next returns once a feed was closed or its context ended.
var ErrClosed = fanout.ErrClosed

// Feed is the ordered flow of one subscription's events. Its events come from a JetStream
// consumer of its own, from the node's shared feed, or from the first until it has caught up
// and then the second (package fanout). A live feed on the shared path has no goroutine and no
// memory of its own beyond a small struct until events arrive.
type Feed struct {
	sub     *fanout.Sub
	b       *Bus
	stream  string
	epoch   uint64
	notice  *Notice
	prelude []Event
}

// Epoch is the epoch of the stream the feed reads: the Epoch of every cursor it gives.
func (f *Feed) Epoch() uint64 { return f.epoch }

// Notice is set when the feed does not start right after the requested cursor.
func (f *Feed) Notice() *Notice { return f.notice }

// Prelude returns the events to send before the feed's own, computed when it opened: the
// CONTEXTS_SNAPSHOT system event of a contexts feed, whose events continue right after the
// sequence it reflects. Empty for other feeds.
func (f *Feed) Prelude() []Event { return f.prelude }

// Take appends up to max waiting events to dst, in stream order. more is false once the feed
// has ended and every event has been taken; Err then says why.
func (f *Feed) Take(dst []Event, max int) (_ []Event, more bool) { return f.sub.Take(dst, max) }

// Notify has fn called whenever, from then on, events wait or the feed has ended, and at once
// if that is so already: a consumer can follow many feeds without a goroutine waiting on each. fn may run with the shared feed's lock held: it must return
// quickly and must not call the feed's methods.
func (f *Feed) Notify(fn func()) { f.sub.Notify(fn) }

// Next waits for the feed's next event, for as long as ctx allows. Once the feed has ended it
// returns Err, or ErrClosed if the feed was closed or its context ended.
func (f *Feed) Next(ctx context.Context) (Event, error) { return f.sub.Next(ctx) }

// Err returns the error that ended the feed, or nil if it was closed or its context ended.
func (f *Feed) Err() error { return f.sub.Err() }

// Close stops the feed, deletes its consumer and waits until both are done. It is safe to call
// more than once.
func (f *Feed) Close() {
	f.sub.Close()
	f.b.mu.Lock()
	delete(f.b.feeds, f)
	f.b.mu.Unlock()
}

// Subscribe opens a feed for sub. When it returns without error the consumer exists on the
// server, so every event stored from then on reaches the feed. The feed ends when ctx is done or
// Close is called; the caller must call Close.
func (b *Bus) Subscribe(ctx context.Context, sub routing.Subscription) (*Feed, error) {
	name, err := sub.Stream()
	if err != nil {
		return nil, err
	}
	if !b.waitConnected(ctx) {
		return nil, fmt.Errorf("%w: subscribe: not connected", ErrUnavailable)
	}
	want, filters, err := b.want(sub, name)
	if err != nil {
		return nil, err
	}
	if sf := b.shared.running(name); sf != nil && sub.Cursor == nil && sub.Since.IsZero() && !b.snapshotWanted(sub) && sub.Thread == "" {
		// Live from now on a shared feed that is running: no consumer, no API call.
		want.Open = b.catchUpOpener(name, filters, sf.epoch)
		return b.track(&Feed{sub: sf.d.Join(ctx, want), b: b, stream: name, epoch: sf.epoch}), nil
	}
	select {
	case b.creating <- struct{}{}:
		defer func() { <-b.creating }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	o, err := b.locate(ctx, sub, name)
	if err != nil {
		return nil, err
	}
	f := &Feed{b: b, stream: name, epoch: o.epoch, notice: o.start.notice, prelude: o.prelude}
	want.Open = b.catchUpOpener(name, filters, o.epoch)
	if b.cfg.Delivery == DeliveryShared {
		f.sub, err = b.joinShared(ctx, name, o, want, filters)
	} else {
		var r fanout.Reader
		if r, err = b.openReader(ctx, o.stream, o.start.config(filters, b.cfg.InactiveThreshold), o.epoch, o.start.skipUntil); err == nil {
			f.sub = fanout.Follow(ctx, r, b.cfg.ReadAhead, b.wg.Go)
		}
	}
	if err != nil {
		return nil, err
	}
	return b.track(f), nil
}

// want is what a feed for sub follows on the stream name (but for Open, which needs the
// stream's epoch), and the subjects it filters.
func (b *Bus) want(sub routing.Subscription, name string) (fanout.Want, []string, error) {
	filters, err := sub.Filters()
	if err != nil {
		return fanout.Want{}, nil, err
	}
	tok := fanout.AllUsers
	if !sub.AllUsers {
		tok, _ = routing.UserToken(sub.User) // sub.Stream checked it
	}
	return fanout.Want{Token: tok, Types: sub.Types}, filters, nil
}

// track lists f for endFeeds and streamRecreated. A feed whose stream was recreated since the
// caller looked ends at once: its client resumes.
func (b *Bus) track(f *Feed) *Feed {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.feeds[f] = struct{}{}
	if b.staleEpoch(f.stream, f.epoch) {
		f.sub.End(fmt.Errorf("%w: %s", ErrStreamRecreated, f.stream))
	}
	return f
}
