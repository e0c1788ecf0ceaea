package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsd/eventsd/contexts"
	"github.com/eventsd/eventsd/event"
	"github.com/eventsd/eventsd/routing"
)

// StartContexts starts the contexts projector: it follows the CONTEXT stream's context events
// and keeps each user's view in the CONTEXTS bucket, until ctx ends or the Bus closes. From
// then on a new contexts feed without a cursor starts with a CONTEXTS_SNAPSHOT.
//
// Every eventsd node runs one. Applying is idempotent (a view records the last sequence it
// applied), so nodes that apply the same event agree, and a restarted node replays the
// stream's retained context events without changing anything already applied.
func (b *Bus) StartContexts(ctx context.Context) error {
	kv, err := b.js.KeyValue(ctx, routing.BucketContexts)
	if err != nil {
		return b.wrap("bucket "+routing.BucketContexts, err)
	}
	cons, it, err := b.projectorConsumer(ctx, 0)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	b.kv, b.stopProject = kv, cancel
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			err := b.projectFrom(ctx, it)
			it.Stop()
			b.deleteConsumer(ctx, routing.StreamContext, cons)
			if ctx.Err() != nil {
				return
			}
			// The consumer failed (NATS away too long): start again after what was applied.
			b.log.Warn("contexts projector", "err", err)
			for {
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Second):
				}
				if cons, it, err = b.projectorConsumer(ctx, b.projected.Load()+1); err == nil {
					break
				}
			}
		}
	}()
	return nil
}

// projectorConsumer follows the context events from sequence from (0: all retained).
func (b *Bus) projectorConsumer(ctx context.Context, from uint64) (jetstream.Consumer, jetstream.MessagesContext, error) {
	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects:    contexts.Filters(),
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		InactiveThreshold: b.cfg.InactiveThreshold,
		MaxResetAttempts:  maxResets,
	}
	if from > 1 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, from
	}
	cons, err := b.js.OrderedConsumer(ctx, routing.StreamContext, cfg)
	if err != nil {
		return nil, nil, b.wrap("contexts consumer", err)
	}
	it, err := cons.Messages()
	if err != nil {
		return nil, nil, b.wrap("contexts consumer", err)
	}
	return cons, it, nil
}

// projectFrom applies events from it until ctx ends or the consumer fails.
func (b *Bus) projectFrom(ctx context.Context, it jetstream.MessagesContext) error {
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return err
		}
		meta, err := msg.Metadata()
		if err != nil {
			continue
		}
		for ctx.Err() == nil {
			if err := b.project(ctx, msg.Subject(), msg.Data(), meta.Sequence.Stream, meta.Timestamp); err == nil {
				b.projected.Store(meta.Sequence.Stream)
				break
			} else if !errors.Is(err, errConflict) {
				b.log.Warn("contexts projector", "subject", msg.Subject(), "seq", meta.Sequence.Stream, "err", err)
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
		}
	}
}

// errConflict reports a view changed by another node between read and write; the event is
// applied again on the fresh view.
var errConflict = errors.New("bus: contexts view changed concurrently")

// project applies one event to its user's view.
func (b *Bus) project(ctx context.Context, subject string, data []byte, seq uint64, stored time.Time) error {
	tok, ok := contexts.UserToken(subject)
	if !ok {
		return nil
	}
	key := contexts.KeyOfToken(tok)
	view, rev, err := b.view(ctx, key)
	if err != nil {
		return err
	}
	if !view.Apply(subject, data, seq, stored) {
		return nil
	}
	value, err := json.Marshal(view)
	if err != nil {
		return err
	}
	if rev == 0 {
		_, err = b.kv.Create(ctx, key, value)
	} else {
		_, err = b.kv.Update(ctx, key, value, rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || isWrongSequence(err) {
		return errConflict
	}
	return err
}

func isWrongSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

// view reads a user's view and its revision (0 when there is none).
func (b *Bus) view(ctx context.Context, key string) (*contexts.View, uint64, error) {
	entry, err := b.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return &contexts.View{}, 0, nil
	}
	if err != nil {
		return nil, 0, b.wrap("get "+key, err)
	}
	var v contexts.View
	if err := json.Unmarshal(entry.Value(), &v); err != nil {
		return nil, 0, fmt.Errorf("bus: contexts view %s: %w", key, err)
	}
	return &v, entry.Revision(), nil
}

// snapshot returns the contexts snapshot of user and the stream sequence it reflects: every
// context event of the user up to that sequence, and none after it.
func (b *Bus) snapshot(ctx context.Context, user string) (data []byte, seq uint64, err error) {
	// The projector's position is read before the view: everything up to it was applied
	// before the view was read, so the view reflects at least that much.
	applied := b.projected.Load()
	key, err := contexts.Key(user)
	if err != nil {
		return nil, 0, err
	}
	view, _, err := b.view(ctx, key)
	if err != nil {
		return nil, 0, err
	}
	data, err = json.Marshal(view.Snapshot(time.Now()))
	if err != nil {
		return nil, 0, err
	}
	return data, max(applied, view.Seq), nil
}

// snapshotWanted reports whether a feed for sub starts with a contexts snapshot.
func (b *Bus) snapshotWanted(sub routing.Subscription) bool {
	if b.kv == nil || sub.Channel != routing.Contexts || sub.Cursor != nil || !sub.Since.IsZero() || sub.AllUsers {
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
