package tasks

import (
	"encoding/json"
	"fmt"
	"slices"
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
	var events, want []string
	for _, s := range steps {
		events, want = append(events, s.event), append(want, s.want)
	}
	if got := apply(t, &v, events...); !slices.Equal(got, want) {
		t.Fatalf("responses %q, want %q", got, want)
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

// apply applies events to v in order, from sequence 1, and gives the responses' kinds.
func apply(t testing.TB, v *View, events ...string) []string {
	t.Helper()
	var kinds []string
	seq := v.Seq
	for _, e := range events {
		seq++
		resp, err := v.Apply([]byte(e), seq, 1)
		if err != nil {
			t.Fatalf("%s: %v", e, err)
		}
		kind := ""
		if resp != nil {
			b, _ := json.Marshal(resp)
			kind = strings.SplitN(strings.TrimPrefix(string(b), `{"`), `"`, 2)[0]
		}
		kinds = append(kinds, kind)
	}
	return kinds
}

// TestTaskRules: a done task changes no more; a user's message (a continued task) joins the
// history but is not the status message; AGENT_MESSAGE parts replace its content.
func TestTaskRules(t *testing.T) {
	v := View{Task: Task{ID: "t"}}
	got := apply(t, &v,
		`{"type":"TASK_SUBMITTED","timestamp":"2026-11-30T10:00:00Z","taskId":"t","contextId":"c","agentName":"echo"}`,
		`{"type":"INPUT_REQUIRED","timestamp":"2026-11-30T10:00:01Z","taskId":"t","contextId":"c","prompt":"which?"}`,
		`{"type":"TASK_STATUS_UPDATE","timestamp":"2026-11-30T10:00:02Z","taskId":"t","contextId":"c","state":"TASK_STATE_SUBMITTED","message":{"messageId":"u2","role":"ROLE_USER","parts":[{"text":"this"}]}}`,
		`{"type":"AGENT_MESSAGE","timestamp":"2026-11-30T10:00:03Z","taskId":"t","contextId":"c","messageId":"a1","content":"see data","parts":[{"data":{"n":1}}]}`,
		`{"type":"TASK_STATUS_UPDATE","timestamp":"2026-11-30T10:00:04Z","taskId":"t","contextId":"c","state":"TASK_STATE_COMPLETED"}`,
		`{"type":"TASK_STATUS_UPDATE","timestamp":"2026-11-30T10:00:05Z","taskId":"t","contextId":"c","state":"TASK_STATE_WORKING"}`,
		`{"type":"ARTIFACT_CREATED","timestamp":"2026-11-30T10:00:06Z","taskId":"t","contextId":"c","artifact":{"artifactId":"late","parts":[{"text":"x"}]}}`,
	)
	if want := []string{"task", "statusUpdate", "statusUpdate", "statusUpdate", "statusUpdate", "", ""}; !slices.Equal(got, want) {
		t.Fatalf("responses %q, want %q", got, want)
	}
	if v.Task.Status.State != StateCompleted || len(v.Task.Artifacts) != 0 || v.Seq != 5 {
		t.Errorf("after its end the task is %s with %d artifacts at %d, want completed as it was", v.Task.Status.State, len(v.Task.Artifacts), v.Seq)
	}
	h := v.Task.History
	if len(h) != 3 || h[1].Role != RoleUser || string(h[2].Parts[0]) != `{"data":{"n":1}}` {
		t.Errorf("history %+v, want the prompt, the user's answer and the agent's data", h)
	}
}

// TestBound: a view over its bound drops the oldest history first, then the oldest artifacts,
// and ends within the bound.
func TestBound(t *testing.T) {
	v := View{Task: Task{ID: "t"}}
	part, _ := json.Marshal(map[string]string{"text": strings.Repeat("x", 1000)})
	for i := range 20 {
		v.Task.History = append(v.Task.History, Message{MessageID: fmt.Sprint("m", i), Role: RoleAgent, Parts: []json.RawMessage{part}})
		v.Task.Artifacts = append(v.Task.Artifacts, Artifact{ArtifactID: fmt.Sprint("a", i), Parts: []json.RawMessage{part}})
	}
	if !v.Bound(15_000) {
		t.Fatal("Bound dropped nothing")
	}
	b, _ := json.Marshal(v)
	if len(b) > 15_000 || len(v.Task.History) != 0 || len(v.Task.Artifacts) == 0 || v.Task.Artifacts[len(v.Task.Artifacts)-1].ArtifactID != "a19" {
		t.Fatalf("%d bytes, %d messages, %d artifacts: want within the bound, the newest artifacts kept", len(b), len(v.Task.History), len(v.Task.Artifacts))
	}
	if v.Bound(15_000) {
		t.Error("Bound dropped from a view within the bound")
	}
}

// BenchmarkApplyChunk is the cost of one streamed artifact chunk applied to a task's view
// (as the projector and each follower apply it, bound included), with 1,000 chunks in it; each
// op also copies the 1,000 parts, so that every op starts from the same view.
func BenchmarkApplyChunk(b *testing.B) {
	v := View{Task: Task{ID: "t"}}
	apply(b, &v, `{"type":"TASK_SUBMITTED","timestamp":"2026-11-30T10:00:00Z","taskId":"t","contextId":"c","agentName":"echo"}`,
		`{"type":"ARTIFACT_CREATED","timestamp":"2026-11-30T10:00:01Z","taskId":"t","contextId":"c","artifact":{"artifactId":"a","parts":[{"text":"x"}]}}`)
	chunk := []byte(`{"type":"ARTIFACT_UPDATED","timestamp":"2026-11-30T10:00:02Z","taskId":"t","contextId":"c","artifactId":"a","append":true,"lastChunk":false,"content":[{"text":"token "}]}`)
	for range 1000 {
		v.Apply(chunk, v.Seq+1, 1)
	}
	b.ReportAllocs()
	for b.Loop() {
		view := v
		view.Task.Artifacts = []Artifact{{ArtifactID: "a", Parts: v.Task.Artifacts[0].Parts[:1000:1000]}}
		view.Apply(chunk, v.Seq+1, 1)
		view.Bound(MaxViewBytes)
	}
}
