package bus_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsd/eventsd/bus"
	"github.com/eventsd/eventsd/contexts"
	"github.com/eventsd/eventsd/internal/testplane"
	"github.com/eventsd/eventsd/routing"
)

// startWithContexts runs a Bus with its streams and the contexts projector, and a NATS client
// of the test's own, as an operator's or a producer's.
func startWithContexts(t *testing.T, cfg bus.Config) (*bus.Bus, jetstream.JetStream) {
	t.Helper()
	b, url := testplane.StartBus(t, cfg)
	if err := b.StartContexts(testContext(t)); err != nil {
		t.Fatal(err)
	}
	_, js := testplane.Client(t, url)
	return b, js
}

// ended waits for f to end and returns why.
func ended(t *testing.T, f *bus.Feed) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for {
		ev, err := f.Next(ctx)
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatal("the feed of a deleted stream did not end")
		}
		if err != nil {
			return err
		}
		t.Logf("before it ended the feed got %s %s", ev.Subject, ev.Data)
	}
}

// TestDeletedStreamIsRecreated deletes AGUI through the JetStream API under an open feed: the
// feed ends; a resume with its last cursor gets the stream_recreated notice and the new
// stream's events; publishing works again without a restart, and what is published reaches a
// new feed and, through the context fan-in (which starts again at the new stream's first
// event), the contexts channel.
func TestDeletedStreamIsRecreated(t *testing.T) {
	for _, mode := range []string{bus.DeliveryShared, bus.DeliveryConsumer} {
		t.Run(mode, func(t *testing.T) {
			b, js := startWithContexts(t, bus.Config{Delivery: mode})
			ctx := testContext(t)
			f, err := b.Subscribe(ctx, routing.Subscription{Channel: routing.AGUI, User: "alice"})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			cf, err := b.Subscribe(ctx, routing.Subscription{Channel: routing.Contexts, User: "alice", Types: []string{"STEP_STARTED"}})
			if err != nil {
				t.Fatal(err)
			}
			defer cf.Close()
			for i := range 3 {
				publish(t, b, routing.AGUI, "alice", "STEP_STARTED", fmt.Sprintf(`{"old":%d}`, i))
			}
			var last bus.Event
			for range 3 {
				last = next(t, f)
				next(t, cf)
			}

			deleted := time.Now()
			if err := js.DeleteStream(ctx, routing.StreamAGUI); err != nil {
				t.Fatal(err)
			}
			err = ended(t, f)
			t.Logf("the open feed ended %v after the stream was deleted: %v", time.Since(deleted), err)
			if !errors.Is(err, bus.ErrUnavailable) {
				t.Fatalf("the feed ended with %v, want ErrUnavailable, for its client to resume", err)
			}

			// Publishing works again, without a restart.
			ack := publish(t, b, routing.AGUI, "alice", "STEP_STARTED", `{"new":1}`)
			t.Logf("published %v after the stream was deleted", time.Since(deleted))
			if ack.Seq != 1 {
				t.Fatalf("the first event after the stream was recreated is at sequence %d, want 1", ack.Seq)
			}

			resumed, err := b.Subscribe(ctx, routing.Subscription{Channel: routing.AGUI, User: "alice", Cursor: &last.Cursor})
			if err != nil {
				t.Fatal(err)
			}
			defer resumed.Close()
			if resumed.Notice() == nil || resumed.Notice().Reason != bus.NoticeStreamRecreated {
				t.Fatalf("resumed with the old cursor: notice %+v, want %s", resumed.Notice(), bus.NoticeStreamRecreated)
			}
			if ev := next(t, resumed); ev.Cursor.Seq != 1 || string(ev.Data) != `{"new":1}` || ev.Cursor.Epoch == last.Cursor.Epoch {
				t.Fatalf("after the notice got %+v %s, want the new stream's first event", ev.Cursor, ev.Data)
			}

			fresh, err := b.Subscribe(ctx, routing.Subscription{Channel: routing.AGUI, User: "alice"})
			if err != nil {
				t.Fatal(err)
			}
			defer fresh.Close()
			ack = publish(t, b, routing.AGUI, "alice", "STEP_STARTED", `{"new":2}`)
			if ev := next(t, fresh); ev.Cursor.Seq != ack.Seq || string(ev.Data) != `{"new":2}` {
				t.Fatalf("a new feed got %d %s, want %d", ev.Cursor.Seq, ev.Data, ack.Seq)
			}
			if ev := next(t, resumed); ev.Cursor.Seq != ack.Seq {
				t.Fatalf("the resumed feed got %d %s, want %d", ev.Cursor.Seq, ev.Data, ack.Seq)
			}

			// The CONTEXT stream was not deleted: its feed goes on, and gets the new AGUI's
			// events from its first.
			for i := 1; i <= 2; i++ {
				if ev := next(t, cf); ev.Subject != "context.agui.alice.STEP_STARTED" || string(ev.Data) != fmt.Sprintf(`{"new":%d}`, i) {
					t.Fatalf("contexts got %s %s, want the new AGUI's event %d", ev.Subject, ev.Data, i)
				}
			}
			t.Logf("the new AGUI's first event reached the contexts channel %v after the stream was deleted", time.Since(deleted))
		})
	}
}

