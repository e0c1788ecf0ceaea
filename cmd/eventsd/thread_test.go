package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/eventsd/eventsd/client"
	"github.com/eventsd/eventsd/internal/testplane"
)

// threadStream opens thread t1's stream (resuming after lastID, if set) and returns a function
// that reads its next n frames.
func threadStream(t *testing.T, url, tok, lastID string) func(n int) []client.Frame {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url+"/api/v1/agui/threads/t1/stream", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("open thread stream: %v %v", resp, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	r := client.NewReader(resp.Body, 1<<20)
	return func(n int) []client.Frame {
		t.Helper()
		var frames []client.Frame
		for len(frames) < n {
			f, err := r.Next()
			if err != nil {
				t.Fatalf("after %d frames: %v", len(frames), err)
			}
			frames = append(frames, f)
		}
		return frames
	}
}

func frameTypes(t *testing.T, frames []client.Frame) string {
	t.Helper()
	var types []string
	for _, f := range frames {
		var ev struct{ Type, Delta string }
		if err := json.Unmarshal([]byte(f.Data), &ev); err != nil {
			t.Fatal(err)
		}
		types = append(types, ev.Type+ev.Delta)
	}
	return strings.Join(types, " ")
}

// TestThreadResumesAcrossRestart: a client following a thread mid-run, when eventsd restarts,
// resumes by id on the new process and gets the rest of the run, nothing lost or doubled, with
// a prelude that re-opens the run and its open message.
func TestThreadResumesAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	d, tok := startAsAlice(t, dir)
	const ids = `"threadId":"t1","runId":"r1"`
	for _, ev := range []string{
		`{"type":"RUN_STARTED",` + ids + `}`,
		`{"type":"TEXT_MESSAGE_START","messageId":"m1",` + ids + `}`,
		`{"type":"TEXT_MESSAGE_CONTENT","messageId":"m1","delta":"a",` + ids + `}`,
	} {
		post(t, d.httpURL, tok, ev)
	}
	awaitView(t, d, "alice", "t1", 3)
	next := threadStream(t, d.httpURL, tok, "")
	first := next(3)
	if got := frameTypes(t, first); got != "RUN_STARTED MESSAGES_SNAPSHOT TEXT_MESSAGE_START" {
		t.Fatalf("joined mid-run: %s", got)
	}
	if !strings.Contains(first[1].Data, `"content":"a"`) {
		t.Fatalf("snapshot %s, want m1 with its content a", first[1].Data)
	}
	last := first[len(first)-1].ID
	d = restart(t, d, dir)
	defer d.shutdown()
	for _, ev := range []string{
		`{"type":"TEXT_MESSAGE_CONTENT","messageId":"m1","delta":"b",` + ids + `}`,
		`{"type":"TEXT_MESSAGE_END","messageId":"m1",` + ids + `}`,
		`{"type":"RUN_FINISHED",` + ids + `}`,
	} {
		post(t, d.httpURL, tok, ev)
	}
	resumed := threadStream(t, d.httpURL, tok, last)(5)
	if got := frameTypes(t, resumed); got != "RUN_STARTED TEXT_MESSAGE_START TEXT_MESSAGE_CONTENTb TEXT_MESSAGE_END RUN_FINISHED" {
		t.Fatalf("resumed after the restart: %s", got)
	}
}

// awaitView waits until the thread's view has applied the event at seq.
func awaitView(t *testing.T, d *daemon, user, thread string, seq uint64) {
	t.Helper()
	_, js := testplane.Client(t, d.nats.AuthURL())
	testplane.AwaitThreadView(t, js, user, thread, seq)
}
