package bus_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsd/eventsd/bus"
	"github.com/eventsd/eventsd/contexts"
	"github.com/eventsd/eventsd/internal/testplane"
	"github.com/eventsd/eventsd/routing"
)

// skips records what the contexts projector passes over, and counts the consumers created and
// deleted.
type skips struct {
	mu               sync.Mutex
	reasons          map[string]int
	created, deleted int
}

func (*skips) Skipped(routing.Channel, string) {}

func (s *skips) ConsumerCreated(time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.created++
}

func (s *skips) ConsumerDeleted(time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deleted++
}

// consumers returns how many consumers were created and deleted.
func (s *skips) consumers() (created, deleted int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.created, s.deleted
}

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
	kv := bucket(t, js)
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
	alice := watchView(t, js, "alice")
	publish(t, b, routing.System, "alice", "CONTEXT_CREATED", `{"contextId":"a1"}`)
	alice.await(t, func(v contexts.View) bool { return v.Contexts["a1"] != nil })

	recreate(t, js, "KV_"+routing.BucketContexts)
	alice = watchView(t, js, "alice")
	alice.await(t, func(v contexts.View) bool { return v.Contexts["a1"] != nil })
	publish(t, b, routing.System, "alice", "CONTEXT_CREATED", `{"contextId":"a2"}`)
	alice.await(t, func(v contexts.View) bool { return v.Contexts["a1"] != nil && v.Contexts["a2"] != nil })
	if got := m.String(); got != "map[]" {
		t.Fatalf("skipped = %s, want nothing", got)
	}
}

// putView stores value as user's view, as another writer (or an earlier release) would.
func putView(t *testing.T, js jetstream.JetStream, user, value string) {
	t.Helper()
	ctx := testContext(t)
	kv := bucket(t, js)
	key, _ := contexts.Key(user)
	if _, err := kv.Put(ctx, key, []byte(value)); err != nil {
		t.Fatal(err)
	}
}

