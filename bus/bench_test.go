package bus_test

import (
	"slices"
	"testing"
	"time"

	"github.com/eventsd/eventsd/routing"
)

// BenchmarkContextFanIn measures how long an AG-UI event takes to reach an agui feed and a
// contexts feed: the difference is what the stream-source fan-in adds.
// With load, another user's events are published as fast as the server takes them meanwhile.
func BenchmarkContextFanIn(b *testing.B) {
	b.Run("idle", func(b *testing.B) { benchFanIn(b, false) })
	b.Run("load", func(b *testing.B) { benchFanIn(b, true) })
}

func benchFanIn(b *testing.B, load bool) {
	bs := start(b)
	ctx := b.Context()
	if load {
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				select {
				case <-stop:
					return
				default:
					_, _ = bs.Publish(ctx, "agui.bob.TEXT_MESSAGE_CONTENT", []byte(`{"type":"TEXT_MESSAGE_CONTENT"}`), "")
				}
			}
		}()
		defer func() { close(stop); <-done }()
	}
	agui, err := bs.Subscribe(ctx, routing.Subscription{Channel: routing.AGUI, User: "alice"})
	if err != nil {
		b.Fatal(err)
	}
	defer agui.Close()
	ctxs, err := bs.Subscribe(ctx, routing.Subscription{Channel: routing.Contexts, User: "alice"})
	if err != nil {
		b.Fatal(err)
	}
	defer ctxs.Close()
	var direct, fanIn []time.Duration
	data := []byte(`{"type":"TEXT_MESSAGE_CONTENT","timestamp":1776680130123,"messageId":"m","delta":"hello"}`)
	for b.Loop() {
		start := time.Now()
		if _, err := bs.Publish(ctx, "agui.alice.TEXT_MESSAGE_CONTENT", data, ""); err != nil {
			b.Fatal(err)
		}
		if _, err := agui.Next(ctx); err != nil {
			b.Fatal(err)
		}
		direct = append(direct, time.Since(start))
		if _, err := ctxs.Next(ctx); err != nil {
			b.Fatal(err)
		}
		fanIn = append(fanIn, time.Since(start))
	}
	slices.Sort(direct)
	slices.Sort(fanIn)
	pct := func(d []time.Duration, p float64) float64 {
		return float64(d[int(float64(len(d)-1)*p)].Microseconds()) / 1000
	}
	b.ReportMetric(pct(direct, 0.5), "agui-p50-ms")
	b.ReportMetric(pct(direct, 0.99), "agui-p99-ms")
	b.ReportMetric(pct(fanIn, 0.5), "contexts-p50-ms")
	b.ReportMetric(pct(fanIn, 0.99), "contexts-p99-ms")
}
