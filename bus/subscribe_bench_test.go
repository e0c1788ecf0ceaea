package bus_test

import (
	"testing"

	"github.com/eventsd/eventsd/bus"
	"github.com/eventsd/eventsd/internal/testplane"
	"github.com/eventsd/eventsd/routing"
)

// BenchmarkSubscribe measures opening and closing one feed: live on a running shared feed, and
// with a consumer of its own for its whole life.
func BenchmarkSubscribe(b *testing.B) {
	for _, mode := range []string{bus.DeliveryShared, bus.DeliveryConsumer} {
		b.Run(mode, func(b *testing.B) {
			bs, _ := testplane.StartBus(b, bus.Config{Delivery: mode})
			sub := routing.Subscription{Channel: routing.AGUI, User: "alice"}
			f, err := bs.Subscribe(b.Context(), sub) // starts the shared feed
			if err != nil {
				b.Fatal(err)
			}
			f.Close()
			b.ReportAllocs()
			for b.Loop() {
				f, err := bs.Subscribe(b.Context(), sub)
				if err != nil {
					b.Fatal(err)
				}
				f.Close()
			}
		})
	}
}
