package bus

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/eventsd/eventsd/embedded"
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
