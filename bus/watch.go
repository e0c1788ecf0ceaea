package bus

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsd/eventsd/routing"
)

// watchInterval is how often the bus checks that its streams are there and unchanged, besides
// the deletion advisories that tell it at once.
const watchInterval = 5 * time.Second

// advisoryStreamDeleted is the subject prefix of JetStream's advisory for a deleted stream.
const advisoryStreamDeleted = "$JS.EVENT.ADVISORY.STREAM.DELETED."

// The streams that hold the views' buckets.
const (
	bucketStream        = "KV_" + routing.BucketContexts
	threadsBucketStream = "KV_" + routing.BucketThreads
	tasksBucketStream   = "KV_" + routing.BucketTasks
)

// watcher notices a stream of the event plane deleted (by an operator, or a mistake) and makes
// the plane whole again: it recreates the stream, ends the feeds that followed the old one so
// that their clients resume with the stream_recreated notice, and rebuilds the views derived
// from it.
type watcher struct {
	start sync.Once
	kick  chan struct{} // a deletion advisory arrived: check now

	mu     sync.Mutex        // one check at a time
	began  time.Time         // when the last check began
	epochs map[string]uint64 // each stream's epoch as last checked
}

// watched are the streams the watcher keeps: the plane's streams and the buckets'.
func (b *Bus) watched() []string {
	var names []string
	for _, spec := range routing.Streams(b.cfg.Streams) {
		names = append(names, spec.Name)
	}
	return append(names, bucketStream, threadsBucketStream, tasksBucketStream)
}

// startWatch records the streams' epochs and starts the watcher, once, until the Bus closes.
func (b *Bus) startWatch(ctx context.Context) error {
	if err := b.checkStreams(ctx); err != nil {
		return err
	}
	var err error
	b.watch.start.Do(func() {
		b.watch.kick = make(chan struct{}, 1)
		var subs []*nats.Subscription
		for _, name := range b.watched() {
			var sub *nats.Subscription
			sub, err = b.nc.Subscribe(advisoryStreamDeleted+name, func(*nats.Msg) { b.watch.nudge() })
			if err != nil {
				err = b.wrap("subscribe "+advisoryStreamDeleted+name, err)
				break
			}
			subs = append(subs, sub)
		}
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			defer func() {
				for _, sub := range subs {
					_ = sub.Unsubscribe()
				}
			}()
			b.watchStreams(b.bg)
		}()
	})
	return err
}

// watchStreams checks the streams on every deletion advisory and every watchInterval, until
// ctx ends.
func (b *Bus) watchStreams(ctx context.Context) {
	tick := time.NewTicker(watchInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-b.watch.kick:
		}
		if !b.Connected() {
			continue // the outage handling has it; the next check after it sees what changed
		}
		check, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
		if err := b.checkStreams(check); err != nil && ctx.Err() == nil {
			b.log.Warn("checking streams", "err", err)
		}
		cancel()
	}
}

// checkStreams recreates the streams that are missing, and acts on every stream whose epoch
// changed since the last check (recreated here, by another node or by an operator).
func (b *Bus) checkStreams(ctx context.Context) error {
	b.watch.mu.Lock()
	defer b.watch.mu.Unlock()
	return b.checkStreamsLocked(ctx)
}

// checkStreamsLocked is checkStreams with b.watch.mu held.
func (b *Bus) checkStreamsLocked(ctx context.Context) error {
	b.watch.began = time.Now()
	epochs, missing, err := b.streamEpochs(ctx)
	if err != nil {
		return err
	}
	if missing {
		b.log.Warn("recreating missing streams")
		if err := b.ensure(ctx); err != nil {
			return err
		}
		if epochs, _, err = b.streamEpochs(ctx); err != nil {
			return err
		}
	}
	if b.watch.epochs == nil {
		b.watch.epochs = epochs
		b.mu.Lock()
		b.epochs = maps.Clone(epochs)
		b.mu.Unlock()
		return nil
	}
	for name, epoch := range epochs {
		if old := b.watch.epochs[name]; old != epoch && epoch != 0 {
			b.streamRecreated(name, epoch)
			if err := b.resetSource(ctx, name); err != nil {
				// Left to the next check, which sees the new epoch again.
				b.log.Warn("context fan-in", "stream", name, "err", err)
				continue
			}
			b.watch.epochs[name] = epoch
		}
	}
	return nil
}

