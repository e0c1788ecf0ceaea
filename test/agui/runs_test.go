package agui

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/eventsd/eventsd/internal/testplane"
	"github.com/eventsd/eventsd/sse"
)

// TestHttpAgentRuns drives @ag-ui/client's HttpAgent against eventsd and the example runtime
// (examples/echo-agent, built and run as its own process): two threads of one user run at the
// same time, each run completes with the assistant's answer in agent.messages, each client sees
// only its own run, and the client prints no warning.
func TestHttpAgentRuns(t *testing.T) {
	node := needNode(t)
	p := testplane.Start(t, sse.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	testplane.StartEcho(t, ctx, p.NATSURL, "1ms")

	cmd := exec.CommandContext(ctx, node, "httpagent.mjs", p.URL, testplane.Token(t, "alice"), "echo")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("HttpAgent: %v\nstderr: %s", err, stderr.String())
	}
	var got struct {
		Threads []struct {
			ThreadID string
			Messages []struct{ ID, Role, Content string }
		}
		Complaints []string
	}
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("output %q: %v", stdout.String(), err)
	}
	if len(got.Complaints) > 0 {
		t.Errorf("the client complained:\n%s", strings.Join(got.Complaints, "\n"))
	}
	want := map[string]string{"t1": "hello from one", "t2": "hello from two"}
	for _, th := range got.Threads {
		ms := th.Messages
		if len(ms) != 2 || ms[0].Role != "user" || ms[1].Role != "assistant" || ms[1].Content != want[th.ThreadID] {
			t.Errorf("thread %s ends with %+v, want its user message and the assistant's %q", th.ThreadID, ms, want[th.ThreadID])
		}
		delete(want, th.ThreadID)
	}
	if len(want) > 0 {
		t.Errorf("no result for threads %v", want)
	}
}
