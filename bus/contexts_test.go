package bus_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsd/eventsd/bus"
	"github.com/eventsd/eventsd/contexts"
	"github.com/eventsd/eventsd/routing"
)

// skips records what the contexts projector passes over.
type skips struct {
	mu      sync.Mutex
	reasons map[string]int
}

func (*skips) ConsumerCreated(time.Duration)   {}
func (*skips) ConsumerDeleted(time.Duration)   {}
func (*skips) Skipped(routing.Channel, string) {}

func (s *skips) ViewSkipped(view, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reasons == nil {
		s.reasons = map[string]int{}
	}
	s.reasons[view+"/"+reason]++
}

func (s *skips) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprint(s.reasons)
}

// publishNATS stores data on subject as any NATS producer would, past ingress and its limits.
func publishNATS(t *testing.T, js jetstream.JetStream, subject, data string) {
	t.Helper()
	if _, err := js.Publish(testContext(t), subject, []byte(data)); err != nil {
		t.Fatalf("publish %s: %v", subject, err)
	}
}

// TestHugeContextsDoNotStallTheProjector: six CONTEXT_CREATED events with 200,000-character
// names (about 2.4 MB of view, unbounded) published straight to NATS, and an event naming a
// context by an over-long id: the projector keeps the view within its bounds, passes over
// what it cannot apply, and another user's event afterwards reaches that user's snapshot.
func TestHugeContextsDoNotStallTheProjector(t *testing.T) {
	m := &skips{}
	b, js := startWithContexts(t, bus.Config{Metrics: m})
	mallory := watchView(t, js, "mallory")
	alice := watchView(t, js, "alice")
	name := strings.Repeat("n", 200_000)
	for i := range 6 {
		publishNATS(t, js, "context.system.mallory.CONTEXT_CREATED", fmt.Sprintf(`{"contextId":"c%d","name":%q}`, i, name))
	}
	publishNATS(t, js, "context.system.mallory.CONTEXT_CREATED", fmt.Sprintf(`{"contextId":%q}`, strings.Repeat("i", contexts.MaxIDBytes+1)))
	publishNATS(t, js, "context.system.mallory.CONTEXT_UPDATED", `{"contextId":`)
	publish(t, b, routing.System, "alice", "CONTEXT_CREATED", `{"contextId":"a1","name":"Alice's"}`)

	alice.await(t, func(v contexts.View) bool { return v.Contexts["a1"] != nil })
	v := mallory.await(t, func(v contexts.View) bool { return len(v.Contexts) == 6 })
	for id, c := range v.Contexts {
		if len(c.Name) != contexts.MaxNameBytes {
			t.Errorf("context %s: name of %d bytes, want it cut to %d", id, len(c.Name), contexts.MaxNameBytes)
		}
	}
	f, err := b.Subscribe(testContext(t), routing.Subscription{Channel: routing.Contexts, User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := snapshotIDs(t, f); got != "[a1]" {
		t.Fatalf("alice's snapshot = %s, want [a1]", got)
	}
	// alice's event was applied after mallory's: the two that can never be applied were
	// passed over before it.
	if got, want := m.String(), "map[contexts/id_too_long:1 contexts/malformed:1]"; got != want {
		t.Fatalf("skipped = %s, want %s", got, want)
	}
}

// TestMalformedViewStartsAgain: a stored view that cannot be read (written by hand, or by
// something else) does not stop its user's view: it starts again with the next event.
func TestMalformedViewStartsAgain(t *testing.T) {
	m := &skips{}
	b, js := startWithContexts(t, bus.Config{Metrics: m})
	ctx := testContext(t)
	kv, err := js.KeyValue(ctx, routing.BucketContexts)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := contexts.Key("alice")
	if _, err := kv.Put(ctx, key, []byte("not a view")); err != nil {
		t.Fatal(err)
	}
	alice := watchView(t, js, "alice")
	f, err := b.Subscribe(ctx, routing.Subscription{Channel: routing.Contexts, User: "alice"})
	if err != nil {
		t.Fatalf("Subscribe with a malformed view: %v", err)
	}
	f.Close()
	publish(t, b, routing.System, "alice", "CONTEXT_CREATED", `{"contextId":"a1"}`)
	publish(t, b, routing.System, "alice", "CONTEXT_CREATED", `{"contextId":"a2"}`)
	// Once a2 is applied, whatever a1's applying counted is counted.
	v := alice.await(t, func(v contexts.View) bool { return v.Contexts["a2"] != nil })
	if v.Contexts["a1"] == nil {
		t.Fatalf("view = %+v, want a1 and a2", v)
	}
	if got, want := m.String(), "map[contexts/malformed_view:1]"; got != want {
		t.Fatalf("skipped = %s, want %s", got, want)
	}
}

// TestDeletedBucketRebuildsViews: the CONTEXTS bucket deleted, the watcher creates it again
// and the projector applies the CONTEXT stream again from its first event, so every view is
// back.
func TestDeletedBucketRebuildsViews(t *testing.T) {
	m := &skips{}
	b, js := startWithContexts(t, bus.Config{Metrics: m})
	ctx := testContext(t)
	alice := watchView(t, js, "alice")
	publish(t, b, routing.System, "alice", "CONTEXT_CREATED", `{"contextId":"a1"}`)
	alice.await(t, func(v contexts.View) bool { return v.Contexts["a1"] != nil })

	created := make(chan struct{}, 1)
	sub, err := js.Conn().Subscribe("$JS.EVENT.ADVISORY.STREAM.CREATED.KV_"+routing.BucketContexts, func(*nats.Msg) {
		select {
		case created <- struct{}{}:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := js.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream(ctx, "KV_"+routing.BucketContexts); err != nil {
		t.Fatal(err)
	}
	select {
	case <-created:
	case <-ctx.Done():
		t.Fatal("the bucket was not created again")
	}
	alice = watchView(t, js, "alice")
	alice.await(t, func(v contexts.View) bool { return v.Contexts["a1"] != nil })
	publish(t, b, routing.System, "alice", "CONTEXT_CREATED", `{"contextId":"a2"}`)
	alice.await(t, func(v contexts.View) bool { return v.Contexts["a1"] != nil && v.Contexts["a2"] != nil })
	if got := m.String(); got != "map[]" {
		t.Fatalf("skipped = %s, want nothing", got)
	}
}
