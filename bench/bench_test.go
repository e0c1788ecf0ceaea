package bench

import (
	"context"
	"testing"
	"time"

	"github.com/eventsd/eventsd/internal/testplane"
	"github.com/eventsd/eventsd/sse"
)

// TestScenarios runs every scenario small against a real plane: nothing lost or doubled, and
// the figures filled in.
func TestScenarios(t *testing.T) {
	p := testplane.Start(t, sse.Config{})
	c := Config{Server: p.URL, Secret: testplane.Secret, Bus: p.Bus, Timeout: 30 * time.Second}
	ctx := context.Background()
	check := func(r Result, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", r.Scenario, err)
		}
		if r.Lost != 0 || r.Duplicated != 0 || r.Delivered == 0 || r.DeliveredPS <= 0 {
			t.Fatalf("%s: %+v, want every event once", r.Scenario, r)
		}
	}
	r, err := c.Fanout(ctx, 3, 50, 0)
	check(r, err)
	if r.Delivered != 150 || r.RawDelivered <= 0 || r.RawLost != 0 {
		t.Fatalf("fanout: %+v, want 150 delivered and a plain NATS figure", r)
	}
	check(c.Users(ctx, 5, 60, 0))
	http := c
	http.Via = ViaHTTP
	r, err = http.Users(ctx, 5, 60, 0)
	check(r, err)
	r, err = c.Replay(ctx, 100)
	check(r, err)
	if r.RawDelivered <= 0 {
		t.Fatalf("replay: %+v, want a plain JetStream figure", r)
	}
	a, x, err := c.Context(ctx, 20, 200)
	check(a, err)
	check(x, err)
	r, err = c.Churn(ctx, 2, 500*time.Millisecond)
	check(r, err)
	if r.ConsumersLeft != 0 || r.RawDelivered <= 0 {
		t.Fatalf("churn: %+v, want no consumer left and a plain NATS figure", r)
	}
	r, err = c.Idle(ctx, 3, 100*time.Millisecond)
	if err != nil || r.Conns != 3 {
		t.Fatalf("idle: %+v, %v", r, err)
	}
}
