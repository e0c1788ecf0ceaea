// Package agui checks eventsd's agui stream against the official AG-UI client packages.
package agui

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eventsd/eventsd/event"
	"github.com/eventsd/eventsd/internal/testplane"
	"github.com/eventsd/eventsd/routing"
	"github.com/eventsd/eventsd/sse"
)

// TestOfficialClientReadsStream publishes every AG-UI event of the catalog (the golden files)
// and feeds the agui stream, as a client receives it, through @ag-ui/client's SSE parser and
// @ag-ui/core's schemas. The client resumes with a cursor from another stream, so the stream
// also carries a resync frame, and heartbeats come between the events.
func TestOfficialClientReadsStream(t *testing.T) {
	node := needNode(t)
	// A short heartbeat, so that heartbeat frames are part of what the client reads.
	beats := heartbeats{c: make(chan struct{}, 1)}
	p := testplane.Start(t, sse.Config{Heartbeat: 20 * time.Millisecond, Metrics: beats})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	var events [][]byte
	for _, typ := range event.Types(routing.AGUI) {
		b, err := os.ReadFile(filepath.Join("..", "..", "event", "testdata", "golden", "agui", typ+".json"))
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, bytes.TrimSpace(b))
	}
	// What ingress stores for a producer that sends no timestamp, or an RFC 3339 one.
	for _, ev := range []string{
		`{"type":"TEXT_MESSAGE_CONTENT","messageId":"m1","delta":"Hello"}`,
		`{"type":"RUN_STARTED","timestamp":"2026-04-20T10:15:30.123Z","threadId":"t","runId":"r"}`,
	} {
		raw, err := event.Parse([]byte(ev))
		if err != nil {
			t.Fatal(err)
		}
		if err := raw.Stamp(true, time.Now()); err != nil {
			t.Fatal(err)
		}
		events = append(events, raw.Encode())
	}

	cmd := exec.CommandContext(ctx, node, "conformance.mjs", p.URL+"/api/v1/stream/agui", testplane.Token(t, "alice"), strconv.Itoa(len(events)+1), "1-1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// The client is live once alice's stream has its consumer.
	for p.Consumers(t, routing.StreamAGUI) == 0 {
		select {
		case err := <-exited:
			t.Fatalf("the client ended before connecting: %v: %s", err, stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	for i, ev := range events {
		if i == len(events)/2 {
			<-beats.c // a heartbeat frame between the two halves
		}
		typ := strings.Split(string(ev), `"`)[3]
		if _, err := p.Bus.Publish(ctx, "agui.alice."+typ, ev, ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-exited; err != nil {
		t.Fatalf("AG-UI client: %v\nstderr: %s\nstdout: %s", err, stderr.String(), stdout.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != len(events)+1 || !strings.Contains(lines[0], `"name":"resync"`) {
		t.Fatalf("client validated %d events, want the resync event and %d more:\n%s", len(lines), len(events), stdout.String())
	}
}

// needNode returns the path of node, or skips the test without it or the AG-UI packages.
func needNode(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not found: install Node.js 20+ to run the AG-UI conformance tests")
	}
	if _, err := os.Stat(filepath.Join("node_modules", "@ag-ui", "core")); err != nil {
		t.Skip("AG-UI packages missing: run 'npm ci --prefix test/agui' (bash .ci/run does)")
	}
	return node
}

// heartbeats signals each heartbeat frame written.
type heartbeats struct {
	sse.NopMetrics
	c chan struct{}
}

func (h heartbeats) Heartbeat(routing.Channel) {
	select {
	case h.c <- struct{}{}:
	default:
	}
}
