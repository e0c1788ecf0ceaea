package bus_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsd/eventsd/bus"
	"github.com/eventsd/eventsd/event"
	"github.com/eventsd/eventsd/internal/testplane"
	"github.com/eventsd/eventsd/routing"
)

// connect connects another Bus to the server at url, as a runtime process would, until the
// test ends (or until the test closes it: Close may be called twice).
func connect(t *testing.T, url string) *bus.Bus {
	t.Helper()
	b, err := bus.Connect(testContext(t), bus.Config{URL: url, Name: "runtime"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func runRequest(user, runID string) bus.RunRequest {
	return bus.RunRequest{
		Agent: "echo", User: user, ThreadID: "t1", RunID: runID,
		Input: json.RawMessage(fmt.Sprintf(`{"threadId":"t1","runId":%q,"messages":[]}`, runID)),
	}
}

// enqueue stores a run request and follows it until the test ends.
func enqueue(t *testing.T, b *bus.Bus, req bus.RunRequest, timeout time.Duration) *bus.Run {
	t.Helper()
	r, err := b.EnqueueRun(testContext(t), req, timeout)
	if err != nil {
		t.Fatalf("EnqueueRun(%s): %v", req.RunID, err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func queue(t *testing.T, b *bus.Bus, cfg bus.QueueConfig) *bus.RunQueue {
	t.Helper()
	q, err := b.RunQueue(testContext(t), "echo", cfg)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func take(t *testing.T, q *bus.RunQueue) *bus.TakenRun {
	t.Helper()
	taken, err := q.Next(testContext(t))
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return taken
}

func runsHeld(t *testing.T, b *bus.Bus) uint64 {
	t.Helper()
	st, err := b.Stream(testContext(t), routing.StreamRuns)
	if err != nil {
		t.Fatal(err)
	}
	return st.Msgs
}

// TestRunWaitsForRuntime: a request made while no runtime is up waits for one; the runtime
// that starts later takes it, with its user, thread, run and input, which removes it from the
// queue; the run ends when the runtime says it is over.
func TestRunWaitsForRuntime(t *testing.T) {
	b, url := testplane.StartBus(t, bus.Config{})
	req := runRequest("alice@example.com", "r1")
	run := enqueue(t, b, req, time.Minute)
	if closed(run.Taken()) || closed(run.Ended()) {
		t.Fatalf("with no runtime: taken %v, failed %v (%v), want neither", closed(run.Taken()), closed(run.Ended()), run.Err())
	}

	taken := take(t, queue(t, connect(t, url), bus.QueueConfig{}))
	testplane.Await(t, testContext(t), run.Taken(), "Taken")
	got := taken.Request()
	if got.Agent != req.Agent || got.User != req.User || got.ThreadID != req.ThreadID || got.RunID != req.RunID || string(got.Input) != string(req.Input) {
		t.Fatalf("Request() = %+v, want %+v", got, req)
	}
	if n := runsHeld(t, b); n != 0 {
		t.Fatalf("RUNS holds %d requests once the run is taken, want 0", n)
	}
	if closed(run.Ended()) {
		t.Fatalf("ended before the runtime said so: %v", run.Err())
	}
	if err := taken.Done(); err != nil {
		t.Fatalf("Done: %v", err)
	}
	testplane.Await(t, testContext(t), run.Ended(), "Ended")
	if err := run.Err(); err != nil {
		t.Fatalf("Err() = %v after Done, want nil", err)
	}
}

// TestRunWithoutRuntime: with no runtime, the run fails with ErrNoRuntime after its timeout.
// Close removes the request; a request not yet removed is refused to a runtime that comes
// later, which goes on to the next request.
func TestRunWithoutRuntime(t *testing.T) {
	b, url := testplane.StartBus(t, bus.Config{})
	run := enqueue(t, b, runRequest("alice", "r1"), 50*time.Millisecond)
	testplane.Await(t, testContext(t), run.Ended(), "Ended")
	if err := run.Err(); !errors.Is(err, bus.ErrNoRuntime) {
		t.Fatalf("Err() = %v, want ErrNoRuntime", err)
	}
	if err := run.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n := runsHeld(t, b); n != 0 {
		t.Fatalf("RUNS holds %d requests after Close, want 0", n)
	}

	late := enqueue(t, b, runRequest("alice", "r2"), 50*time.Millisecond)
	testplane.Await(t, testContext(t), late.Ended(), "Ended")
	current := enqueue(t, b, runRequest("alice", "r3"), time.Minute)
	taken := take(t, queue(t, connect(t, url), bus.QueueConfig{}))
	if id := taken.Request().RunID; id != "r3" {
		t.Fatalf("the runtime took %s, want r3 (r2 timed out)", id)
	}
	testplane.Await(t, testContext(t), current.Taken(), "Taken")
	if closed(late.Taken()) {
		t.Fatal("the timed-out run counts as taken")
	}
	if err := late.Close(); err != nil { // the runtime terminated it: nothing left to remove
		t.Fatalf("Close: %v", err)
	}
	if n := runsHeld(t, b); n != 0 {
		t.Fatalf("RUNS holds %d requests, want 0", n)
	}
}

// TestRunRuntimeLost: a runtime killed mid-run (its connection gone, so no keep-alive and no
// acknowledgement) is reported lost once the consumer's AckWait has passed, and its request is
// not offered again: the next runtime gets the next request.
func TestRunRuntimeLost(t *testing.T) {
	b, url := testplane.StartBus(t, bus.Config{})
	cfg := bus.QueueConfig{AckWait: time.Second}
	run := enqueue(t, b, runRequest("alice", "r1"), time.Minute)
	killed := connect(t, url)
	taken := take(t, queue(t, killed, cfg))
	testplane.Await(t, testContext(t), run.Taken(), "Taken")
	if _, err := taken.Publish(testContext(t), event.RunStarted{}); err != nil {
		t.Fatal(err)
	}
	if err := taken.KeepAlive(testContext(t)); err != nil {
		t.Fatal(err)
	}
	if err := killed.Close(); err != nil {
		t.Fatal(err)
	}

	testplane.Await(t, testContext(t), run.Ended(), "Ended")
	if err := run.Err(); !errors.Is(err, bus.ErrRuntimeLost) {
		t.Fatalf("Err() = %v, want ErrRuntimeLost", err)
	}
	next2 := enqueue(t, b, runRequest("alice", "r2"), time.Minute)
	again := take(t, queue(t, connect(t, url), cfg))
	if id := again.Request().RunID; id != "r2" {
		t.Fatalf("the next runtime took %s, want r2: the lost request was offered again", id)
	}
	testplane.Await(t, testContext(t), next2.Taken(), "Taken")
	if err := again.Done(); err != nil {
		t.Fatal(err)
	}
	if err := run.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n := runsHeld(t, b); n != 0 {
		t.Fatalf("RUNS holds %d requests after Close, want 0", n)
	}
}

// TestOneRuntimeOfTwo: two runtimes pull from one agent's queue; every request is taken by
// exactly one of them, and once all are done nothing is left to deliver again.
func TestOneRuntimeOfTwo(t *testing.T) {
	const n = 20
	b, url := testplane.StartBus(t, bus.Config{})
	ctx, cancel := context.WithCancel(testContext(t))
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	took := make(chan string, n)
	errs := make(chan error, 2)
	for range 2 {
		q := queue(t, connect(t, url), bus.QueueConfig{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				taken, err := q.Next(ctx)
				if err == nil {
					err = taken.Done()
				}
				if err == nil {
					select {
					case took <- taken.Request().RunID:
					case <-ctx.Done():
						return
					}
					continue
				}
				if ctx.Err() == nil {
					errs <- err
				}
				return
			}
		}()
	}
	var runs []*bus.Run
	for i := range n {
		runs = append(runs, enqueue(t, b, runRequest("alice", fmt.Sprintf("r%d", i)), time.Minute))
	}
	seen := map[string]int{}
	for range n {
		select {
		case id := <-took:
			seen[id]++
		case err := <-errs:
			t.Fatalf("runtime: %v", err)
		case <-testContext(t).Done():
			t.Fatalf("%d of %d requests taken", len(seen), n)
		}
	}
	for i, r := range runs {
		testplane.Await(t, testContext(t), r.Taken(), "Taken")
		if id := fmt.Sprintf("r%d", i); seen[id] != 1 {
			t.Errorf("request %s taken %d times, want once", id, seen[id])
		}
	}
	_, js := testplane.Client(t, url)
	cons, err := js.Consumer(testContext(t), routing.StreamRuns, "runs-echo")
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if info.NumPending != 0 || info.NumAckPending != 0 || info.NumRedelivered != 0 {
		t.Fatalf("consumer: %d pending, %d unacknowledged, %d redelivered, want none", info.NumPending, info.NumAckPending, info.NumRedelivered)
	}
}

// TestPublishRunEvent: a run's events carry its threadId and runId at the top level, in
// RUN_STARTED's own fields; an event naming another run is refused.
func TestPublishRunEvent(t *testing.T) {
	b := start(t)
	ctx := testContext(t)
	f, err := b.Subscribe(ctx, routing.Subscription{Channel: routing.AGUI, User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, ev := range []event.Event{event.RunStarted{}, event.TextMessageContent{MessageID: "m1", Delta: "hi"}} {
		if _, err := b.PublishRunEvent(ctx, "alice", "t1", "r1", ev); err != nil {
			t.Fatalf("PublishRunEvent(%s): %v", ev.EventType(), err)
		}
	}
	for _, typ := range []string{"RUN_STARTED", "TEXT_MESSAGE_CONTENT"} {
		ev := next(t, f)
		var got struct{ Type, ThreadID, RunID string }
		if err := json.Unmarshal(ev.Data, &got); err != nil || got.Type != typ || got.ThreadID != "t1" || got.RunID != "r1" {
			t.Fatalf("event %s, want %s of thread t1, run r1", ev.Data, typ)
		}
	}
	foreign := event.RunFinished{ThreadID: "t2"}
	if _, err := b.PublishRunEvent(ctx, "alice", "t1", "r1", foreign); !errors.Is(err, bus.ErrInvalidRun) {
		t.Fatalf("PublishRunEvent(RUN_FINISHED of t2) = %v, want ErrInvalidRun", err)
	}
}

// TestEnqueueRunRejects: a request that names no valid agent, user, thread or run, or whose
// input is not JSON, is not stored.
func TestEnqueueRunRejects(t *testing.T) {
	b := start(t)
	tests := []struct {
		name string
		edit func(*bus.RunRequest)
		want error
	}{
		{"agent with a dot", func(r *bus.RunRequest) { r.Agent = "a.b" }, routing.ErrInvalidAgent},
		{"no user", func(r *bus.RunRequest) { r.User = "" }, routing.ErrInvalidUser},
		{"no thread", func(r *bus.RunRequest) { r.ThreadID = "" }, bus.ErrInvalidRun},
		{"no run", func(r *bus.RunRequest) { r.RunID = "" }, bus.ErrInvalidRun},
		{"input not JSON", func(r *bus.RunRequest) { r.Input = json.RawMessage("{") }, bus.ErrInvalidRun},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := runRequest("alice", "r1")
			tt.edit(&req)
			if _, err := b.EnqueueRun(testContext(t), req, time.Minute); !errors.Is(err, tt.want) {
				t.Fatalf("EnqueueRun(%+v) = %v, want %v", req, err, tt.want)
			}
		})
	}
	if n := runsHeld(t, b); n != 0 {
		t.Fatalf("RUNS holds %d requests, want 0", n)
	}
}

// TestRunOutlivesItsQueue: a run in progress does not depend on the queue: with the agent's
// consumer gone (an operator, or RUNS recreated), the run goes on while its runtime keeps it
// alive, and ends when the runtime says it is over, not as lost.
func TestRunOutlivesItsQueue(t *testing.T) {
	b, url := testplane.StartBus(t, bus.Config{})
	run := enqueue(t, b, runRequest("alice", "r1"), time.Minute)
	taken := take(t, queue(t, connect(t, url), bus.QueueConfig{AckWait: time.Second}))
	testplane.Await(t, testContext(t), run.Taken(), "Taken")
	_, js := testplane.Client(t, url)
	ctx := testContext(t)
	if err := js.DeleteConsumer(ctx, routing.StreamRuns, "runs-echo"); err != nil {
		t.Fatalf("removing the consumer: %v", err)
	}
	// Longer than the AckWait, kept alive at the runtime's pace.
	for range 8 {
		if err := taken.KeepAlive(ctx); err != nil {
			t.Fatalf("KeepAlive: %v", err)
		}
		time.Sleep(taken.KeepAliveEvery())
	}
	if closed(run.Ended()) {
		t.Fatalf("the run ended while its runtime kept it alive: %v", run.Err())
	}
	if err := taken.Done(); err != nil {
		t.Fatal(err)
	}
	testplane.Await(t, ctx, run.Ended(), "Ended")
	if err := run.Err(); err != nil {
		t.Fatalf("Err() = %v after the runtime said the run was over, want nil", err)
	}
}

// TestRunEndedByNode: a run its node ends (past its time, say) is ended for its runtime too:
// its next keep-alive says so, and a runtime that was lost and comes back hears the same.
func TestRunEndedByNode(t *testing.T) {
	b, url := testplane.StartBus(t, bus.Config{})
	ctx := testContext(t)
	q := queue(t, connect(t, url), bus.QueueConfig{AckWait: time.Second})
	run := enqueue(t, b, runRequest("alice", "r1"), time.Minute)
	taken := take(t, q)
	testplane.Await(t, ctx, run.Taken(), "Taken")
	stopped := errors.New("past its time")
	run.End(stopped)
	if err := taken.KeepAlive(ctx); !errors.Is(err, bus.ErrRunEnded) {
		t.Fatalf("KeepAlive after End = %v, want ErrRunEnded", err)
	}
	if err := run.Err(); !errors.Is(err, stopped) {
		t.Fatalf("Err() = %v, want End's error", err)
	}

	lost := enqueue(t, b, runRequest("alice", "r2"), time.Minute)
	silent := take(t, q)
	testplane.Await(t, ctx, lost.Ended(), "Ended") // no keep-alive for the AckWait
	if err := silent.KeepAlive(ctx); !errors.Is(err, bus.ErrRunEnded) {
		t.Fatalf("KeepAlive of a run counted lost = %v, want ErrRunEnded", err)
	}
}

// TestRunRequestedTwice: a second request for the same run of the same thread is refused with
// ErrRunExists, and only one is queued.
func TestRunRequestedTwice(t *testing.T) {
	b := start(t)
	enqueue(t, b, runRequest("alice", "r1"), time.Minute)
	if _, err := b.EnqueueRun(testContext(t), runRequest("alice", "r1"), time.Minute); !errors.Is(err, bus.ErrRunExists) {
		t.Fatalf("the same run again: %v, want ErrRunExists", err)
	}
	if n := runsHeld(t, b); n != 1 {
		t.Fatalf("RUNS holds %d requests, want 1", n)
	}
}

// TestRunsWaitingBounded: one user has at most routing.MaxRunsWaiting requests of one agent
// waiting for a runtime; the next is refused as unavailable (503), and other users are not
// held back.
func TestRunsWaitingBounded(t *testing.T) {
	b := start(t)
	for i := range routing.MaxRunsWaiting {
		enqueue(t, b, runRequest("alice", fmt.Sprintf("r%d", i)), time.Minute)
	}
	if _, err := b.EnqueueRun(testContext(t), runRequest("alice", "one-more"), time.Minute); !errors.Is(err, bus.ErrUnavailable) {
		t.Fatalf("request %d: %v, want ErrUnavailable", routing.MaxRunsWaiting+1, err)
	}
	enqueue(t, b, runRequest("bob", "r0"), time.Minute)
}

// TestRunClaimOnlyToAnInbox: a request stored by some other NATS client, whose claim subject is
// not an inbox (here an AG-UI subject, where a claim would be published as an event), is passed
// over and terminated: nothing is sent to that subject, and the runtime goes on to the next.
func TestRunClaimOnlyToAnInbox(t *testing.T) {
	b, url := testplane.StartBus(t, bus.Config{})
	nc, js := testplane.Client(t, url)
	ctx := testContext(t)
	target := "agui." + token(t, "alice") + ".RUN_STARTED"
	sent, err := nc.SubscribeSync(target)
	if err != nil {
		t.Fatal(err)
	}
	forged := runRequest("alice", "r0")
	forged.Claim = target
	data, _ := json.Marshal(forged)
	subject, _ := routing.Runs.Subject("echo", "alice")
	if _, err := js.Publish(ctx, subject, data); err != nil {
		t.Fatal(err)
	}
	run := enqueue(t, b, runRequest("alice", "r1"), time.Minute)
	taken := take(t, queue(t, connect(t, url), bus.QueueConfig{}))
	if id := taken.Request().RunID; id != "r1" {
		t.Fatalf("the runtime took %s, want r1", id)
	}
	testplane.Await(t, ctx, run.Taken(), "Taken")
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := sent.Pending(); n != 0 {
		t.Fatalf("%d messages went to %s, want none", n, target)
	}
	if n := runsHeld(t, b); n != 0 {
		t.Fatalf("RUNS holds %d requests, want 0 (the forged one terminated)", n)
	}
}

func token(t *testing.T, user string) string {
	t.Helper()
	tok, err := routing.UserToken(user)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestEnsureStreamsConflict: a RUNS stream that is there already with a configuration the plane
// cannot update it to (not a work queue) fails EnsureStreams with ErrStreamConflict, at once.
func TestEnsureStreamsConflict(t *testing.T) {
	srv := testplane.StartNATS(t, t.TempDir(), 0)
	_, js := testplane.Client(t, srv.AuthURL())
	ctx := testContext(t)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: routing.StreamRuns, Subjects: []string{"runs.*.*"}}); err != nil {
		t.Fatal(err)
	}
	b, err := bus.Connect(ctx, bus.Config{URL: srv.AuthURL()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = b.Close() }()
	if err := b.EnsureStreams(ctx); !errors.Is(err, bus.ErrStreamConflict) {
		t.Fatalf("EnsureStreams = %v, want ErrStreamConflict", err)
	}
}
