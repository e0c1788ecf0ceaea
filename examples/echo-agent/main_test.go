package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eventsd/eventsd/bus"
	"github.com/eventsd/eventsd/internal/datadir"
	"github.com/eventsd/eventsd/internal/testplane"
	"github.com/eventsd/eventsd/routing"
)

// TestEchoAnswersOnAliceStream runs the command as `go run ./examples/echo-agent` would, with
// the NATS password from a data directory, and asks it for a run: the run's events reach
// alice's agui stream in order, each with the run's threadId and runId, and the deltas spell
// the last user message.
func TestEchoAnswersOnAliceStream(t *testing.T) {
	srv := testplane.StartNATS(t, t.TempDir(), 0)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := bus.Connect(ctx, bus.Config{URL: srv.AuthURL()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	if err := b.EnsureStreams(ctx); err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dataDir, datadir.NATSPasswordFile), []byte(testplane.NATSPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	feed, err := b.Subscribe(ctx, routing.Subscription{Channel: routing.AGUI, User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	defer feed.Close()

	agentCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	var stderr testplane.SyncBuffer
	go func() {
		done <- run(agentCtx, []string{"--nats-url", srv.ClientURL(), "--data-dir", dataDir, "--delay", "0"}, &stderr)
	}()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("run: %v\n%s", err, stderr.String())
		}
	}()

	const said = "hello there,  world"
	input := `{"threadId":"t1","runId":"r1","messages":[` +
		`{"id":"u0","role":"user","content":"earlier"},` +
		`{"id":"a0","role":"assistant","content":"earlier"},` +
		`{"id":"u1","role":"user","content":"` + said + `"}]}`
	r, err := b.EnqueueRun(ctx, bus.RunRequest{Agent: "echo", User: "alice", ThreadID: "t1", RunID: "r1", Input: json.RawMessage(input)}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	types, deltas := readRun(t, feed)
	want := []string{"RUN_STARTED", "TEXT_MESSAGE_START", "TEXT_MESSAGE_CONTENT", "TEXT_MESSAGE_CONTENT", "TEXT_MESSAGE_CONTENT", "TEXT_MESSAGE_END", "RUN_FINISHED"}
	if !slices.Equal(types, want) {
		t.Fatalf("event types %q, want %q", types, want)
	}
	if got := strings.Join(deltas, ""); got != said {
		t.Fatalf("deltas spell %q, want %q", got, said)
	}
}

// readRun reads alice's events up to the end of the run, checking that each belongs to thread
// t1, run r1, and comes after the one before; it returns their types and text deltas.
func readRun(t *testing.T, feed *bus.Feed) (types, deltas []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var last uint64
	for !slices.Contains(types, "RUN_FINISHED") && !slices.Contains(types, "RUN_ERROR") {
		ev, err := feed.Next(ctx)
		if err != nil {
			t.Fatalf("after %q: %v", types, err)
		}
		var e struct{ Type, ThreadID, RunID, Delta string }
		if err := json.Unmarshal(ev.Data, &e); err != nil || e.ThreadID != "t1" || e.RunID != "r1" {
			t.Fatalf("event %s: want threadId t1 and runId r1", ev.Data)
		}
		if ev.Cursor.Seq <= last {
			t.Fatalf("event %s at sequence %d, after %d", ev.Data, ev.Cursor.Seq, last)
		}
		last = ev.Cursor.Seq
		types = append(types, e.Type)
		if e.Type == "TEXT_MESSAGE_CONTENT" {
			deltas = append(deltas, e.Delta)
		}
	}
	return types, deltas
}

func TestWords(t *testing.T) {
	tests := []struct {
		name, text string
		want       []string
	}{
		{"one word", "hi", []string{"hi"}},
		{"words", "a bc d", []string{"a ", "bc ", "d"}},
		{"runs of white space", "a  \tb\n", []string{"a  \t", "b\n"}},
		{"leading space", " a", []string{" ", "a"}},
		{"empty", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := words(tt.text); !slices.Equal(got, tt.want) {
				t.Fatalf("words(%q) = %q, want %q", tt.text, got, tt.want)
			}
		})
	}
}

func TestLastUserText(t *testing.T) {
	tests := []struct {
		name, messages, want string
	}{
		{"string content", `[{"role":"user","content":"a"},{"role":"assistant","content":"b"}]`, "a"},
		{"text parts", `[{"role":"user","content":[{"type":"text","text":"a"},{"type":"binary","mimeType":"image/png"},{"type":"text","text":"b"}]}]`, "a b"},
		{"last of several", `[{"role":"user","content":"a"},{"role":"user","content":"c"}]`, "c"},
		{"none", `[{"role":"assistant","content":"b"}]`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var messages []json.RawMessage
			if err := json.Unmarshal([]byte(tt.messages), &messages); err != nil {
				t.Fatal(err)
			}
			if got := lastUserText(messages); got != tt.want {
				t.Fatalf("lastUserText(%s) = %q, want %q", tt.messages, got, tt.want)
			}
		})
	}
}
