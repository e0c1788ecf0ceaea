package sse_test

import (
	"os"
	"testing"

	"github.com/eventsd/eventsd/bus"
	"github.com/eventsd/eventsd/internal/testplane"
	"github.com/eventsd/eventsd/sse"
)

// delivery is the bus delivery mode these tests run in: the default (shared), or
// EVENTSD_TEST_DELIVERY=consumer (.ci/run runs both).
var delivery = os.Getenv("EVENTSD_TEST_DELIVERY")

func sharedMode() bool { return delivery != bus.DeliveryConsumer }

func newPlane(t testing.TB, cfg sse.Config) *plane {
	p := testplane.StartWith(t, cfg, bus.Config{Delivery: delivery})
	return &plane{Plane: p, url: p.URL, bus: p.Bus, nc: p.NC, js: p.JS}
}

// hubConsumers is how many consumers a used stream keeps with no connection open.
func hubConsumers() int {
	if sharedMode() {
		return 1
	}
	return 0
}
