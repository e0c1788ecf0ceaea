package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsd/eventsd/event"
	"github.com/eventsd/eventsd/routing"
	"github.com/eventsd/eventsd/threads"
)

// threadsProjector is the projector of the AG-UI thread views, which the Bus holds.
type threadsProjector = projector[threads.View]

// threadsKind is the thread views: one per user and thread (threads.Key), of the AGUI stream's
// events that name a thread (a top-level threadId), by the rules of package threads.
var threadsKind = viewKind[threads.View]{
	name:   "threads",
	stream: routing.StreamAGUI,
	token: func(subject string) (string, bool) {
		s, err := routing.ParseSubject(subject)
		return s.Token, err == nil && s.Channel == routing.AGUI
	},
	key: func(tok string, data []byte) (string, bool) {
		a, err := event.AttributionOf(data)
		if err != nil || a.ThreadID == "" || len(a.ThreadID) > MaxRunIDLen {
			return "", false
		}
		return threads.Key(tok, a.ThreadID), true
	},
	init: func(v *threads.View, data []byte) {
		a, _ := event.AttributionOf(data)
		v.ThreadID = a.ThreadID
	},
	subject:  func(tok string) string { return "agui." + tok + ".*" },
	filters:  func(tok string) []string { return []string{"agui." + tok + ".*"} },
	relevant: func(string) bool { return true },
	apply: func(v *threads.View, maxBytes int, epoch uint64, e streamEvent) (bool, error) {
		return v.Apply(e.data, e.seq, epoch, maxBytes)
	},
	at: func(v *threads.View) (epoch, seq uint64) { return v.Epoch, v.Seq },
	reason: func(err error) string {
		if errors.Is(err, threads.ErrMalformed) {
			return skipMalformed
		}
		return ""
	},
	fresh:        true,
	created:      indexViews(MaxThreadsPerUser),
	maxViewBytes: threads.MaxViewBytes,
	batchEvents:  256,
	batchBytes:   4 << 20,
}

// StartThreads starts the threads projector: it follows the AGUI stream and keeps the view of
// each thread in the THREADS bucket, until the Bus closes (ctx bounds only the start). From
// then on a thread stream opens with a prelude from its thread's view. Every node runs one;
// applying is idempotent, as for the contexts views.
func (b *Bus) StartThreads(ctx context.Context) error {
	kv, err := b.js.KeyValue(ctx, routing.BucketThreads)
	if err != nil {
		return b.wrap("bucket "+routing.BucketThreads, err)
	}
	return b.threadViews.start(ctx, b, threadsKind, kv)
}

// threadView returns the view of a thread of user as of the AGUI stream of epoch, and the
// stream sequence it reflects: every event of the thread up to it, and none after. A thread
// with no view is empty as of where the projector is: its events after that follow.
func (b *Bus) threadView(ctx context.Context, user, threadID string, epoch uint64) (*threads.View, uint64, error) {
	p := &b.threadViews
	if p.kv == nil {
		return nil, 0, fmt.Errorf("%w: thread views are not kept on this node (StartThreads)", ErrUnavailable)
	}
	pEpoch, applied := p.pos.position() // before the view
	if pEpoch != epoch {
		applied = 0
	}
	tok, err := routing.UserToken(user)
	if err != nil {
		return nil, 0, err
	}
	view, _, err := p.read(ctx, threads.Key(tok, threadID), epoch)
	if errors.Is(err, errMalformedView) {
		b.log.Warn("thread view", "user", user, "err", err)
	} else if err != nil {
		return nil, 0, err
	}
	if !view.Of(epoch) || view.ThreadID != threadID || view.Seq == 0 {
		// No view: the thread's events after where the projector is follow.
		return &threads.View{ThreadID: threadID}, applied, nil
	}
	if b.cfg.Streams.Replicas > 1 {
		// On a replicated bucket the read may come from a replica behind the projector: from
		// the view's own sequence, the events after it follow.
		return view, view.Seq, nil
	}
	return view, max(applied, view.Seq), nil
}

// ensureThreadsBucket creates the THREADS bucket, or updates it to the configured settings.
func (b *Bus) ensureThreadsBucket(ctx context.Context) error {
	return b.ensureViewBucket(ctx, routing.BucketThreads, "each AG-UI thread's view, for the thread streams' preludes")
}

// MaxThreadsPerUser bounds the thread views kept for one user: past it, the views of the user's
// threads first seen longest ago are dropped (a dropped view starts again from its thread's next
// event).
const MaxThreadsPerUser = 256

// indexViews returns a viewKind's created hook that lists the view created under key in its
// user's index (the key of the user's token alone, in the same bucket), and drops the views of
// the user's oldest keys past most.
func indexViews(most int) func(context.Context, jetstream.KeyValue, string) error {
	return func(ctx context.Context, kv jetstream.KeyValue, key string) error {
		return indexView(ctx, kv, key, most)
	}
}

// indexView lists key in its user's index, and drops the views of the user's oldest keys past
// most.
func indexView(ctx context.Context, kv jetstream.KeyValue, key string, most int) error {
	tok, _, _ := strings.Cut(key, ".")
	for range maxIndexTries {
		var keys []string
		var rev uint64
		entry, err := kv.Get(ctx, tok)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return err
		default:
			rev = entry.Revision()
			_ = json.Unmarshal(entry.Value(), &keys) // unreadable: started again
		}
		if slices.Contains(keys, key) {
			return nil
		}
		keys = append(keys, key)
		var drop []string
		if n := len(keys) - most; n > 0 {
			drop, keys = keys[:n], keys[n:]
		}
		value, _ := json.Marshal(keys)
		if rev == 0 {
			_, err = kv.Create(ctx, tok, value)
		} else {
			_, err = kv.Update(ctx, tok, value, rev)
		}
		if errors.Is(err, jetstream.ErrKeyExists) || isWrongSequence(err) {
			continue // another node's write came first: again, on its index
		}
		if err != nil {
			return err
		}
		for _, k := range drop {
			if err := kv.Purge(ctx, k); err != nil {
				return err
			}
		}
		return nil
	}
	return errConflict
}

// maxIndexTries bounds the writes of a user's index that other nodes' writes overtake.
const maxIndexTries = 16
