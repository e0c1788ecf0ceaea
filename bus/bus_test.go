package bus_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/eventsd/eventsd/bus"
	"github.com/eventsd/eventsd/embedded"
	"github.com/eventsd/eventsd/event"
	"github.com/eventsd/eventsd/internal/testplane"
	"github.com/eventsd/eventsd/routing"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// start runs an embedded JetStream server and a Bus with its streams for one test.
func start(t testing.TB) *bus.Bus {
	t.Helper()
	b, _ := testplane.StartBus(t, bus.Config{})
	return b
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func publish(t *testing.T, b *bus.Bus, c routing.Channel, user, typ, data string) bus.Ack {
	t.Helper()
	subject, err := routing.SubjectFor(c, user, typ)
	if err != nil {
		t.Fatal(err)
	}
	ack, err := b.Publish(testContext(t), subject, []byte(data), "")
	if err != nil {
		t.Fatalf("Publish(%s): %v", subject, err)
	}
	return ack
}

func next(t *testing.T, f *bus.Feed) bus.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ev, err := f.Next(ctx)
	if err != nil {
		t.Fatalf("no event: %v", err)
	}
	return ev
}

func TestEnsureStreamsIsIdempotent(t *testing.T) {
	b := start(t)
	ctx := testContext(t)
	publish(t, b, routing.AGUI, "alice", "RUN_STARTED", `{"type":"RUN_STARTED"}`)
	if err := b.EnsureStreams(ctx); err != nil {
		t.Fatalf("second EnsureStreams: %v", err)
	}
	st, err := b.Stream(ctx, routing.StreamAGUI)
	if err != nil || st.Msgs != 1 {
		t.Fatalf("Stream(AGUI) = %+v, %v, want 1 message kept", st, err)
	}
	if err := b.Ready(ctx); err != nil {
		t.Fatalf("Ready() = %v", err)
	}
}

