package bench

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/eventsd/eventsd/auth"
	"github.com/eventsd/eventsd/bus"
	"github.com/eventsd/eventsd/client"
	"github.com/eventsd/eventsd/internal/testplane"
	"github.com/eventsd/eventsd/sse"
)

// plane starts a plane in this process and returns the benchmark's view of it.
func plane(t testing.TB) Config {
	return configOf(t, testplane.Start(t, sse.Config{}))
}

// configOf returns the benchmark's view of p, with a NATS connection of its own.
func configOf(t testing.TB, p *testplane.Plane) Config {
	t.Helper()
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
	if err != nil || r.Conns != 3 || r.Proto != "HTTP/1.1" || r.TCPConns != 3 {
		t.Fatalf("idle: %+v, %v; want 3 streams over HTTP/1.1, a connection each", r, err)
	}
}

// h2Plane starts a plane in this process whose API a server of the test's own serves over
// HTTP/2: h2c (and HTTP/1.1), or with overTLS HTTPS with ALPN, its certificate signed by a CA
// made for the test. It returns the benchmark's view, its client trusting that CA.
func h2Plane(t *testing.T, overTLS bool) Config {
	t.Helper()
	p := testplane.Start(t, sse.Config{})
	c := configOf(t, p)
	h, err := sse.NewHandler(sse.Config{Broker: p.Bus, Verifier: auth.NewVerifier(testplane.Secret)})
	if err != nil {
		t.Fatal(err)
	}
	if overTLS {
		ca := testplane.NewCA(t)
		c.Server = ca.Serve(t, h)
		if c.HTTPClient, err = client.NewHTTPClient(client.TransportConfig{CAFile: ca.File(t)}); err != nil {
			t.Fatal(err)
		}
	} else {
		c.Server = testplane.ServeH2C(t, h)
	}
	t.Cleanup(h.Close) // runs first, as in testplane.StartWith
	return c
}

// TestIdleHTTP2 opens idle streams over HTTP/2, h2c and over TLS: 20 streams take 4
// connections, and the figures are those of Idle.
func TestIdleHTTP2(t *testing.T) {
	for _, tc := range []struct {
		name    string
		overTLS bool
		proto   string
	}{{"h2c", false, "HTTP/2.0"}, {"TLS", true, "HTTP/2.0+TLS"}} {
		t.Run(tc.name, func(t *testing.T) {
			c := h2Plane(t, tc.overTLS)
			r, err := c.IdleHTTP2(context.Background(), 20, 4, 100*time.Millisecond)
			if err != nil || r.Scenario != "idle/h2" || r.Conns != 20 || r.TCPConns != 4 || r.Proto != tc.proto {
				t.Fatalf("IdleHTTP2(20 streams, 4 connections) = %+v, %v; want idle/h2, 20 streams over 4 %s connections", r, err, tc.proto)
			}
		})
	}
	c := plane(t) // HTTP/1.1 alone
	c.Timeout = 10 * time.Second
	if r, err := c.IdleHTTP2(context.Background(), 2, 1, 100*time.Millisecond); err == nil || !strings.Contains(err.Error(), "--h2c") {
		t.Fatalf("IdleHTTP2 against a server without h2c = %+v, %v; want an error that asks for --h2c", r, err)
	}
}

func TestCheckHTTP2(t *testing.T) {
	for _, tc := range []struct {
		streams, conns int
		want           string // in the error; "" for none
	}{
		{10000, 100, ""},
		{10000, 40, ""},
		{10, 100, ""},
		{10000, 39, "10000 streams over 39 HTTP/2 connections is 257 a connection, more than the 250 a server allows by default: want 40 connections or more"},
		{1, 0, "0 HTTP/2 connections: want 1 or more"},
	} {
		err := CheckHTTP2(tc.streams, tc.conns)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("CheckHTTP2(%d, %d) = %v, want %q", tc.streams, tc.conns, err, tc.want)
		}
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
