// Package a2a checks eventsd's A2A endpoints with the official A2A JavaScript SDK
// (@a2a-js/sdk, installed here by 'npm ci', which .ci/run does).
package a2a

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eventsd/eventsd/internal/nodetest"
	"github.com/eventsd/eventsd/internal/testplane"
	"github.com/eventsd/eventsd/sse"
)

// TestSDKClient drives eventsd and the example agent (examples/echo-agent, its own process)
// with the SDK's client: it reads the card; a streamed message goes from submitted to completed
// with the echo as an artifact; getTask gives the finished task; a subscriber that joins a
// running task gets the task as it is first, then the rest; a done task, an unknown one and
// another user's give the spec's errors; a task that asks for input is continued by the user's
// answer; a unary message answers the completed task; a cancel stops a running task.
func TestSDKClient(t *testing.T) {
	if _, err := os.Stat(filepath.Join("node_modules", "@a2a-js", "sdk")); err != nil {
		t.Skip("@a2a-js/sdk missing: run 'npm ci --prefix test/a2a' (bash .ci/run does)")
	}
	p := testplane.Start(t, sse.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	testplane.StartEcho(t, ctx, p.NATSURL, "20ms")
	script, err := os.ReadFile("sdk.mjs")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Card                       struct{ Name string }
		Streamed, Long, Subscribed []string
		Got                        struct {
			State     string
			Artifacts []string
			History   int
		}
		SubscribeDone, GetUnknown, GetOthers string
		SubscribeUnknown                     string
		Asked, Answered, Cancelled           []string
		Sent, CancelState                    string
	}
	input := map[string]string{"url": p.URL, "token": testplane.Token(t, "alice"), "otherToken": testplane.Token(t, "bob"), "agent": "echo"}
	nodetest.Run(t, ".", string(script), input, &got)

	if got.Card.Name != "echo" {
		t.Errorf("card %+v, want echo's", got.Card)
	}
	want := []string{"task TASK_STATE_SUBMITTED", "status TASK_STATE_WORKING", "artifact hello ", "artifact there", "status TASK_STATE_COMPLETED"}
	if !slices.Equal(got.Streamed, want) {
		t.Errorf("streamed %q, want %q", got.Streamed, want)
	}
	if got.Got.State != "TASK_STATE_COMPLETED" || !slices.Equal(got.Got.Artifacts, []string{"hello there"}) || got.Got.History != 1 {
		t.Errorf("getTask %+v, want the completed task, its artifact and the user's message", got.Got)
	}
	checkJoined(t, got.Long, got.Subscribed)
	for what, err := range map[string]string{
		"subscribing to a done task": got.SubscribeDone, "getting an unknown task": got.GetUnknown,
		"subscribing to an unknown task": got.SubscribeUnknown, "getting another user's task": got.GetOthers,
	} {
		wantErr := "TaskNotFoundError -32001"
		if what == "subscribing to a done task" {
			wantErr = "UnsupportedOperationError -32004"
		}
		if err != wantErr {
			t.Errorf("%s: %q, want %q", what, err, wantErr)
		}
	}
	if want := []string{"task TASK_STATE_SUBMITTED", "status TASK_STATE_WORKING", "status TASK_STATE_INPUT_REQUIRED"}; !slices.Equal(got.Asked, want) {
		t.Errorf("asking for input: %q, want %q", got.Asked, want)
	}
	if want := []string{"task TASK_STATE_INPUT_REQUIRED", "status TASK_STATE_SUBMITTED", "status TASK_STATE_WORKING", "artifact more", "status TASK_STATE_COMPLETED"}; !slices.Equal(got.Answered, want) {
		t.Errorf("the answer: %q, want %q", got.Answered, want)
	}
	if got.Sent != "TASK_STATE_COMPLETED" {
		t.Errorf("sendMessage: %q, want the completed task", got.Sent)
	}
	if n := len(got.Cancelled); got.CancelState != "TASK_STATE_CANCELED" || n == 0 || got.Cancelled[n-1] != "status TASK_STATE_CANCELED" {
		t.Errorf("cancelling: %q, then %q, want the cancelled task", got.CancelState, got.Cancelled)
	}
}

// checkJoined checks what a subscriber that joined a running task got against the whole
// stream: the task first, as it was then, then exactly the updates that followed, in order.
func checkJoined(t *testing.T, whole, joined []string) {
	t.Helper()
	if len(joined) < 2 || !strings.HasPrefix(joined[0], "task ") || whole[len(whole)-1] != "status TASK_STATE_COMPLETED" {
		t.Fatalf("joined %q of %q, want the task then updates to completion", joined, whole)
	}
	rest := joined[1:]
	if len(rest) > len(whole)-2 || !slices.Equal(whole[len(whole)-len(rest):], rest) {
		t.Errorf("joined %q, want the updates after some point of %q", joined, whole)
	}
}
