package agentrt_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/eventsd/eventsd/agentrt"
	"github.com/eventsd/eventsd/bus"
	"github.com/eventsd/eventsd/event"
	"github.com/eventsd/eventsd/internal/testplane"
	"github.com/eventsd/eventsd/routing"
)

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// startRuntime connects a runtime's own Bus to url and serves the agent "echo" with h until the
// test ends; stop ends it earlier and returns what Serve returned.
func startRuntime(t *testing.T, url string, cfg agentrt.Config, h agentrt.Handler) (b *bus.Bus, stop func() error) {
	t.Helper()
	b, err := bus.Connect(testContext(t), bus.Config{URL: url, Name: "runtime"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	cfg.Agent, cfg.Bus = "echo", b
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- agentrt.Serve(ctx, cfg, h) }()
	var err2 error
	stopped := false
	stop = func() error {
		if !stopped {
			cancel()
			err2, stopped = <-done, true
		}
		return err2
	}
	t.Cleanup(func() { _ = stop() })
	return b, stop
}

func enqueue(t *testing.T, b *bus.Bus, runID string) *bus.Run {
	t.Helper()
	input := fmt.Sprintf(`{"threadId":"t1","runId":%q,"messages":[]}`, runID)
	r, err := b.EnqueueRun(testContext(t), bus.RunRequest{Agent: "echo", User: "alice", ThreadID: "t1", RunID: runID, Input: json.RawMessage(input)}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// record is a handler that says which run it handles, and answers with one text delta.
func record(handled chan<- string) agentrt.Handler {
	return func(ctx context.Context, run *agentrt.Run) error {
		select {
		case handled <- run.RunID():
		case <-ctx.Done():
			return ctx.Err()
		}
		return run.Emit(ctx, event.TextMessageContent{MessageID: "m-" + run.RunID(), Delta: "ok"})
	}
}

type runEvent struct{ Type, ThreadID, RunID, Message string }

func subscribe(t *testing.T, b *bus.Bus) *bus.Feed {
	t.Helper()
	f, err := b.Subscribe(testContext(t), routing.Subscription{Channel: routing.AGUI, User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f
}

func nextEvent(t *testing.T, f *bus.Feed) runEvent {
	t.Helper()
	ev, err := f.Next(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	var e runEvent
	if err := json.Unmarshal(ev.Data, &e); err != nil || e.ThreadID != "t1" || e.RunID == "" {
		t.Fatalf("event %s: want threadId t1 and a runId", ev.Data)
	}
	return e
}

// TestServeRunsEachRequestOnce: of two runtimes of one agent, one runs each request: every
// run starts once and finishes once on alice's stream.
func TestServeRunsEachRequestOnce(t *testing.T) {
	const n = 10
	b, url := testplane.StartBus(t, bus.Config{})
	f := subscribe(t, b)
	handled := make(chan string, n)
	for range 2 {
		startRuntime(t, url, agentrt.Config{}, record(handled))
	}
	for i := range n {
		enqueue(t, b, fmt.Sprintf("r%d", i))
	}
	started, finished := map[string]int{}, map[string]int{}
	for len(finished) < n {
		switch e := nextEvent(t, f); e.Type {
		case "RUN_STARTED":
			started[e.RunID]++
		case "RUN_FINISHED":
			finished[e.RunID]++
		}
	}
	for i := range n {
		id := fmt.Sprintf("r%d", i)
		if started[id] != 1 || finished[id] != 1 {
			t.Errorf("run %s: started %d times, finished %d times, want once each", id, started[id], finished[id])
		}
	}
	if len(handled) != n {
		t.Errorf("handlers ran %d times for %d requests", len(handled), n)
	}
}

// TestServeHandlerError: a handler's error ends the run with RUN_ERROR carrying its text.
func TestServeHandlerError(t *testing.T) {
	b, url := testplane.StartBus(t, bus.Config{})
	f := subscribe(t, b)
	startRuntime(t, url, agentrt.Config{}, func(context.Context, *agentrt.Run) error { return errors.New("model unavailable") })
	enqueue(t, b, "r1")
	if e := nextEvent(t, f); e.Type != "RUN_STARTED" {
		t.Fatalf("first event %+v, want RUN_STARTED", e)
	}
	if e := nextEvent(t, f); e.Type != "RUN_ERROR" || e.Message != "model unavailable" || e.RunID != "r1" {
		t.Fatalf("second event %+v, want RUN_ERROR of r1 with the handler's error", e)
	}
}

// TestServeRuntimeKilledMidRun: a runtime whose connection goes mid-run stops keeping its
// request alive; the node that enqueued it learns that the runtime is lost, and the request is
// not run again by the runtime that comes next.
func TestServeRuntimeKilledMidRun(t *testing.T) {
	b, url := testplane.StartBus(t, bus.Config{})
	cfg := agentrt.Config{AckWait: time.Second}
	running := make(chan struct{})
	killed, stop := startRuntime(t, url, cfg, func(ctx context.Context, run *agentrt.Run) error {
		close(running)
		<-ctx.Done()
		return ctx.Err()
	})
	r1 := enqueue(t, b, "r1")
	testplane.Await(t, testContext(t), r1.Taken(), "Taken")
	testplane.Await(t, testContext(t), running, "handler running")
	if err := killed.Close(); err != nil {
		t.Fatal(err)
	}
	testplane.Await(t, testContext(t), r1.Ended(), "Ended")
	if err := r1.Err(); !errors.Is(err, bus.ErrRuntimeLost) {
		t.Fatalf("Err() = %v, want ErrRuntimeLost", err)
	}
	_ = stop() // its connection is closed: it ends with an error

	handled := make(chan string, 2)
	startRuntime(t, url, cfg, record(handled))
	r2 := enqueue(t, b, "r2")
	testplane.Await(t, testContext(t), r2.Taken(), "Taken")
	select {
	case id := <-handled:
		if id != "r2" {
			t.Fatalf("the next runtime ran %s, want r2: the lost request ran again", id)
		}
	case <-testContext(t).Done():
		t.Fatal("the next runtime ran nothing")
	}
}

// TestServeOutlivesItsQueue: the agent's consumer removed while the runtime waits for requests
// (an operator, or RUNS recreated) does not stop the runtime: it sets the consumer up again and
// runs the next request.
func TestServeOutlivesItsQueue(t *testing.T) {
	b, url := testplane.StartBus(t, bus.Config{})
	handled := make(chan string, 2)
	_, stop := startRuntime(t, url, agentrt.Config{}, record(handled))
	r1 := enqueue(t, b, "r1")
	testplane.Await(t, testContext(t), r1.Ended(), "r1 Ended")
	_, js := testplane.Client(t, url)
	if err := js.DeleteConsumer(testContext(t), routing.StreamRuns, "runs-echo"); err != nil {
		t.Fatal(err)
	}
	r2 := enqueue(t, b, "r2")
	testplane.Await(t, testContext(t), r2.Ended(), "r2 Ended")
	if err := r2.Err(); err != nil {
		t.Fatalf("r2: %v", err)
	}
	for _, want := range []string{"r1", "r2"} {
		if id := <-handled; id != want {
			t.Fatalf("handled %s, want %s", id, want)
		}
	}
	if err := stop(); err != nil {
		t.Fatalf("Serve = %v, want nil once stopped", err)
	}
}
