package bus

import (
	"context"
	"time"

	"github.com/eventsd/eventsd/routing"
	"github.com/eventsd/eventsd/threads"
)

// threadOpening works out where a thread feed starts and the prelude it opens with (see
// routing.Subscription.Thread): the thread's prelude as of its view for a new connection, or
// for one whose cursor cannot be honoured (of another life of the stream, expired, or older
// than the runs the view remembers); for one resuming inside a run, that run's RUN_STARTED and
// a start for what was open at its cursor; nothing for one resuming between runs. The
// prelude's events carry the cursor the feed continues from.
func (b *Bus) threadOpening(ctx context.Context, sub routing.Subscription, o *opening, pos position) error {
	view, at, err := b.threadView(ctx, sub.User, sub.Thread, o.epoch)
	if err != nil {
		return err
	}
	var prelude [][]byte
	c := sub.Cursor
	resume := c != nil && c.Epoch == o.epoch && c.Seq <= pos.last && c.Seq+1 >= pos.first
	if resume {
		var ok bool
		if prelude, ok, err = b.resumePrelude(ctx, sub, o, view, c.Seq); err != nil {
			return err
		}
		resume = ok
	}
	if resume {
		at = c.Seq
	} else if prelude, err = view.Prelude(time.Now()); err != nil {
		return err
	}
	tok, _ := routing.UserToken(sub.User) // sub.Stream checked it
	cursor := routing.Cursor{Seq: at, Epoch: o.epoch}
	for _, data := range prelude {
		o.prelude = append(o.prelude, Event{Subject: "agui." + tok + ".PRELUDE", Cursor: cursor, Data: data})
	}
	sub.Cursor, sub.Since = &cursor, time.Time{}
	o.start, err = startOf(sub, pos, nil)
	o.start.notice = nil // the prelude says it: a resync frame would come before RUN_STARTED
	return err
}

// resumePrelude is the prelude of a connection resuming at seq within a run the view remembers:
// the run's RUN_STARTED and a start for every step, message, tool call and reasoning span open
// at seq, read again from the stream. It reports false when seq is older than every run the
// view remembers, which a new connection's prelude must stand in for.
func (b *Bus) resumePrelude(ctx context.Context, sub routing.Subscription, o *opening, view *threads.View, seq uint64) ([][]byte, bool, error) {
	span, inRun, known := view.RunAt(seq)
	if !known {
		return nil, false, nil
	}
	if !inRun {
		return nil, true, nil
	}
	past := &threads.View{ThreadID: sub.Thread}
	tok, _ := routing.UserToken(sub.User)
	cfg := start{from: span.Start}.config([]string{"agui." + tok + ".*"}, b.cfg.InactiveThreshold)
	r, err := b.openReader(ctx, o.stream, cfg, o.epoch, 0)
	if err != nil {
		return nil, false, err
	}
	defer r.Close()
	for {
		st, err := r.Next(ctx)
		if err != nil {
			return nil, false, err
		}
		if st.Cursor.Seq > seq {
			break
		}
		_, _ = past.Apply(st.Data, st.Cursor.Seq, o.epoch, threads.MaxViewBytes)
		if st.Cursor.Seq == seq || st.Pending == 0 {
			break
		}
	}
	prelude, err := past.Reopen(time.Now())
	return prelude, err == nil, err
}
