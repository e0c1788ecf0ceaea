package bus

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/eventsd/eventsd/embedded"
	"github.com/eventsd/eventsd/fanout"
	"github.com/eventsd/eventsd/routing"
)

// TestPublishRecreatesStream: a publish that no stream answers (the stream was deleted, and
// no advisory has told the bus yet) has the bus check its streams, recreate the one missing
// and publish again, once.
func TestPublishRecreatesStream(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b := startUnwatched(t, ctx, Config{})
	subject, _ := routing.SubjectFor(routing.AGUI, "alice", "RUN_STARTED")
	if _, err := b.Publish(ctx, subject, []byte(`{"n":1}`), ""); err != nil {
		t.Fatal(err)
	}
	before := b.knownEpoch(routing.StreamAGUI)
	if err := b.js.DeleteStream(ctx, routing.StreamAGUI); err != nil {
		t.Fatal(err)
	}
	ack, err := b.Publish(ctx, subject, []byte(`{"n":2}`), "")
	if err != nil {
		t.Fatalf("publish after the stream was deleted: %v", err)
	}
	if ack.Stream != routing.StreamAGUI || ack.Seq != 1 {
		t.Fatalf("publish after the stream was deleted: %+v, want AGUI 1", ack)
	}
	if after := b.knownEpoch(routing.StreamAGUI); after == before {
		t.Fatal("the bus did not see the stream's new epoch")
	}
}

// TestCheckEndsFeedsOfRecreatedStream: the periodic check alone (no advisory) notices a
// stream deleted under open feeds, recreates it and ends them, on both delivery paths.
func TestCheckEndsFeedsOfRecreatedStream(t *testing.T) {
	for _, mode := range []string{DeliveryShared, DeliveryConsumer} {
		t.Run(mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			b := startUnwatched(t, ctx, Config{Delivery: mode})
			f, err := b.Subscribe(ctx, routing.Subscription{Channel: routing.AGUI, User: "alice"})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := b.js.DeleteStream(ctx, routing.StreamAGUI); err != nil {
				t.Fatal(err)
			}
			if err := b.checkStreams(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := b.js.Stream(ctx, routing.StreamAGUI); err != nil {
				t.Fatalf("after the check: %v, want the stream back", err)
			}
			if _, err := f.Next(ctx); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("the feed of the deleted stream: %v, want it ended with ErrUnavailable", err)
			}
			if sf := b.shared.running(routing.StreamAGUI); sf != nil {
				t.Fatal("the shared feed of the deleted stream is still in use")
			}
		})
	}
}

// startUnwatched runs an embedded server and a Bus with its streams but without the watcher,
// whose work the test does by hand.
func startUnwatched(t *testing.T, ctx context.Context, cfg Config) *Bus {
	t.Helper()
	srv, err := embedded.Start(embedded.Options{StoreDir: t.TempDir(), User: "eventsd", Password: "test-password"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	cfg.URL = srv.AuthURL()
	b, err := Connect(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	if err := b.ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.checkStreams(ctx); err != nil { // records the epochs, as EnsureStreams does
		t.Fatal(err)
	}
	return b
}

// TestCatchUpOnRecreatedStream: a feed that fell behind catches up only on the stream of its
// own epoch; on a recreated one its sequences mean nothing, and it ends for its client to
// resume with the stream_recreated notice.
func TestCatchUpOnRecreatedStream(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b := startUnwatched(t, ctx, Config{})
	s, err := b.js.Stream(ctx, routing.StreamAGUI)
	if err != nil {
		t.Fatal(err)
	}
	epoch := uint64(s.CachedInfo().Created.UnixNano())
	filters := []string{"agui.*.*"}
	if _, err := b.catchUpOpener(routing.StreamAGUI, filters, epoch+1)(ctx, 1); !errors.Is(err, ErrStreamRecreated) {
		t.Fatalf("catching up on a stream of another epoch: %v, want ErrStreamRecreated", err)
	}
	r, err := b.catchUpOpener(routing.StreamAGUI, filters, epoch)(ctx, 1)
	if err != nil {
		t.Fatalf("catching up on the stream of its epoch: %v", err)
	}
	r.Close()
}

// TestSharedFeedStartedOnRecreatedStream: a shared feed whose stream was recreated while it
// started (the bus learnt the new epoch before the feed was listed, so nothing stopped it)
// stops by itself: its feeds end with ErrStreamRecreated and it is no longer in use.
func TestSharedFeedStartedOnRecreatedStream(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b := startUnwatched(t, ctx, Config{})
	epoch := b.knownEpoch(routing.StreamAGUI)
	b.mu.Lock()
	b.epochs[routing.StreamAGUI] = epoch + 1 // what streamRecreated records
	b.mu.Unlock()
	sf, err := b.sharedFeed(ctx, routing.StreamAGUI, epoch)
	if err != nil {
		t.Fatal(err)
	}
	sub := sf.d.Join(ctx, fanout.Want{Token: fanout.AllUsers})
	defer sub.Close()
	if _, err := sub.Next(ctx); !errors.Is(err, ErrStreamRecreated) {
		t.Fatalf("a feed on it: %v, want ErrStreamRecreated", err)
	}
	if b.shared.running(routing.StreamAGUI) != nil {
		t.Fatal("the shared feed of the earlier epoch is still in use")
	}
}