// resetSource has the CONTEXT stream copy a recreated source stream from its first event at
// once. The server notices a recreated source by itself only after about 20 s; a source
// removed and added again is set up anew, and the server sees then that the stream is not the
// one it copied before (its identity) and starts over from the first event. Events stored
// while the source is away are copied once it is back.
func (b *Bus) resetSource(ctx context.Context, name string) error {
	for _, spec := range routing.Streams(b.cfg.Streams) {
		if !slices.ContainsFunc(spec.Sources, func(m routing.Mapping) bool { return m.Stream == name }) {
			continue
		}
		without := spec
		without.Sources = slices.DeleteFunc(slices.Clone(spec.Sources), func(m routing.Mapping) bool { return m.Stream == name })
		if _, err := b.js.UpdateStream(ctx, streamConfig(without)); err != nil {
			return b.wrap("update stream "+spec.Name, err)
		}
		if _, err := b.js.UpdateStream(ctx, streamConfig(spec)); err != nil {
			return b.wrap("update stream "+spec.Name, err)
		}
	}
	return nil
}

// streamEpochs returns the current epoch of every watched stream (0 for one that is missing).
func (b *Bus) streamEpochs(ctx context.Context) (map[string]uint64, bool, error) {
	epochs := map[string]uint64{}
	missing := false
	for _, name := range b.watched() {
		s, err := b.js.Stream(ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			missing = true
			continue
		}
		if err != nil {
			return nil, false, b.wrap("stream "+name, err)
		}
		epochs[name] = uint64(s.CachedInfo().Created.UnixNano())
	}
	return epochs, missing, nil
}

// streamRecreated ends what followed the stream's earlier life: its open feeds, whose clients
// resume with the stream_recreated notice, and its shared feed, whose consumer would otherwise
// carry on in the new stream under the old epoch. Views derived from the CONTEXT stream (or
// kept in the bucket) are rebuilt from the new stream's first event.
func (b *Bus) streamRecreated(name string, epoch uint64) {
	b.log.Warn("stream recreated", "stream", name)
	err := fmt.Errorf("%w: %s", ErrStreamRecreated, name)
	b.mu.Lock()
	b.epochs[name] = epoch
	for f := range b.feeds {
		if f.stream == name && f.epoch != epoch {
			f.sub.End(err)
		}
	}
	b.mu.Unlock()
	if sf := b.shared.running(name); sf != nil && sf.epoch != epoch && b.shared.remove(name, sf) {
		sf.stop(err)
	}
	if name == routing.StreamContext || name == bucketStream {
		b.contextViews.pos.restart()
	}
	if name == routing.StreamAGUI || name == threadsBucketStream {
		b.threadViews.pos.restart()
	}
	if name == routing.StreamA2A || name == tasksBucketStream {
		b.taskViews.pos.restart()
	}
}

// knownEpoch returns the stream's epoch as last seen, or 0.
func (b *Bus) knownEpoch(name string) uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.epochs[name]
}

// staleEpoch reports whether epoch is no longer that of the stream, as last seen; the caller
// holds b.mu.
func (b *Bus) staleEpoch(name string, epoch uint64) bool {
	known := b.epochs[name]
	return known != 0 && known != epoch
}

// recoverStreams is for a publish that no stream answered when it failed: it checks the
// streams, unless a check began since, and reports whether it is worth publishing again.
func (b *Bus) recoverStreams(ctx context.Context, failed time.Time) bool {
	b.watch.mu.Lock()
	defer b.watch.mu.Unlock()
	if b.watch.epochs == nil {
		return false // EnsureStreams never ran: the streams are not this Bus's to create
	}
	if b.watch.began.After(failed) {
		return true // a check has run since: the stream is back if it can be
	}
	if err := b.checkStreamsLocked(ctx); err != nil {
		b.log.Warn("checking streams", "err", err)
		return false
	}
	return true
}

// nudge has the watcher check the streams now, unless a check is due already.
func (w *watcher) nudge() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}
