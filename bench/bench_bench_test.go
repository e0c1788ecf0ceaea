package bench

import (
	"context"
	"testing"
	"time"

	"github.com/eventsd/eventsd/internal/testplane"
	"github.com/eventsd/eventsd/sse"
)

// BenchmarkScenarios runs fanout and users flat out in one process (embedded NATS, eventsd's
// handler on real HTTP, the SSE readers), for profiling the whole delivery path:
//
//	go test ./bench -run '^$' -bench Scenarios -benchtime 1x -cpuprofile cpu.out
func BenchmarkScenarios(b *testing.B) {
	p := testplane.Start(b, sse.Config{})
	c := Config{Server: p.URL, Secret: testplane.Secret, Bus: p.Bus, Timeout: time.Minute}
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
