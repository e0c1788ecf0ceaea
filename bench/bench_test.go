package bench

import (
	"context"
	"testing"
	"time"

	"github.com/eventsd/eventsd/bus"
	"github.com/eventsd/eventsd/internal/testplane"
	"github.com/eventsd/eventsd/sse"
)

// plane starts a plane in this process and returns the benchmark's view of it.
func plane(t testing.TB) Config {
	p := testplane.Start(t, sse.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := ConnectNATS(ctx, bus.Config{URL: p.NATSURL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	return Config{Server: p.URL, Secret: testplane.Secret, NATS: n, Timeout: time.Minute}
}

// TestScenarios runs every scenario small against a real plane: nothing lost or doubled, and
// the figures filled in.
func TestScenarios(t *testing.T) {
	c := plane(t)
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

// BenchmarkScenarios runs fanout and users flat out in one process (embedded NATS, eventsd's
// handler on real HTTP, the SSE readers), for profiling the whole delivery path:
//
//	go test ./bench -run '^$' -bench Scenarios -benchtime 1x -cpuprofile cpu.out
func BenchmarkScenarios(b *testing.B) {
	c := plane(b)
	for _, s := range []struct {
		name string
		run  func() (Result, error)
	}{
		{"fanout-1000x1000", func() (Result, error) { return c.Fanout(context.Background(), 1000, 1000, 0) }},
		{"users-1000x20000", func() (Result, error) { return c.Users(context.Background(), 1000, 20000, 0) }},
	} {
		b.Run(s.name, func(b *testing.B) {
			for b.Loop() {
				r, err := s.run()
				if err != nil || r.Lost+r.Duplicated > 0 {
					b.Fatalf("%+v, %v", r, err)
				}
				b.ReportMetric(r.DeliveredPS, "delivered/s")
				b.ReportMetric(r.P99ms, "p99-ms")
				b.ReportMetric(r.Ratio, "ratio-to-raw")
			}
		})
	}
}
