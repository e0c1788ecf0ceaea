package bus

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/eventsd/eventsd/contexts"
	"github.com/eventsd/eventsd/event"
	"github.com/eventsd/eventsd/routing"
)

// contextsProjector is the projector of the contexts views, which the Bus holds.
type contextsProjector = projector[contexts.View]

// contextsKind is the contexts views: one per user (keyed by user token), of the context
// events of the CONTEXT stream, by the rules of package contexts. Its batch bounds keep a
// flood of one user's events from holding back the others' views by more than a batch.
var contextsKind = viewKind[contexts.View]{
	name:     "contexts",
	stream:   routing.StreamContext,
	token:    contexts.UserToken,
	key:      func(tok string, _ []byte) (string, bool) { return contexts.KeyOfToken(tok), true },
	subject:  func(tok string) string { return "context.*." + tok + ".*" },
	filters:  contexts.FiltersOf,
	relevant: contexts.Relevant,
	apply: func(v *contexts.View, maxBytes int, epoch uint64, e streamEvent) (bool, error) {
		return v.ApplyWithin(maxBytes, epoch, e.subject, e.data, e.seq, e.stored)
	},
	at:           func(v *contexts.View) (epoch, seq uint64) { return v.Epoch, v.Seq },
	stamp:        (*contexts.View).Stamp,
	reason:       contextsSkipReason,
	maxViewBytes: contexts.MaxViewBytes,
	batchEvents:  256,
	batchBytes:   4 << 20,
}

// Reasons the contexts projector passes an event over (Metrics.ViewSkipped), besides those of
// every projector.
const (
	skipMalformed = "malformed"   // the event is not a JSON object
	skipIDTooLong = "id_too_long" // its context id is over contexts.MaxIDBytes
)

// contextsSkipReason names why contexts.View.Apply refused an event, or is "".
func contextsSkipReason(err error) string {
	switch {
	case errors.Is(err, contexts.ErrMalformed):
		return skipMalformed
	case errors.Is(err, contexts.ErrIDTooLong):
		return skipIDTooLong
	default:
		return ""
	}
}

// StartContexts starts the contexts projector: it follows the CONTEXT stream's context events
// and keeps each user's view in the CONTEXTS bucket, until the Bus closes (ctx bounds only the
// start). From then on a new contexts feed without a cursor starts with a CONTEXTS_SNAPSHOT.
//
// Every eventsd node runs one. Applying is idempotent (a view records the stream's epoch and
// the last sequence it applied), so nodes that apply the same event agree, and a restarted node
// replays the stream's retained context events without changing anything already applied.
// Events waiting are applied in batches (up to 256 events or 4 MiB), with one read and one
// write of each user's view, so that one user's flood costs the others little. An event that
// can never be applied is logged, counted (Metrics.ViewSkipped) and passed over; while NATS is
// away the projector waits and tries again, backing off up to 30 s.
func (b *Bus) StartContexts(ctx context.Context) error {
	kv, err := b.js.KeyValue(ctx, routing.BucketContexts)
	if err != nil {
		return b.wrap("bucket "+routing.BucketContexts, err)
	}
	return b.contextViews.start(ctx, b, contextsKind, kv)
}

// ensureBucket creates the CONTEXTS bucket, or updates it to the configured settings
// (ensureViewBucket).
func (b *Bus) ensureBucket(ctx context.Context) error {
	return b.ensureViewBucket(ctx, routing.BucketContexts, "each user's contexts view, for CONTEXTS_SNAPSHOT")
}

// snapshot returns the contexts snapshot of user as of the CONTEXT stream of epoch, and the
// stream sequence it reflects: every context event of the user up to that sequence, and none
// after it. A view of another epoch, or one that cannot be read, counts as empty. A user with
// no view of this stream (never written, or dropped from a full bucket) gets one rebuilt from
// the events the stream holds, as the projector would (not stored: the projector stores it
// with the user's next event); if that fails, the empty view.
func (b *Bus) snapshot(ctx context.Context, user string, epoch uint64) (data []byte, seq uint64, err error) {
	p := &b.contextViews
	// The projector's position is read before the view: everything up to it was applied
	// before the view was read, so the view reflects at least that much.
	pEpoch, applied := p.pos.position()
	if pEpoch != epoch {
		applied = 0
	}
	tok, err := routing.UserToken(user)
	if err != nil {
		return nil, 0, err
	}
	view, _, err := p.read(ctx, contexts.KeyOfToken(tok), epoch)
	if errors.Is(err, errMalformedView) {
		b.log.Warn("contexts snapshot", "user", user, "err", err)
	} else if err != nil {
		return nil, 0, err
	}
	if !view.Of(epoch) {
		view = &contexts.View{}
	}
	if p.blank(view, epoch) {
		rebuilt, through, err := p.rebuilt(ctx, tok, epoch)
		if err != nil {
			b.log.Warn("contexts snapshot: rebuild", "user", user, "err", err)
		} else if through > 0 {
			view, applied = rebuilt, max(applied, through)
		}
	}
	data, err = json.Marshal(view.Snapshot(time.Now()))
	if err != nil {
		return nil, 0, err
	}
	return data, max(applied, view.Seq), nil
}

// snapshotWanted reports whether a feed for sub starts with a contexts snapshot.
func (b *Bus) snapshotWanted(sub routing.Subscription) bool {
	if b.contextViews.kv == nil || sub.Channel != routing.Contexts || sub.Cursor != nil || !sub.Since.IsZero() || sub.AllUsers {
		return false
	}
	if len(sub.Types) == 0 {
		return true
	}
	for _, t := range sub.Types {
		if t == (event.ContextsSnapshot{}).EventType() {
			return true
		}
	}
	return false
}
