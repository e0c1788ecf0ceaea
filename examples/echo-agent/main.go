// Command echo-agent is a minimal agent runtime. It serves the agent "echo" over both AG-UI and
// A2A: it answers the last user message of each AG-UI run, word by word, as a streamed
// assistant message, and the text of each A2A message, word by word, as the chunks of one
// artifact of the task, which then completes. A message that is only "?" makes it ask for
// input instead (TASK_STATE_INPUT_REQUIRED); the next message of the task is echoed then.
//
//	go run ./cmd/eventsd          # terminal 1
//	go run ./examples/echo-agent  # terminal 2
//
// It connects to eventsd's embedded NATS server with the password eventsd generated in its
// data directory, as eventsctl does.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nuid"

	"github.com/eventsd/eventsd/agentrt"
	"github.com/eventsd/eventsd/bus"
	"github.com/eventsd/eventsd/event"
	"github.com/eventsd/eventsd/internal/datadir"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "echo-agent:", err)
		os.Exit(1)
	}
}

// run reads the flags, connects to NATS and serves the agent until ctx is done.
func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("echo-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	natsURL := fs.String("nats-url", "nats://127.0.0.1:4222", "NATS server URL(s); nats://user:password@host:port carries credentials")
	dataDir := fs.String("data-dir", "./data", "eventsd's data directory, which holds the NATS password it generated")
	agent := fs.String("agent", "echo", "the agent to serve")
	delay := fs.Duration("delay", 50*time.Millisecond, "pause between two words of an answer")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg := bus.Config{URL: *natsURL, Name: "echo-agent"}
	if !hasCredentials(*natsURL) {
		password, err := datadir.Read(*dataDir, datadir.NATSPasswordFile)
		if err != nil {
			return fmt.Errorf("NATS credentials: %w (pass the --data-dir of eventsd, or a --nats-url that holds them)", err)
		}
		cfg.Auth = bus.Auth{User: datadir.NATSUser, Password: password}
	}
	connect, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	b, err := bus.Connect(connect, cfg)
	if err != nil {
		return err
	}
	defer b.Close()
	log := slog.New(slog.NewTextHandler(stderr, nil))
	log.Info("serving", "agent", *agent, "nats", bus.RedactURL(*natsURL))
	rc := agentrt.Config{Agent: *agent, Bus: b, Logger: log, Description: "Echoes what it is told, word by word."}
	e := echo{delay: *delay}
	errs := make(chan error, 2)
	go func() { errs <- agentrt.Serve(ctx, rc, e.answer) }()
	go func() { errs <- agentrt.ServeTasks(ctx, rc, e.answerTask) }()
	return errors.Join(<-errs, <-errs)
}

// hasCredentials reports whether one of the comma-separated URLs carries credentials.
func hasCredentials(urls string) bool {
	for u := range strings.SplitSeq(urls, ",") {
		if parsed, err := url.Parse(strings.TrimSpace(u)); err == nil && parsed.User != nil {
			return true
		}
	}
	return false
}

// echo answers with the last user message, one word at a time.
type echo struct {
	delay time.Duration
}

// answer is the agent's handler.
func (e echo) answer(ctx context.Context, run *agentrt.Run) error {
	in, err := run.Input()
	if err != nil {
		return err
	}
	text := lastUserText(in.Messages)
	if text == "" {
		text = "(no user message to echo)"
	}
	id := "msg-" + nuid.Next()
	if err := run.Emit(ctx, event.TextMessageStart{MessageID: id, Role: "assistant"}); err != nil {
		return err
	}
	for i, word := range words(text) {
		if err := e.pause(ctx, i); err != nil {
			return err
		}
		if err := run.Emit(ctx, event.TextMessageContent{MessageID: id, Delta: word}); err != nil {
			return err
		}
	}
	return run.Emit(ctx, event.TextMessageEnd{MessageID: id})
}

// pause waits the delay before every word but the first.
func (e echo) pause(ctx context.Context, i int) error {
	if i == 0 || e.delay <= 0 {
		return nil
	}
	select {
	case <-time.After(e.delay):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// answerTask is the agent's A2A handler: the message's text, word by word, as the chunks of
// the artifact "echo"; a message that is only "?" asks for input.
func (e echo) answerTask(ctx context.Context, task *agentrt.Task) error {
	text := task.Text()
	if strings.TrimSpace(text) == "?" {
		return task.Emit(ctx, event.InputRequired{Prompt: "what shall I echo?"})
	}
	if text == "" {
		text = "(no text to echo)"
	}
	id := "echo-" + nuid.Next()
	ws := words(text)
	for i, word := range ws {
		if err := e.pause(ctx, i); err != nil {
			return err
		}
		part, _ := json.Marshal(map[string]string{"text": word})
		var ev event.Event = event.ArtifactUpdated{ArtifactID: id, Append: true, LastChunk: i == len(ws)-1, Content: json.RawMessage("[" + string(part) + "]")}
		if i == 0 {
			ev = event.ArtifactCreated{Artifact: event.Artifact{ArtifactID: id, Name: "echo", Parts: []json.RawMessage{part}}}
		}
		if err := task.Emit(ctx, ev); err != nil {
			return err
		}
	}
	return nil
}

// lastUserText returns the text of the last message with role "user": its content when that is
// a string, else its text parts joined.
func lastUserText(messages []json.RawMessage) string {
	for i := len(messages) - 1; i >= 0; i-- {
		var m struct {
			Role    string          `json:"role"`
			Content json.RawMessage `json:"content"`
		}
		if json.Unmarshal(messages[i], &m) != nil || m.Role != "user" {
			continue
		}
		var s string
		if json.Unmarshal(m.Content, &s) == nil {
			return s
		}
		var parts []struct{ Type, Text string }
		if err := json.Unmarshal(m.Content, &parts); err != nil {
			return ""
		}
		var text []string
		for _, p := range parts {
			if p.Type == "text" {
				text = append(text, p.Text)
			}
		}
		return strings.Join(text, " ")
	}
	return ""
}

// words splits text into tokens that join back into it: each word with the white space after it.
func words(text string) []string {
	var out []string
	for len(text) > 0 {
		i := strings.IndexAny(text, " \t\n")
		if i < 0 {
			return append(out, text)
		}
		j := i
		for j < len(text) && strings.ContainsRune(" \t\n", rune(text[j])) {
			j++
		}
		out = append(out, text[:j])
		text = text[j:]
	}
	return out
}
