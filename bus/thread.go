package bus

import (
	"context"
	"errors"
	"time"

	"github.com/eventsd/eventsd/routing"
	"github.com/eventsd/eventsd/threads"
)

// maxResumeReplay bounds the events a resuming thread stream reads again to learn what was open
// at its cursor; past it, the connection gets a new connection's prelude.
const maxResumeReplay = 20_000

// errResumeTooFar stops a resume replay past maxResumeReplay events.
var errResumeTooFar = errors.New("bus: resume too far back")

// threadOpening works out where a thread feed starts and the prelude it opens with (see
// routing.Subscription.Thread): the thread's prelude as of its view for a new connection, or
// for one whose cursor cannot be honoured (of another life of the stream, expired, or older
// than the runs the view remembers); for one resuming inside a run, that run's RUN_STARTED and
// a start for what was open at its cursor; nothing for one resuming between runs. The
// prelude's last event carries the cursor the feed continues from.
func (b *Bus) threadOpening(ctx context.Context, sub routing.Subscription, o *opening, pos position) error {
	view, at, err := b.threadView(ctx, sub.User, sub.Thread, o.epoch)
	if err != nil {
		return err
	}
	// The view may reflect events stored after the stream's state was read.
	pos.last = max(pos.last, at)
	var prelude [][]byte
	c := sub.Cursor
	resume := c != nil && c.Epoch == o.epoch && c.Seq <= pos.last && c.Seq+1 >= pos.first
	if resume {
		if prelude, resume, err = b.resumePrelude(ctx, sub, o, pos.first, view, at, c.Seq); err != nil {
			return err
		}
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

// resumePrelude is the prelude of a connection resuming at seq: read again from the stream, from
// the start of the run open at seq (or from where the view, as of at, stops, when it is behind
// seq), the run's RUN_STARTED and a start for every step, message, tool call and reasoning span
// open at seq; nothing between runs. It reports false when seq is older than every run the view
// remembers, or too far back to read again, which a new connection's prelude stands in for.
func (b *Bus) resumePrelude(ctx context.Context, sub routing.Subscription, o *opening, first uint64, view *threads.View, at, seq uint64) ([][]byte, bool, error) {
	from := uint64(0)
	switch span, inRun, known := view.RunAt(min(seq, at)); {
	case !known, inRun && span.Start < first:
		// Unknown, or the run's start is no longer stored: it cannot be read again.
		return nil, false, nil
	case inRun:
		from = span.Start
	case at >= seq:
		return nil, true, nil // between runs
	default:
		from = at + 1 // the view stops before seq: what happened since is read again
	}
	past := &threads.View{ThreadID: sub.Thread}
	err := b.replayThread(ctx, sub, o, from, seq, past)
	if errors.Is(err, errResumeTooFar) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	prelude, err := past.Reopen(time.Now())
	return prelude, err == nil, err
}

// replayThread applies to v the user's events of the stream from sequence from through to,
// within maxResumeReplay events and the bus's timeout for each.
func (b *Bus) replayThread(ctx context.Context, sub routing.Subscription, o *opening, from, to uint64, v *threads.View) error {
	if from > to {
		return nil
	}
	tok, _ := routing.UserToken(sub.User)
	cfg := start{from: from}.config([]string{"agui." + tok + ".*"}, b.cfg.InactiveThreshold)
	r, err := b.openReader(ctx, o.stream, cfg, o.epoch, 0)
	if err != nil {
		return err
	}
	defer r.Close()
	if _, empty := r.Empty(); empty {
		return nil
	}
	for n := 0; ; n++ {
		if n == maxResumeReplay {
			return errResumeTooFar
		}
		next, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
		st, err := r.Next(next)
		cancel()
		if err != nil {
			return err
		}
		if st.Cursor.Seq > to {
			return nil
		}
		_, _ = v.Apply(st.Data, st.Cursor.Seq, o.epoch, threads.MaxViewBytes)
		if st.Cursor.Seq == to || st.Pending == 0 {
			return nil
		}
	}
}