func TestContextFanIn(t *testing.T) {
	b := start(t)
	ctx := testContext(t)
	f, err := b.Subscribe(ctx, routing.Subscription{Channel: routing.Contexts, User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	publish(t, b, routing.AGUI, "alice", "RUN_STARTED", `{"n":1}`)
	publish(t, b, routing.A2A, "alice", "TASK_SUBMITTED", `{"n":2}`)
	publish(t, b, routing.System, "alice", "CONTEXT_CREATED", `{"n":3}`)
	publish(t, b, routing.AGUI, "bob", "RUN_STARTED", `{"n":4}`)
	publish(t, b, routing.Analytics, "alice", "PAGE_VIEW", `{"n":5}`)
	got := map[string]string{}
	for range 3 {
		ev := next(t, f)
		got[ev.Subject] = string(ev.Data)
	}
	want := map[string]string{
		"context.agui.alice.RUN_STARTED":       `{"n":1}`,
		"context.a2a.alice.TASK_SUBMITTED":     `{"n":2}`,
		"context.system.alice.CONTEXT_CREATED": `{"n":3}`,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("contexts feed = %v, want %v", got, want)
	}
	// A marker published last proves nothing else for alice was queued before it.
	publish(t, b, routing.System, "alice", "MARKER", `{}`)
	if ev := next(t, f); ev.Subject != "context.system.alice.MARKER" {
		t.Fatalf("after the three events got %s %s, want the marker", ev.Subject, ev.Data)
	}
}

func TestSubscribeResumesAndCleansUp(t *testing.T) {
	b, _ := testplane.StartBus(t, bus.Config{Delivery: bus.DeliveryConsumer})
	ctx := testContext(t)
	var acks []bus.Ack
	for i := range 5 {
		acks = append(acks, publish(t, b, routing.AGUI, "alice", "STEP_STARTED", fmt.Sprintf(`{"i":%d}`, i)))
	}
	f, err := b.Subscribe(ctx, routing.Subscription{Channel: routing.AGUI, User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	epoch := next2cursor(t, b, f).Epoch
	f.Close()

	from := routing.Cursor{Seq: acks[1].Seq, Epoch: epoch}
	f, err = b.Subscribe(ctx, routing.Subscription{Channel: routing.AGUI, User: "alice", Cursor: &from})
	if err != nil {
		t.Fatal(err)
	}
	if f.Notice() != nil {
		t.Fatalf("Notice = %+v, want none", f.Notice())
	}
	for i := 2; i < 5; i++ {
		if ev := next(t, f); ev.Cursor.Seq != acks[i].Seq || string(ev.Data) != fmt.Sprintf(`{"i":%d}`, i) {
			t.Fatalf("event %d = %d %s, want seq %d", i, ev.Cursor.Seq, ev.Data, acks[i].Seq)
		}
	}
	f.Close()
	if st, err := b.Stream(ctx, routing.StreamAGUI); err != nil || st.Consumers != 0 {
		t.Fatalf("after Close: %d consumers, %v; want 0", st.Consumers, err)
	}

	stale := routing.Cursor{Seq: 1, Epoch: epoch + 1}
	f, err = b.Subscribe(ctx, routing.Subscription{Channel: routing.AGUI, User: "alice", Cursor: &stale})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Notice() == nil || f.Notice().Reason != bus.NoticeStreamRecreated {
		t.Fatalf("Notice = %+v, want %s", f.Notice(), bus.NoticeStreamRecreated)
	}
	if ev := next(t, f); ev.Cursor.Seq != acks[0].Seq {
		t.Fatalf("after a recreated-stream notice got seq %d, want the first, %d", ev.Cursor.Seq, acks[0].Seq)
	}

	ahead := routing.Cursor{Seq: 1000, Epoch: epoch}
	if _, err := b.Subscribe(ctx, routing.Subscription{Channel: routing.AGUI, User: "alice", Cursor: &ahead}); !errors.Is(err, bus.ErrCursorAhead) {
		t.Fatalf("Subscribe(cursor ahead) = %v, want ErrCursorAhead", err)
	}
}

// next2cursor publishes one event and returns the cursor the open feed reports for it.
func next2cursor(t *testing.T, b *bus.Bus, f *bus.Feed) routing.Cursor {
	t.Helper()
	ack := publish(t, b, routing.AGUI, "alice", "STEP_FINISHED", `{}`)
	ev := next(t, f)
	if ev.Cursor.Seq != ack.Seq {
		t.Fatalf("live event seq = %d, want %d", ev.Cursor.Seq, ack.Seq)
	}
	return ev.Cursor
}

// exampleBus runs an embedded server and a Bus for an example; stop ends both.
func exampleBus() (b *bus.Bus, stop func()) {
	dir, _ := os.MkdirTemp("", "bus-example")
	srv, _ := embedded.Start(embedded.Options{StoreDir: dir, User: "eventsd", Password: "example"})
	b, _ = bus.Connect(context.Background(), bus.Config{URL: srv.AuthURL()})
	_ = b.EnsureStreams(context.Background())
	return b, func() {
		b.Close()
		srv.Shutdown()
		os.RemoveAll(dir)
	}
}

func Example() {
	b, stop := exampleBus()
	defer stop()
	ctx := context.Background()

	feed, _ := b.Subscribe(ctx, routing.Subscription{Channel: routing.Contexts, User: "alice"})
	defer feed.Close()
	subject, _ := routing.SubjectFor(routing.AGUI, "alice", "RUN_STARTED")
	ack, _ := b.Publish(ctx, subject, []byte(`{"type":"RUN_STARTED"}`), "")
	ev, _ := feed.Next(ctx)
	fmt.Println(ack.Stream, ack.Seq, ev.Subject, string(ev.Data))
	// Output: AGUI 1 context.agui.alice.RUN_STARTED {"type":"RUN_STARTED"}
}

func ExampleBus_PublishEvent() {
	b, stop := exampleBus()
	defer stop()
	ctx := context.Background()

	ack, err := b.PublishEvent(ctx, "alice", event.TextMessageContent{MessageID: "m1", Delta: "Hello"})
	fmt.Println(ack.Stream, ack.Seq, err)
	ack, err = b.PublishEvent(ctx, "alice", event.TaskStatusUpdate{TaskID: "t1", ContextID: "c1", State: "TASK_STATE_WORKING"})
	fmt.Println(ack.Stream, ack.Seq, err)
	// Output:
	// AGUI 1 <nil>
	// A2A 1 <nil>
}

func TestPublishEventReachesContexts(t *testing.T) {
	b := start(t)
	ctx := testContext(t)
	f, err := b.Subscribe(ctx, routing.Subscription{Channel: routing.Contexts, User: "a@b"})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := b.PublishEvent(ctx, "a@b", event.RunStarted{Timestamp: 7, ThreadID: "t", RunID: "r"}); err != nil {
		t.Fatal(err)
	}
	ev := next(t, f)
	if want := `{"type":"RUN_STARTED","timestamp":7,"threadId":"t","runId":"r"}`; ev.Subject != "context.agui.~YUBi.RUN_STARTED" || string(ev.Data) != want {
		t.Fatalf("contexts got %s %s, want %s", ev.Subject, ev.Data, want)
	}
}

// TestStalledFeedIsBounded never reads a feed while 20,000 events are stored for it: the events
// held for it in this process stay within the feed's buffer and one pull batch; the rest wait
// in the stream. On the shared path the shared feed drops the stalled feed once its queue is full, and
// the feed goes on from a catch-up consumer, bounded the same way.
func TestStalledFeedIsBounded(t *testing.T) {
	for _, mode := range []string{bus.DeliveryConsumer, bus.DeliveryShared} {
		t.Run(mode, func(t *testing.T) { testStalledFeed(t, mode) })
	}
}

func testStalledFeed(t *testing.T, mode string) {
	b, url := testplane.StartBus(t, bus.Config{Delivery: mode, Queue: 256})
	ctx := testContext(t)
	f, err := b.Subscribe(ctx, routing.Subscription{Channel: routing.AGUI, User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	const n = 20_000
	for i := range n {
		if _, err := js.PublishAsync("agui.alice.X", []byte(`{"type":"X"}`)); err != nil {
			t.Fatal(err)
		}
		if i%1000 == 999 {
			<-js.PublishAsyncComplete() // stay within the client's window of unacknowledged publishes
		}
	}
	<-js.PublishAsyncComplete()
	// The consumer has delivered what the process holds: 64 events in the feed, a pull batch
	// (64, or 512 for a shared-path catch-up consumer), and the one being handed over.
	bound := 64 + 64 + 1
	if mode == bus.DeliveryShared {
		bound = 64 + 512 + 1
	}
	// The feed's queue is full: the buffer in the consumer mode, the queue limit on the
	// shared path (the live feed filled it before the catch-up consumer took over).
	want := 64
	if mode == bus.DeliveryShared {
		want = 256
	}
	stream, err := js.Stream(ctx, routing.StreamAGUI)
	if err != nil {
		t.Fatal(err)
	}
	// What was stored: under load a publish can time out, so the count comes from the stream.
	sinfo, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stored := sinfo.State.Msgs
	if stored < n/2 {
		t.Fatalf("only %d of %d events stored", stored, n)
	}
	cons := stream.ListConsumers(ctx)
	for info := range cons.Info() {
		if strings.HasPrefix(info.Name, bus.SharedConsumerPrefix) {
			continue // the shared feed's own consumer, which delivers every event to the node
		}
		if info.Delivered.Consumer > uint64(bound) || info.NumPending+info.Delivered.Consumer+uint64(want) < stored {
			t.Fatalf("stalled feed: %d delivered, %d pending; want at most %d delivered", info.Delivered.Consumer, info.NumPending, bound)
		}
		t.Logf("stalled feed: %d delivered to the process, %d pending in the stream", info.Delivered.Consumer, info.NumPending)
	}
	if got := bus.Queued(f); got != want {
		t.Fatalf("feed holds %d events, want %d", got, want)
	}
}

// TestFeedThatFallsBehind: a live feed on the shared path whose reader stops while far more
// events arrive than its queue holds is dropped by the shared feed, catches up on a consumer of
// its own (again and again while it stays behind), and its reader still gets every event once,
// in order, with no consumer left afterwards.
func TestFeedThatFallsBehind(t *testing.T) {
	b, url := testplane.StartBus(t, bus.Config{Queue: 16, ReadAhead: 8})
	_, js := testplane.Client(t, url)
	ctx := testContext(t)
	f, err := b.Subscribe(ctx, routing.Subscription{Channel: routing.AGUI, User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	var acks []bus.Ack
	for i := range 500 {
		acks = append(acks, publish(t, b, routing.AGUI, "alice", "STEP_STARTED", fmt.Sprintf(`{"i":%d}`, i)))
		if i%100 == 99 { // read a little now and then, while the rest piles up
			if ev := next(t, f); ev.Cursor.Seq != acks[i/100].Seq {
				t.Fatalf("event %d: sequence %d, want %d", i/100, ev.Cursor.Seq, acks[i/100].Seq)
			}
		}
	}
	for i := 5; i < len(acks); i++ {
		if ev := next(t, f); ev.Cursor.Seq != acks[i].Seq || string(ev.Data) != fmt.Sprintf(`{"i":%d}`, i) {
			t.Fatalf("event %d: %d %s, want %d", i, ev.Cursor.Seq, ev.Data, acks[i].Seq)
		}
	}
	f.Close()
	stream, err := js.Stream(ctx, routing.StreamAGUI)
	if err != nil {
		t.Fatal(err)
	}
	names := stream.ConsumerNames(ctx)
	for n := range names.Name() {
		if !strings.HasPrefix(n, bus.SharedConsumerPrefix) {
			t.Fatalf("consumer %s left after the feed closed", n)
		}
	}
}

// TestFeedOutlivesShortOutage: NATS restarts within the grace period. A publish made while it
// is away waits and is stored, and the open feed (live on the shared feed, or with a consumer of
// its own) goes on without a gap once its consumer (held in the server's memory, so gone) is
// recreated.
func TestFeedOutlivesShortOutage(t *testing.T) {
	for _, mode := range []string{bus.DeliveryShared, bus.DeliveryConsumer} {
		t.Run(mode, func(t *testing.T) {
			store := t.TempDir()
			srv := testplane.StartNATS(t, store, 0)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			b, err := bus.Connect(ctx, bus.Config{URL: srv.AuthURL(), Delivery: mode, OutageGrace: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if err := b.EnsureStreams(ctx); err != nil {
				t.Fatal(err)
			}
			f, err := b.Subscribe(ctx, routing.Subscription{Channel: routing.AGUI, User: "alice"})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			before := publish(t, b, routing.AGUI, "alice", "STEP_STARTED", `{"i":1}`)
			if ev := next(t, f); ev.Cursor.Seq != before.Seq {
				t.Fatalf("before the outage: sequence %d, want %d", ev.Cursor.Seq, before.Seq)
			}

			port := srv.Port()
			srv.Shutdown()
			for b.Connected() { // until the Bus has seen NATS go
				time.Sleep(10 * time.Millisecond)
			}
			// A publish while NATS is away waits for it, within the grace period.
			subject, _ := routing.SubjectFor(routing.AGUI, "alice", "STEP_STARTED")
			type published struct {
				ack bus.Ack
				err error
			}
			done := make(chan published, 1)
			go func() {
				ack, err := b.Publish(ctx, subject, []byte(`{"i":2}`), "")
				done <- published{ack, err}
			}()
			testplane.StartNATS(t, store, port)
			p := <-done
			if p.err != nil {
				t.Fatalf("publish during the outage: %v, want it stored once NATS is back", p.err)
			}
			after := p.ack
			ev, err := f.Next(ctx)
			if err != nil || ev.Cursor.Seq != after.Seq {
				t.Fatalf("after the outage: %+v, %v; want sequence %d", ev, err, after.Seq)
			}
		})
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"nats://127.0.0.1:4222":                                "nats://127.0.0.1:4222",
		"nats://eventsd:s3cret@127.0.0.1:4222":                 "nats://eventsd:xxxxx@127.0.0.1:4222",
		"nats://tok3n@a:4222, nats://u:p@b:4222,nats://c:4222": "nats://xxxxx@a:4222,nats://u:xxxxx@b:4222,nats://c:4222",
		"nats://u:p@[::1:4222":                                 "<unparsable URL>",
	} {
		if got := bus.RedactURL(in); got != want || strings.Contains(got, "s3cret") {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
