package bus_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsd/eventsd/bus"
	"github.com/eventsd/eventsd/event"
	"github.com/eventsd/eventsd/internal/testplane"
	"github.com/eventsd/eventsd/routing"
	"github.com/eventsd/eventsd/threads"
)

// TestThreadViewsBoundedPerUser: one user keeps at most bus.MaxThreadsPerUser thread views; the
// view of the thread first seen longest ago is the one dropped, and another user's are not.
func TestThreadViewsBoundedPerUser(t *testing.T) {
	b, url := testplane.StartBus(t, bus.Config{})
	ctx := testContext(t)
	if err := b.StartThreads(ctx); err != nil {
		t.Fatal(err)
	}
	_, js := testplane.Client(t, url)
	kv, err := js.KeyValue(ctx, routing.BucketThreads)
	if err != nil {
		t.Fatal(err)
	}
	tok := token(t, "alice")
	first := threads.Key(tok, "t0")
	gone, err := kv.Watch(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	defer gone.Stop()
	if _, err := b.PublishRunEvent(ctx, "bob", "b0", "r", event.RunStarted{}); err != nil {
		t.Fatal(err)
	}
	for i := range bus.MaxThreadsPerUser + 1 {
		if _, err := b.PublishRunEvent(ctx, "alice", fmt.Sprint("t", i), "r", event.RunStarted{}); err != nil {
			t.Fatal(err)
		}
	}
	idx, err := kv.Watch(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Stop()
	for keys := []string(nil); len(keys) != bus.MaxThreadsPerUser || keys[0] == first; {
		select {
		case e := <-idx.Updates():
			if e != nil {
				_ = json.Unmarshal(e.Value(), &keys)
			}
		case <-ctx.Done():
			t.Fatalf("alice's index never dropped t0: %d keys", len(keys))
		}
	}
	for purged := false; !purged; {
		select {
		case e := <-gone.Updates():
			purged = e != nil && e.Operation() == jetstream.KeyValuePurge
		case <-ctx.Done():
			t.Fatal("t0's view was not dropped")
		}
	}
	if _, err := kv.Get(ctx, first); err == nil {
		t.Fatal("t0's view is still there")
	}
	if _, err := kv.Get(ctx, threads.Key(token(t, "bob"), "b0")); err != nil {
		t.Fatalf("bob's view: %v", err)
	}
}
