package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/eventsd/eventsd/client"
	"github.com/eventsd/eventsd/internal/testplane"
	"github.com/eventsd/eventsd/sse"
)

// TestFollowerAcrossDrops follows a real eventsd stream while the server cuts every connection,
// with events published before the stream opens, while it is live and while it is away: each
// arrives once, in order.
func TestFollowerAcrossDrops(t *testing.T) {
	p := testplane.Start(t, sse.Config{})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	var mu sync.Mutex
	published := 0 // events 0..published-1 are stored
	publish := func(n int) error {
		mu.Lock()
		defer mu.Unlock()
		for range n {
			if _, err := p.JS.Publish(ctx, "a2a.alice.AGENT_MESSAGE", fmt.Appendf(nil, `{"type":"AGENT_MESSAGE","i":%d}`, published)); err != nil {
				return err
			}
			published++
		}
		return nil
	}
	total := func() int {
		mu.Lock()
		defer mu.Unlock()
		return published
	}

	if err := publish(10); err != nil { // before the stream opens: read on resume
		t.Fatal(err)
	}
	retries := make(chan client.Retry, 10)
	f, err := client.NewFollower(client.FollowerConfig{
		URL:   p.URL + "/api/v1/stream/a2a",
		Token: testplane.Token(t, "alice"),
		// A cursor before the first event: the stream replays all it holds (after a resync
		// frame saying the cursor is from no life of the stream).
		LastEventID: "0-0",
		MinBackoff:  10 * time.Millisecond,
		OnRetry: func(r client.Retry) {
			if err := publish(5); err != nil { // while the follower is away
				r.Err = fmt.Errorf("publishing while away: %w", err)
			}
			retries <- r
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	frames := make(chan client.Frame)
	done := make(chan error, 1)
	go func() {
		done <- f.Follow(ctx, func(fr client.Frame) error {
			select {
			case frames <- fr:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()

	next, lastID := 0, ""
	// expect reads events until it has every one published, failing on any out of order.
	expect := func() {
		t.Helper()
		for want := total(); next < want; {
			var fr client.Frame
			select {
			case fr = <-frames:
			case err := <-done:
				t.Fatalf("Follow() = %v while events %d to %d are due", err, next, want-1)
			case <-time.After(30 * time.Second):
				t.Fatalf("no event %d after 30s", next)
			}
			if fr.Event != "" {
				continue // the resync frame
			}
			var ev struct{ I int }
			if err := json.Unmarshal([]byte(fr.Data), &ev); err != nil {
				t.Fatalf("frame %+v: %v", fr, err)
			}
			if ev.I != next {
				t.Fatalf("received event %d, want %d: lost or repeated", ev.I, next)
			}
			next, lastID = next+1, fr.ID
		}
	}
	expect()
	for round := range 4 {
		p.DropConnections()
		r := <-retries
		if r.LastEventID != lastID || r.Attempt != 1 || r.Err == nil {
			t.Fatalf("round %d: retry %+v, want a first attempt after %s", round, r, lastID)
		}
		if err := publish(5); err != nil { // live again, once it has caught up
			t.Fatal(err)
		}
		expect()
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Follow() = %v, want context.Canceled", err)
	}
	if got := f.LastEventID(); got != lastID {
		t.Errorf("LastEventID() = %q, want %q", got, lastID)
	}
	if next != 50 {
		t.Fatalf("received %d events, want 50", next)
	}
}

// TestFollowerRefused: what eventsd refuses ends Follow with its answer.
func TestFollowerRefused(t *testing.T) {
	p := testplane.Start(t, sse.Config{})
	tests := []struct {
		name, token, lastID string
		status              int
		field               string
	}{
		{"malformed cursor", testplane.Token(t, "alice"), "nope", 400, "last_event_id"},
		{"bad token", "not-a-token", "", 401, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := client.NewFollower(client.FollowerConfig{URL: p.URL + "/api/v1/stream/agui", Token: tt.token, LastEventID: tt.lastID,
				OnRetry: func(r client.Retry) { t.Errorf("retry %+v, want none", r) }})
			if err != nil {
				t.Fatal(err)
			}
			err = f.Follow(t.Context(), func(client.Frame) error { return nil })
			var answer *client.HTTPError
			if !errors.As(err, &answer) || answer.StatusCode != tt.status || answer.Field != tt.field || answer.Message == "" {
				t.Fatalf("Follow() = %v, want a %d answer naming field %q", err, tt.status, tt.field)
			}
		})
	}
}
