package contexts

import (
	"encoding/json"
	"testing"
	"time"
)

func TestApply(t *testing.T) {
	t0 := time.Date(2026, 4, 20, 10, 0, 0, 0, time.UTC)
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	var v View
	steps := []struct {
		subject, data string
		seq           uint64
		changed       bool
	}{
		{"context.system.alice.CONTEXT_CREATED", `{"contextId":"c1","name":"First"}`, 1, true},
		{"context.agui.alice.RUN_STARTED", `{"threadId":"c2","runId":"r"}`, 2, true},
		{"context.agui.alice.TEXT_MESSAGE_START", `{"messageId":"m"}`, 3, false},
		{"context.a2a.alice.TASK_SUBMITTED", `{"taskId":"t","contextId":"c1","agentName":"a"}`, 4, true},
		{"context.a2a.alice.AGENT_MESSAGE", `{"taskId":"t","contextId":"c1","messageId":"m","content":"x"}`, 5, true},
		{"context.a2a.alice.AGENT_MESSAGE", `{"taskId":"t","contextId":"c1","messageId":"m","content":"x"}`, 5, false}, // applied already
		{"context.system.alice.CONTEXT_UPDATED", `{"contextId":"c2","name":"Second"}`, 6, true},
		{"context.system.alice.CONTEXT_CREATED", `{"contextId":"c3","name":"Third"}`, 7, true},
		{"context.system.alice.CONTEXT_DELETED", `{"contextId":"c3"}`, 8, true},
		{"context.system.alice.CONTEXT_UPDATED", `not json`, 9, false},
	}
	for i, s := range steps {
		if got := v.Apply(s.subject, []byte(s.data), s.seq, at(i)); got != s.changed {
			t.Errorf("step %d: Apply(%s) = %v, want %v", i, s.subject, got, s.changed)
		}
	}
	snap, _ := json.Marshal(v.Snapshot(at(60)))
	want := `{"type":"CONTEXTS_SNAPSHOT","timestamp":"2026-04-20T11:00:00Z","contexts":[` +
		`{"context_id":"c2","name":"Second","created_at":"2026-04-20T10:01:00Z","updated_at":"2026-04-20T10:06:00Z","message_count":0,"task_count":0},` +
		`{"context_id":"c1","name":"First","created_at":"2026-04-20T10:00:00Z","updated_at":"2026-04-20T10:04:00Z","message_count":1,"task_count":1}]}`
	if string(snap) != want {
		t.Fatalf("snapshot =\n%s\nwant\n%s", snap, want)
	}
	if v.Seq != 8 {
		t.Errorf("Seq = %d, want 8", v.Seq)
	}
}

func TestKey(t *testing.T) {
	for user, want := range map[string]string{"alice": "u.alice", "a@b": "u.=YUBi"} {
		if got, err := Key(user); err != nil || got != want {
			t.Errorf("Key(%q) = %q, %v, want %q", user, got, err, want)
		}
	}
}