// TestDeletedContextStreamRebuildsViews deletes CONTEXT: its feeds end, it is recreated, and
// the contexts view of a user is rebuilt from the new stream (whose sequences start again
// below the old view's).
func TestDeletedContextStreamRebuildsViews(t *testing.T) {
	for _, mode := range []string{bus.DeliveryShared, bus.DeliveryConsumer} {
		t.Run(mode, func(t *testing.T) {
			b, js := startWithContexts(t, bus.Config{Delivery: mode})
			ctx := testContext(t)
			views := watchView(t, js, "alice")
			for i := range 5 {
				publish(t, b, routing.System, "alice", "CONTEXT_CREATED", fmt.Sprintf(`{"contextId":"old%d"}`, i))
			}
			old := views.await(t, func(v contexts.View) bool { return len(v.Contexts) == 5 })

			f, err := b.Subscribe(ctx, routing.Subscription{Channel: routing.Contexts, User: "alice"})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if got := snapshotIDs(t, f); got != "[old4 old3 old2 old1 old0]" {
				t.Fatalf("snapshot before = %s", got)
			}
			if err := js.DeleteStream(ctx, routing.StreamContext); err != nil {
				t.Fatal(err)
			}
			if err := ended(t, f); !errors.Is(err, bus.ErrUnavailable) {
				t.Fatalf("the contexts feed ended with %v, want ErrUnavailable", err)
			}
			publish(t, b, routing.System, "alice", "CONTEXT_CREATED", `{"contextId":"new"}`)
			v := views.await(t, func(v contexts.View) bool { return v.Epoch != old.Epoch && len(v.Contexts) > 0 })
			if _, ok := v.Contexts["new"]; !ok || len(v.Contexts) != 1 || v.Seq != 1 {
				t.Fatalf("view after CONTEXT was recreated: %+v, want only the new stream's context, at sequence 1", v)
			}
			f, err = b.Subscribe(ctx, routing.Subscription{Channel: routing.Contexts, User: "alice"})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if got := snapshotIDs(t, f); got != "[new]" {
				t.Fatalf("snapshot after CONTEXT was recreated = %s, want [new]", got)
			}
			if f.Prelude()[0].Cursor.Epoch == old.Epoch {
				t.Fatalf("the snapshot's cursor has the old stream's epoch")
			}
		})
	}
}

// snapshotIDs lists the context ids of a feed's CONTEXTS_SNAPSHOT.
func snapshotIDs(t *testing.T, f *bus.Feed) string {
	t.Helper()
	if len(f.Prelude()) == 0 {
		t.Fatal("no snapshot")
	}
	var snap struct {
		Contexts []struct {
			ID string `json:"context_id"`
		} `json:"contexts"`
	}
	if err := json.Unmarshal(f.Prelude()[0].Data, &snap); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range snap.Contexts {
		ids = append(ids, c.ID)
	}
	return fmt.Sprint(ids)
}

// viewWatch follows one user's contexts view in the CONTEXTS bucket.
type viewWatch struct {
	w jetstream.KeyWatcher
}

// bucket opens the CONTEXTS bucket.
func bucket(t *testing.T, js jetstream.JetStream) jetstream.KeyValue {
	t.Helper()
	kv, err := js.KeyValue(testContext(t), routing.BucketContexts)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

// viewWait bounds a wait for a view: a deadline for a test that would otherwise hang, not a
// measure. The projector's pace under the race detector on a busy machine varies widely (2-14 s
// for TestFloodDoesNotHoldBackOthers on 2 cores).
const viewWait = time.Minute

// watchView watches user's view in the CONTEXTS bucket, for viewWait.
func watchView(t *testing.T, js jetstream.JetStream, user string) viewWatch {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), viewWait)
	t.Cleanup(cancel)
	kv := bucket(t, js)
	key, err := contexts.Key(user)
	if err != nil {
		t.Fatal(err)
	}
	// The bucket's stream may be recreated under the watcher: it follows it by subject.
	w, err := kv.Watch(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Stop() })
	return viewWatch{w}
}

// await waits for a stored view that satisfies ok.
func (vw viewWatch) await(t *testing.T, ok func(contexts.View) bool) contexts.View {
	t.Helper()
	timeout := time.After(viewWait)
	for {
		select {
		case e := <-vw.w.Updates():
			if e == nil {
				continue // the initial values have all been delivered
			}
			var v contexts.View
			if err := json.Unmarshal(e.Value(), &v); err != nil {
				continue // not a view (yet)
			}
			if ok(v) {
				return v
			}
		case <-timeout:
			t.Fatal("the view never became what was wanted")
		}
	}
}