// TestLegacyViewAfterContextRecreated: a view stored by the release before views recorded
// their epoch is kept while the CONTEXT stream it was built from lives; once CONTEXT is
// deleted and recreated it counts as empty, although its sequence is beyond the new stream's:
// the new stream's events reach the view, the snapshot shows them alone, the feed goes on
// after it, and a client resumes from the snapshot's cursor.
func TestLegacyViewAfterContextRecreated(t *testing.T) {
	b, js := startWithContexts(t, bus.Config{Delivery: bus.DeliveryConsumer})
	ctx := testContext(t)
	alice := watchView(t, js, "alice")
	for i := range 3 {
		publish(t, b, routing.System, "alice", "CONTEXT_CREATED", fmt.Sprintf(`{"contextId":"a%d"}`, i))
	}
	alice.await(t, func(v contexts.View) bool { return v.Seq == 3 })
	// As the earlier release would have stored it, at sequence 3, without an epoch.
	putView(t, js, "alice", `{"seq":3,"contexts":{"old":{"context_id":"old","name":"old","created_at":"2025-01-01T00:00:00Z","updated_at":"2025-01-01T00:00:00Z","message_count":0,"task_count":0}}}`)
	f, err := b.Subscribe(ctx, routing.Subscription{Channel: routing.Contexts, User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if got := snapshotIDs(t, f); got != "[old]" || f.Prelude()[0].Cursor.Seq != 3 {
		t.Fatalf("snapshot of the legacy view = %s at %v, want [old] at 3", got, f.Prelude()[0].Cursor)
	}
	f.Close()

	if err := js.DeleteStream(ctx, routing.StreamContext); err != nil {
		t.Fatal(err)
	}
	// The publish finds no stream, has it recreated and goes again: it is the new stream's
	// first event, at a sequence below the legacy view's.
	if ack := publish(t, b, routing.System, "alice", "CONTEXT_CREATED", `{"contextId":"new"}`); ack.Seq > 3 {
		t.Fatalf("the new stream's first event at %d", ack.Seq)
	}
	v := alice.await(t, func(v contexts.View) bool { return v.Contexts["new"] != nil })
	if v.Contexts["old"] != nil || v.Epoch == 0 {
		t.Fatalf("view after CONTEXT was recreated = %+v, want only the new stream's context, with its epoch", v)
	}

	f, err = b.Subscribe(ctx, routing.Subscription{Channel: routing.Contexts, User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := snapshotIDs(t, f); got != "[new]" || f.Prelude()[0].Cursor.Epoch != v.Epoch {
		t.Fatalf("snapshot = %s at %v, want [new] at epoch %d", got, f.Prelude()[0].Cursor, v.Epoch)
	}
	ack := publish(t, b, routing.System, "alice", "CONTEXT_UPDATED", `{"contextId":"new","name":"renamed"}`)
	if ev := next(t, f); ev.Cursor.Seq != ack.Seq || string(ev.Data) != `{"contextId":"new","name":"renamed"}` {
		t.Fatalf("after the snapshot the feed got %v %s, want the rename at %d", ev.Cursor, ev.Data, ack.Seq)
	}
	c := f.Prelude()[0].Cursor
	resumed, err := b.Subscribe(ctx, routing.Subscription{Channel: routing.Contexts, User: "alice", Cursor: &c})
	if err != nil {
		t.Fatalf("resume from the snapshot's cursor %v: %v", c, err)
	}
	defer resumed.Close()
	if ev := next(t, resumed); ev.Cursor.Seq != ack.Seq {
		t.Fatalf("resumed from the snapshot's cursor, the feed got %v %s, want the rename at %d", ev.Cursor, ev.Data, ack.Seq)
	}
}

// floodContexts publishes n CONTEXT_CREATED events for user straight to NATS, each with the
// longest id and name a view keeps, of control characters (six bytes each in JSON): past
// contexts.MaxContexts of them every event rewrites a view at contexts.MaxViewBytes. It
// returns the last one's sequence.
func floodContexts(t *testing.T, js jetstream.JetStream, user string, n int) uint64 {
	t.Helper()
	ctx := testContext(t)
	subject := "context.system." + user + ".CONTEXT_CREATED"
	ctrl := strings.Repeat(`\u0001`, contexts.MaxIDBytes-5)
	name := strings.Repeat(`\u0001`, contexts.MaxNameBytes)
	var last jetstream.PubAckFuture
	for i := range n {
		data := fmt.Sprintf(`{"contextId":"%05d%s","name":"%s"}`, i, ctrl, name)
		var err error
		if last, err = js.PublishAsync(subject, []byte(data)); err != nil {
			t.Fatal(err)
		}
		if i%500 == 499 || i == n-1 {
			select {
			case <-js.PublishAsyncComplete():
			case <-ctx.Done():
				t.Fatal("publishing the flood did not complete")
			}
		}
	}
	select {
	case ack := <-last.Ok():
		return ack.Sequence
	case err := <-last.Err():
		t.Fatalf("publish %s: %v", subject, err)
	}
	return 0
}

// TestFloodDoesNotHoldBackOthers: one user's flood of events that each rewrite a view at its
// byte bound (3,000, published straight to NATS, past ingress) does not keep another user's
// later event out of their view. The projector applies a batch of events with one read and one
// write of each user's view; applied one at a time (about 100 a second) the flood would hold
// alice's event back for longer than await waits.
func TestFloodDoesNotHoldBackOthers(t *testing.T) {
	m := &skips{}
	b, js := startWithContexts(t, bus.Config{Metrics: m})
	mallory := watchView(t, js, "mallory")
	alice := watchView(t, js, "alice")
	last := floodContexts(t, js, "mallory", 3000)
	published := time.Now()
	publish(t, b, routing.System, "alice", "CONTEXT_CREATED", `{"contextId":"a1"}`)
	alice.await(t, func(v contexts.View) bool { return v.Contexts["a1"] != nil })
	t.Logf("alice's event reached her view %v after it was published, behind 3,000 of mallory's", time.Since(published))
	v := mallory.await(t, func(v contexts.View) bool { return v.Seq == last })
	if len(v.Contexts) == 0 || len(v.Contexts) > contexts.MaxContexts {
		t.Fatalf("mallory's view holds %d contexts, want 1 to %d", len(v.Contexts), contexts.MaxContexts)
	}
	if got := m.String(); got != "map[]" {
		t.Fatalf("skipped = %s, want nothing", got)
	}
}

// recreate deletes a view bucket's stream and waits until eventsd has created it again and set
// it to drop its oldest views: for an update advisory generated after the deletion. Not the
// creation advisory: the server sends it before the stream can be looked up. And not the first
// one delivered: those of the bucket's first creation, when the test started, may come late.
func recreate(t *testing.T, js jetstream.JetStream, stream string) {
	t.Helper()
	created := make(chan time.Time, 16)
	sub, err := js.Conn().Subscribe("$JS.EVENT.ADVISORY.STREAM.UPDATED."+stream, func(msg *nats.Msg) {
		var a struct {
			Timestamp time.Time `json:"timestamp"`
		}
		if json.Unmarshal(msg.Data, &a) == nil {
			select {
			case created <- a.Timestamp:
			default:
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := js.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t)
	deleted := time.Now()
	if err := js.DeleteStream(ctx, stream); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case at := <-created:
			if at.After(deleted) {
				return
			}
		case <-ctx.Done():
			t.Fatalf("%s was not created again", stream)
		}
	}
}

// TestFullBucketDropsLeastRecentViews: the CONTEXTS bucket holds at most the streams' byte
// limit; past it the views least recently written are dropped, and writing goes on. A user
// whose view was dropped starts again from nothing. A deleted bucket comes back with the same
// limit and policy.
func TestFullBucketDropsLeastRecentViews(t *testing.T) {
	const limit = 64 << 10
	m := &skips{}
	opts := routing.DefaultStreamOptions
	opts.MaxBytes = limit
	b, js := startWithContexts(t, bus.Config{Metrics: m, Streams: opts})
	ctx := testContext(t)
	kv := bucket(t, js)
	checkBucket(t, js, limit, "created")
	// A bucket as the earlier release created it is updated in place.
	old := bucketInfo(t, js).Config
	old.Discard, old.MaxBytes = jetstream.DiscardNew, -1
	if _, err := js.UpdateStream(ctx, old); err != nil {
		t.Fatal(err)
	}
	if err := b.EnsureStreams(ctx); err != nil {
		t.Fatal(err)
	}
	checkBucket(t, js, limit, "updated")

	// Views of about 4.6 KB (an id of 250 control characters, its own name), 60 users: four
	// times what the bucket holds.
	const users = 60
	ctrl := strings.Repeat(`\u0001`, 250)
	user := func(i int) string { return fmt.Sprintf("u%03d", i) }
	createInWaves(t, js, users, user, ctrl)
	info := checkBucket(t, js, limit, "full")
	if info.State.Bytes > limit || info.State.Msgs >= users {
		t.Fatalf("bucket holds %d views in %d bytes, want fewer than %d in at most %d", info.State.Msgs, info.State.Bytes, users, limit)
	}
	first, _ := contexts.Key(user(0))
	if _, err := kv.Get(ctx, first); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("the least recently written view: Get = %v, want %v", err, jetstream.ErrKeyNotFound)
	}
	if got := m.String(); got != "map[]" {
		t.Fatalf("skipped = %s, want nothing", got)
	}
	t.Logf("the bucket holds %d of %d views in %d bytes", info.State.Msgs, users, info.State.Bytes)

	checkDroppedViewRebuilt(t, b, js, user(0), ctrl)

	// Deleted, the bucket is created again, then set to drop its oldest views.
	recreate(t, js, "KV_"+routing.BucketContexts)
	checkBucket(t, js, limit, "recreated")
	alice := watchView(t, js, "alice")
	publish(t, b, routing.System, "alice", "CONTEXT_CREATED", `{"contextId":"a1"}`)
	alice.await(t, func(v contexts.View) bool { return v.Contexts["a1"] != nil })
}

// checkBucket checks that the CONTEXTS bucket holds at most limit bytes and drops its oldest
// views when full, and returns its state; when says at which step of the test.
func checkBucket(t *testing.T, js jetstream.JetStream, limit int64, when string) jetstream.StreamInfo {
	t.Helper()
	info := bucketInfo(t, js)
	if info.Config.Discard != jetstream.DiscardOld || info.Config.MaxBytes != limit || info.Config.MaxMsgsPerSubject != 1 {
		t.Fatalf("%s: bucket discard %v, max bytes %d, history %d, want %v, %d, 1", when,
			info.Config.Discard, info.Config.MaxBytes, info.Config.MaxMsgsPerSubject, jetstream.DiscardOld, limit)
	}
	return *info
}

// bucketInfo returns the settings and state of the CONTEXTS bucket's stream.
func bucketInfo(t *testing.T, js jetstream.JetStream) *jetstream.StreamInfo {
	t.Helper()
	ctx := testContext(t)
	s, err := js.Stream(ctx, "KV_"+routing.BucketContexts)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// createInWaves publishes a CONTEXT_CREATED event naming a context by id for each of users
// users, straight to NATS, in waves of ten. Each wave is in the views before the next is
// published, so that the CONTEXT stream, under the bucket's limit, keeps every event until it
// is applied.
func createInWaves(t *testing.T, js jetstream.JetStream, users int, user func(int) string, id string) {
	t.Helper()
	const wave = 10
	for i := 0; i < users; i += wave {
		last := watchView(t, js, user(i+wave-1))
		for j := i; j < i+wave; j++ {
			publishNATS(t, js, "context.system."+user(j)+".CONTEXT_CREATED", `{"contextId":"`+id+`"}`)
		}
		last.await(t, func(v contexts.View) bool { return len(v.Contexts) == 1 })
	}
}

// checkDroppedViewRebuilt checks that the view of user, dropped from the full bucket, is
// rebuilt from what CONTEXT, under the same limit, still holds of the user's events (a context
// named id): the user's next event starts it again from them, and the snapshot shows it.
func checkDroppedViewRebuilt(t *testing.T, b *bus.Bus, js jetstream.JetStream, user, id string) {
	t.Helper()
	want := map[string]bool{"again": true}
	held := storedEvents(t, js, user)
	if held > 0 {
		want[id] = true
	}
	t.Logf("CONTEXT holds %d of %s's events", held, user)
	dropped := watchView(t, js, user)
	publish(t, b, routing.System, user, "CONTEXT_CREATED", `{"contextId":"again"}`)
	v := dropped.await(t, func(v contexts.View) bool { return v.Contexts["again"] != nil })
	if len(v.Contexts) != len(want) {
		t.Fatalf("%s's view after it was dropped = %+v, want %d contexts", user, v, len(want))
	}
	f, err := b.Subscribe(testContext(t), routing.Subscription{Channel: routing.Contexts, User: user})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := snapshotIDs(t, f); !strings.HasPrefix(got, "[again") || len(want) == 1 && got != "[again]" {
		t.Fatalf("%s's snapshot = %s, want again first, of %d", user, got, len(want))
	}
}

// TestProjectorsOnAClusterAgree: two nodes project one R3 stream into the same views. A view
// the other node changed meanwhile (a compare-and-set conflict, which a replicated stream
// reports with a code of its own) is brought up to date on the fresh view, never passed over.
func TestProjectorsOnAClusterAgree(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node NATS cluster")
	}
	cluster := testplane.StartCluster(t, 3)
	opts := routing.DefaultStreamOptions
	opts.Replicas = 3
	m := &skips{}
	var nodes []*bus.Bus
	for range 2 {
		b, err := bus.Connect(testContext(t), bus.Config{URL: cluster.URLs(), Streams: opts, Metrics: m})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		// A cluster that has just started elects its JetStream leader first.
		deadline := time.Now().Add(30 * time.Second)
		for {
			attempt, cancel := context.WithTimeout(testContext(t), 3*time.Second)
			err := b.EnsureStreams(attempt)
			cancel()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal(err)
			}
		}
		if err := b.StartContexts(testContext(t)); err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, b)
	}
	_, js := testplane.Client(t, cluster.URLs())
	alice := watchView(t, js, "alice")
	const n = 100
	for i := range n {
		publish(t, nodes[i%2], routing.System, "alice", "CONTEXT_CREATED", fmt.Sprintf(`{"contextId":"c%d"}`, i))
	}
	alice.await(t, func(v contexts.View) bool { return len(v.Contexts) == n })
	if got := m.String(); got != "map[]" {
		t.Fatalf("skipped = %s, want nothing: both nodes apply every event", got)
	}
}

// storedEvents returns how many of user's context events the CONTEXT stream holds.
func storedEvents(t *testing.T, js jetstream.JetStream, user string) int {
	t.Helper()
	ctx := testContext(t)
	s, err := js.Stream(ctx, routing.StreamContext)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter("context.*."+user+".*"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for subject, c := range info.State.Subjects {
		if contexts.Relevant(subject) {
			n += int(c)
		}
	}
	return n
}

// dropView makes the CONTEXTS bucket drop user's view, as a full bucket drops the views least
// recently written: it shrinks the bucket's limit to what it holds, writes another user's view
// of the size of user's (so that the bucket must drop the oldest) and sets the limit back.
func dropView(t *testing.T, b *bus.Bus, js jetstream.JetStream, user, other string) {
	t.Helper()
	ctx := testContext(t)
	kv := bucket(t, js)
	key, _ := contexts.Key(user)
	info := bucketInfo(t, js)
	cfg := info.Config
	limit := cfg.MaxBytes
	cfg.MaxBytes = int64(info.State.Bytes) + 200
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	w := watchView(t, js, other)
	publish(t, b, routing.System, other, "CONTEXT_CREATED", `{"contextId":"o1","name":"`+strings.Repeat("x", 240)+`"}`)
	w.await(t, func(v contexts.View) bool { return v.Contexts["o1"] != nil })
	if _, err := kv.Get(ctx, key); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("%s's view not dropped: Get = %v", user, err)
	}
	cfg.MaxBytes = limit
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
}

// TestDroppedViewIsRebuilt: a view dropped from a full bucket is not lost while CONTEXT holds
// the user's events: a snapshot meanwhile is built from them, the user's next event rebuilds
// the view from them (on an ordered consumer, deleted once read) before it is applied, and a
// restarted node's replay leaves it so. A user seen for the first time costs no consumer.
func TestDroppedViewIsRebuilt(t *testing.T) {
	m := &skips{}
	b, url := testplane.StartBus(t, bus.Config{Metrics: m})
	if err := b.StartContexts(testContext(t)); err != nil {
		t.Fatal(err)
	}
	_, js := testplane.Client(t, url)
	ctx := testContext(t)

	created, _ := m.consumers()
	alice := watchView(t, js, "alice")
	var last bus.Ack
	for i := range 3 {
		last = publish(t, b, routing.System, "alice", "CONTEXT_CREATED", fmt.Sprintf(`{"contextId":"a%d"}`, i))
	}
	alice.await(t, func(v contexts.View) bool { return v.Seq == last.Seq })
	if now, _ := m.consumers(); now != created {
		t.Fatalf("a new user's first events opened %d consumers, want none", now-created)
	}

	dropView(t, b, js, "alice", "bob")
	// Meanwhile a snapshot shows what CONTEXT holds of alice's.
	f, err := b.Subscribe(ctx, routing.Subscription{Channel: routing.Contexts, User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if got := snapshotIDs(t, f); got != "[a2 a1 a0]" || f.Prelude()[0].Cursor.Seq < last.Seq {
		t.Fatalf("snapshot of a dropped view = %s at %v, want [a2 a1 a0] at %d or later", got, f.Prelude()[0].Cursor, last.Seq)
	}
	f.Close()

	created, deleted := m.consumers()
	alice = watchView(t, js, "alice")
	again := publish(t, b, routing.System, "alice", "CONTEXT_CREATED", `{"contextId":"again"}`)
	v := alice.await(t, func(v contexts.View) bool { return v.Contexts["again"] != nil })
	if len(v.Contexts) != 4 || v.Seq != again.Seq {
		t.Fatalf("view after it was dropped = %+v, want a0..a2 and again, at %d", v, again.Seq)
	}
	// The view is written once the rebuild's consumer is deleted.
	if c, d := m.consumers(); c != created+1 || d != deleted+1 {
		t.Fatalf("rebuilding opened %d consumers and deleted %d, want 1 and 1", c-created, d-deleted)
	}

	// A node restart: the new projector replays CONTEXT from its first event, and changes
	// nothing.
	_ = b.Close()
	b2 := restartNode(t, url, m)
	carol := watchView(t, js, "carol")
	publish(t, b2, routing.System, "carol", "CONTEXT_CREATED", `{"contextId":"marker"}`)
	carol.await(t, func(v contexts.View) bool { return v.Contexts["marker"] != nil })
	if after := storedView(t, js, "alice"); len(after.Contexts) != 4 || after.Seq != again.Seq {
		t.Fatalf("view after the restart's replay = %+v, want a0..a2 and again, at %d", after, again.Seq)
	}
	if got := m.String(); got != "map[]" {
		t.Fatalf("skipped = %s, want nothing", got)
	}
}

// restartNode connects a new Bus to the server at url, as a restarted node, with its streams
// and the contexts projector, until the test ends.
func restartNode(t *testing.T, url string, m bus.Metrics) *bus.Bus {
	t.Helper()
	ctx := testContext(t)
	b, err := bus.Connect(ctx, bus.Config{URL: url, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	if err := b.EnsureStreams(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.StartContexts(ctx); err != nil {
		t.Fatal(err)
	}
	return b
}

// storedView returns user's view as the CONTEXTS bucket holds it.
func storedView(t *testing.T, js jetstream.JetStream, user string) contexts.View {
	t.Helper()
	key, _ := contexts.Key(user)
	e, err := bucket(t, js).Get(testContext(t), key)
	if err != nil {
		t.Fatal(err)
	}
	var v contexts.View
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestRecreatedBucketUnderLoad: the CONTEXTS bucket deleted while context events keep coming.
// Events the projector applies between the bucket's recreation and its restart find their
// views missing: each view is rebuilt from CONTEXT before they are applied, so none of them
// hides a user's earlier events from the replay, and every user's first context is back.
func TestRecreatedBucketUnderLoad(t *testing.T) {
	m := &skips{}
	b, js := startWithContexts(t, bus.Config{Metrics: m})
	const users = 40
	user := func(i int) string { return fmt.Sprintf("u%02d", i) }
	for i := range users {
		publish(t, b, routing.System, user(i), "CONTEXT_CREATED", `{"contextId":"old"}`)
	}
	last := watchView(t, js, user(users-1))
	last.await(t, func(v contexts.View) bool { return v.Contexts["old"] != nil })

	load := startLoad(t, b, users, user)
	// Events flowing, the bucket goes; it comes back, and more events follow.
	load.await(t, users)
	recreate(t, js, "KV_"+routing.BucketContexts)
	load.await(t, load.await(t, 0)+4*users)
	load.halt()

	for i := range users {
		w := watchView(t, js, user(i))
		w.await(t, func(v contexts.View) bool { return v.Contexts["old"] != nil })
	}
	if got := m.String(); got != "map[]" {
		t.Fatalf("skipped = %s, want nothing", got)
	}
}

// contextsLoad publishes context events until halted.
type contextsLoad struct {
	published chan int // offered the count of events published so far, after each
	stop      chan struct{}
	wg        sync.WaitGroup
}

// startLoad publishes CONTEXT_CREATED events through b for users user(0) to user(users-1) in
// turn, each naming one of five contexts, until halted or the test ends.
func startLoad(t *testing.T, b *bus.Bus, users int, user func(int) string) *contextsLoad {
	ctx := testContext(t)
	l := &contextsLoad{published: make(chan int, 1), stop: make(chan struct{})}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for n := 0; ; n++ {
			select {
			case <-l.stop:
				return
			case l.published <- n:
			default:
			}
			subject, _ := routing.SubjectFor(routing.System, user(n%users), "CONTEXT_CREATED")
			if _, err := b.Publish(ctx, subject, []byte(fmt.Sprintf(`{"contextId":"n%d"}`, (n/users)%5)), ""); err != nil && ctx.Err() != nil {
				return
			}
		}
	}()
	t.Cleanup(l.halt)
	return l
}

// await waits until at least atLeast events are published, and returns how many are.
func (l *contextsLoad) await(t *testing.T, atLeast int) int {
	t.Helper()
	ctx := testContext(t)
	for {
		select {
		case n := <-l.published:
			if n >= atLeast {
				return n
			}
		case <-ctx.Done():
			t.Fatal("events stopped")
		}
	}
}

// halt stops publishing and waits until the last publish has returned.
func (l *contextsLoad) halt() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}
