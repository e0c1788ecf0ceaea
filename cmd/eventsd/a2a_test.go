package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/eventsd/eventsd/auth"
	"github.com/eventsd/eventsd/client"
	"github.com/eventsd/eventsd/internal/testplane"
)

// subscribeToTask calls SubscribeToTask for task1 of the token's user (resuming after lastID,
// if set), and returns the answer.
func subscribeToTask(t *testing.T, url, tok, lastID string) *http.Response {
	t.Helper()
	body := `{"jsonrpc":"2.0","id":1,"method":"SubscribeToTask","params":{"id":"task1"}}`
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/api/v1/a2a/echo", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// taskUpdate names a frame of a task's stream: what it holds and its text.
func taskUpdate(t *testing.T, f client.Frame) string {
	t.Helper()
	var ans struct {
		Result struct {
			Task           *struct{ Status struct{ State string } }
			StatusUpdate   *struct{ Status struct{ State string } }
			ArtifactUpdate *struct {
				Artifact struct{ Parts []struct{ Text string } }
			}
		}
	}
	if err := json.Unmarshal([]byte(f.Data), &ans); err != nil {
		t.Fatal(err)
	}
	switch r := ans.Result; {
	case r.Task != nil:
		return "task " + r.Task.Status.State
	case r.StatusUpdate != nil:
		return "status " + r.StatusUpdate.Status.State
	case r.ArtifactUpdate != nil && len(r.ArtifactUpdate.Artifact.Parts) == 1:
		return "artifact " + r.ArtifactUpdate.Artifact.Parts[0].Text
	}
	return f.Data
}

// TestTaskResumesAcrossRestart: a SubscribeToTask client that drops mid-task, while the task
// goes on and eventsd restarts, re-subscribes with Last-Event-ID and gets every update once and
// in order; another user never sees the task.
func TestTaskResumesAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	d, tok := startAsAlice(t, dir)
	const ids = `"taskId":"task1","contextId":"c1"`
	chunk := func(text string) string {
		return `{"type":"ARTIFACT_UPDATED",` + ids + `,"artifactId":"a1","append":true,"lastChunk":false,"content":[{"text":"` + text + `"}]}`
	}
	postOn(t, d.httpURL, tok, "a2a", `{"type":"TASK_SUBMITTED",`+ids+`,"agentName":"echo"}`)
	postOn(t, d.httpURL, tok, "a2a", `{"type":"TASK_STATUS_UPDATE",`+ids+`,"state":"TASK_STATE_WORKING"}`)
	_, js := testplane.Client(t, d.nats.AuthURL())
	testplane.AwaitTaskView(t, js, "alice", "task1", 2)

	first := subscribeToTask(t, d.httpURL, tok, "")
	r := client.NewReader(first.Body, 1<<20)
	var got []string
	var last string
	read := func() {
		t.Helper()
		f, err := r.Next()
		if err != nil {
			t.Fatalf("after %q: %v", got, err)
		}
		got, last = append(got, taskUpdate(t, f)), f.ID
	}
	read()
	postOn(t, d.httpURL, tok, "a2a", chunk("one"))
	read()
	first.Body.Close() // the client drops
	postOn(t, d.httpURL, tok, "a2a", chunk("two"))
	d = restart(t, d, dir)
	defer d.shutdown()
	postOn(t, d.httpURL, tok, "a2a", chunk("three"))
	postOn(t, d.httpURL, tok, "a2a", `{"type":"TASK_STATUS_UPDATE",`+ids+`,"state":"TASK_STATE_COMPLETED"}`)
	r = client.NewReader(subscribeToTask(t, d.httpURL, tok, last).Body, 1<<20)
	for {
		f, err := r.Next()
		if err != nil {
			break // the task is done: the answer ends
		}
		got = append(got, taskUpdate(t, f))
	}
	if want := "task TASK_STATE_WORKING, artifact one, artifact two, artifact three, status TASK_STATE_COMPLETED"; strings.Join(got, ", ") != want {
		t.Fatalf("got %q, want %s", got, want)
	}

	secret, err := auth.LoadSecret(dir)
	if err != nil {
		t.Fatal(err)
	}
	bob, _ := auth.Mint(secret, "bob", nil, time.Hour)
	var ans struct{ Error struct{ Code int } }
	if err := json.NewDecoder(subscribeToTask(t, d.httpURL, bob, "").Body).Decode(&ans); err != nil || ans.Error.Code != -32001 {
		t.Fatalf("bob subscribing to alice's task: %+v %v, want TaskNotFound", ans, err)
	}
}
