package sse_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/eventsd/eventsd/event"
	"github.com/eventsd/eventsd/routing"
	"github.com/eventsd/eventsd/sse"
)

type snapshotFrame struct {
	Protocol string                 `json:"protocol"`
	Event    event.ContextsSnapshot `json:"event"`
}

func readSnapshot(t *testing.T, c *client) snapshotFrame {
	t.Helper()
	f := c.next(t)
	var s snapshotFrame
	if err := json.Unmarshal([]byte(f.Data), &s); err != nil || s.Protocol != "system" || !strings.Contains(f.Data, `"type":"CONTEXTS_SNAPSHOT"`) || f.ID == "" {
		t.Fatalf("first frame %+v, want a CONTEXTS_SNAPSHOT with an id", f)
	}
	return s
}

// TestSnapshotCounts checks what the snapshot says once the projector has seen a user's events.
func TestSnapshotCounts(t *testing.T) {
	p := newPlane(t, sse.Config{})
	ctx := ctxFor(t)
	for _, ev := range []event.Event{
		event.ContextCreated{ContextID: "c1", Name: "Trip"},
		event.TaskSubmitted{TaskID: "t1", ContextID: "c1", AgentName: "planner"},
		event.TaskSubmitted{TaskID: "t2", ContextID: "c1", AgentName: "planner"},
		event.AgentMessage{TaskID: "t1", ContextID: "c1", MessageID: "m1", Content: "hi"},
		event.RunStarted{ThreadID: "c2", RunID: "r1"},
		event.TextMessageContent{MessageID: "m2", Delta: "x"},
		event.ContextCreated{ContextID: "c3", Name: "Gone"},
		event.ContextDeleted{ContextID: "c3"},
		event.ContextUpdated{ContextID: "c2", Name: "Renamed"},
	} {
		if _, err := p.bus.PublishEvent(ctx, "alice", ev); err != nil {
			t.Fatal(err)
		}
	}
	tok := token(t, "alice")
	var got []string
	waitFor(t, "the snapshot to reflect every event", func() bool {
		c := p.open(t, "/api/v1/stream/contexts", tok, nil)
		defer c.close()
		got = nil
		for _, cs := range readSnapshot(t, c).Event.Contexts {
			got = append(got, fmt.Sprintf("%s:%s:m%d:t%d", cs.ContextID, cs.Name, cs.MessageCount, cs.TaskCount))
		}
		// The order (latest update first) depends on when each event reached CONTEXT.
		slices.Sort(got)
		return strings.Join(got, " ") == "c1:Trip:m1:t2 c2:Renamed:m0:t0"
	})
}

// TestSnapshotRace opens a contexts stream while context events are being published: each
// event is either reflected in the snapshot or sent after it, never both, never neither.
func TestSnapshotRace(t *testing.T) {
	p := newPlane(t, sse.Config{})
	ctx := ctxFor(t)
	tok := token(t, "alice")
	// History that a new connection must not get: it is not a context event.
	for range 5 {
		if _, err := p.bus.PublishEvent(ctx, "alice", event.TextMessageContent{MessageID: "old", Delta: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	// They reach CONTEXT through the fan-in; one that arrived after the connection subscribed
	// would rightly count as new.
	waitFor(t, "the fan-in", func() bool { return p.msgs(t, routing.StreamContext) == 5 })
	const n = 300
	opened := make(chan struct{})
	published := make(chan error, 1)
	go func() {
		for i := range n {
			if i == n/3 {
				close(opened)
			}
			if _, err := p.bus.PublishEvent(context.Background(), "alice", event.ContextCreated{ContextID: fmt.Sprint(i), Name: "x"}); err != nil {
				published <- err
				return
			}
		}
		published <- nil
	}()
	<-opened
	c := p.open(t, "/api/v1/stream/contexts", tok, nil)
	seen := map[string]string{}
	for _, cs := range readSnapshot(t, c).Event.Contexts {
		seen[cs.ContextID] = "snapshot"
	}
	inSnapshot := len(seen)
	last := -1
	for len(seen) < n {
		f := c.next(t)
		var w struct {
			Event struct{ Type, ContextID string }
		}
		if err := json.Unmarshal([]byte(f.Data), &w); err != nil || w.Event.Type != "CONTEXT_CREATED" {
			t.Fatalf("frame %s, want only CONTEXT_CREATED events after the snapshot", f.Data)
		}
		if seen[w.Event.ContextID] != "" {
			t.Fatalf("context %s sent after the snapshot that already had it", w.Event.ContextID)
		}
		var i int
		fmt.Sscan(w.Event.ContextID, &i)
		if i <= last {
			t.Fatalf("context %d after %d: out of order", i, last)
		}
		last = i
		seen[w.Event.ContextID] = "live"
	}
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d contexts in the snapshot, %d sent after it", inSnapshot, n-inSnapshot)
}

func TestResumeHasNoSnapshot(t *testing.T) {
	p := newPlane(t, sse.Config{})
	tok := token(t, "alice")
	c := p.open(t, "/api/v1/stream/contexts", tok, nil)
	snapID := c.next(t).ID
	c.close()
	p.publishNATS(t, "context.system.alice.CONTEXT_CREATED", `{"contextId":"c","name":"n"}`)
	c = p.open(t, "/api/v1/stream/contexts", tok, map[string]string{"Last-Event-ID": snapID})
	if f := c.next(t); f.Data != `{"protocol":"system","event":{"contextId":"c","name":"n"}}` {
		t.Fatalf("resumed from the snapshot's id: first frame %+v, want the event after it", f)
	}
}
