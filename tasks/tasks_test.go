package tasks

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestTaskFromEvents: a task's stored events make its Task, and each stands for one stream
// response; an INPUT_REQUIRED event after a status update to that state gives none; another
// task's events do not touch it; 0.3 parts become 1.0 parts.
func TestTaskFromEvents(t *testing.T) {
	v := View{Task: Task{ID: "task1"}}
	steps := []struct {
		event, want string // want: the response's field, or "" for none
	}{
		{`{"type":"TASK_SUBMITTED","timestamp":"2026-11-30T10:00:00Z","taskId":"task1","contextId":"c1","agentName":"echo","input":{"messageId":"u1","role":"user","parts":[{"kind":"text","text":"hi"}]}}`, "task"},
		{`{"type":"TASK_STATUS_UPDATE","timestamp":"2026-11-30T10:00:01Z","taskId":"task1","contextId":"c1","state":"TASK_STATE_WORKING"}`, "statusUpdate"},
		{`{"type":"TASK_STATUS_UPDATE","timestamp":"2026-11-30T10:00:01Z","taskId":"other","contextId":"c1","state":"TASK_STATE_FAILED"}`, ""},
		{`{"type":"AGENT_MESSAGE","timestamp":"2026-11-30T10:00:02Z","taskId":"task1","contextId":"c1","messageId":"a1","content":"working on it"}`, "statusUpdate"},
		{`{"type":"ARTIFACT_CREATED","timestamp":"2026-11-30T10:00:03Z","taskId":"task1","contextId":"c1","artifact":{"artifactId":"art1","name":"out","parts":[{"kind":"text","text":"Hel"}]}}`, "artifactUpdate"},
		{`{"type":"ARTIFACT_UPDATED","timestamp":"2026-11-30T10:00:04Z","taskId":"task1","contextId":"c1","artifactId":"art1","append":true,"lastChunk":true,"content":"lo"}`, "artifactUpdate"},
		{`{"type":"TASK_STATUS_UPDATE","timestamp":"2026-11-30T10:00:05Z","taskId":"task1","contextId":"c1","state":"TASK_STATE_INPUT_REQUIRED","message":{"messageId":"q1","role":"agent","parts":[{"kind":"text","text":"which one?"}]}}`, "statusUpdate"},
		{`{"type":"INPUT_REQUIRED","timestamp":"2026-11-30T10:00:05Z","taskId":"task1","contextId":"c1","prompt":"which one?"}`, ""},
	}
	for i, s := range steps {
		resp, err := v.Apply([]byte(s.event), uint64(i+1), 1)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		got := ""
		if resp != nil {
			b, _ := json.Marshal(resp)
			got = strings.SplitN(strings.TrimPrefix(string(b), `{"`), `"`, 2)[0]
		}
		if got != s.want {
			t.Fatalf("step %d (%.40s): response %q, want %q", i, s.event, got, s.want)
		}
	}
	task, _ := json.Marshal(v.Task)
	for _, want := range []string{`"state":"TASK_STATE_INPUT_REQUIRED"`, `"parts":[{"text":"Hel"},{"text":"lo"}]`,
		`"messageId":"u1","contextId":"c1","taskId":"task1","role":"ROLE_USER","parts":[{"text":"hi"}]`, `"messageId":"a1"`, `"messageId":"q1"`} {
		if !strings.Contains(string(task), want) {
			t.Errorf("task %s lacks %s", task, want)
		}
	}
	if v.Agent != "echo" || !Interrupted(v.Task.Status.State) || Terminal(v.Task.Status.State) {
		t.Errorf("agent %q, state %s", v.Agent, v.Task.Status.State)
	}
}
