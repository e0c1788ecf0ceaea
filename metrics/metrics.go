// Package metrics exports what eventsd counts as Prometheus metrics.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/eventsd/eventsd/routing"
)

// Prometheus implements sse.Metrics and bus.Metrics.
type Prometheus struct {
	reg         *prometheus.Registry
	conns       *prometheus.GaugeVec
	connects    *prometheus.CounterVec
	disconnects *prometheus.CounterVec
	slow        *prometheus.CounterVec
	published   *prometheus.CounterVec
	ingress     *prometheus.HistogramVec
	delivered   map[routing.Channel]prometheus.Counter
	skipped     *prometheus.CounterVec
	heartbeats  *prometheus.CounterVec
	consCreate  prometheus.Observer
	consDelete  prometheus.Observer
	viewSkipped *prometheus.CounterVec
}

var streamChannels = []routing.Channel{routing.AGUI, routing.A2A, routing.Contexts, routing.Analytics}

// New returns the metrics on a registry of their own, with Go and process collectors.
// connected reports whether NATS is connected, for eventsd_nats_connected.
func New(connected func() bool) *Prometheus {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f := promauto(reg)
	m := &Prometheus{
		reg:         reg,
		conns:       f.gauge("eventsd_sse_connections", "Open SSE connections.", "channel"),
		connects:    f.counter("eventsd_sse_connects_total", "SSE connections opened.", "channel"),
		disconnects: f.counter("eventsd_sse_disconnects_total", "SSE connections closed, by reason: client, write, feed, nats.", "channel", "reason"),
		slow:        f.counter("eventsd_sse_slow_client_disconnects_total", "SSE connections cut because a write did not complete in time.", "channel"),
		published:   f.counter("eventsd_events_published_total", "Ingress requests, by outcome: published, rejected, failed.", "channel", "outcome"),
		ingress: f.histogram("eventsd_ingress_seconds", "Time to validate and store one ingress event.",
			prometheus.ExponentialBuckets(0.0001, 2, 16), "channel"),
		skipped:    f.counter("eventsd_events_skipped_total", "Stored events not written to a stream, by reason.", "channel", "reason"),
		heartbeats: f.counter("eventsd_heartbeats_total", "Heartbeat frames written.", "channel"),
		delivered:  map[routing.Channel]prometheus.Counter{},
		viewSkipped: f.counter("eventsd_view_events_skipped_total",
			"Events a view projector passed over because they can never be applied, by view and reason.", "view", "reason"),
	}
	deliveredVec := f.counter("eventsd_events_delivered_total", "Event frames written to SSE connections.", "channel")
	for _, c := range streamChannels {
		m.delivered[c] = deliveredVec.WithLabelValues(string(c))
	}
	m.consCreate = f.histogram("eventsd_consumer_create_seconds", "Time to create a connection's JetStream consumer.", prometheus.ExponentialBuckets(0.0001, 2, 16)).WithLabelValues()
	m.consDelete = f.histogram("eventsd_consumer_delete_seconds", "Time to delete a connection's JetStream consumer.", prometheus.ExponentialBuckets(0.0001, 2, 16)).WithLabelValues()
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "eventsd_nats_connected", Help: "1 while NATS is connected."}, func() float64 {
		if connected() {
			return 1
		}
		return 0
	}))
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Prometheus) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// StreamOpened implements sse.Metrics.
func (m *Prometheus) StreamOpened(c routing.Channel) {
	m.conns.WithLabelValues(string(c)).Inc()
	m.connects.WithLabelValues(string(c)).Inc()
}

// StreamClosed implements sse.Metrics.
func (m *Prometheus) StreamClosed(c routing.Channel, reason string) {
	m.conns.WithLabelValues(string(c)).Dec()
	m.disconnects.WithLabelValues(string(c), reason).Inc()
	if reason == "write" {
		m.slow.WithLabelValues(string(c)).Inc()
	}
}

// Delivered implements sse.Metrics.
func (m *Prometheus) Delivered(c routing.Channel, n int) {
	if ctr, ok := m.delivered[c]; ok {
		ctr.Add(float64(n))
	}
}

// Skipped implements sse.Metrics and bus.Metrics.
func (m *Prometheus) Skipped(c routing.Channel, reason string) {
	m.skipped.WithLabelValues(string(c), reason).Inc()
}

// Heartbeat implements sse.Metrics.
func (m *Prometheus) Heartbeat(c routing.Channel) { m.heartbeats.WithLabelValues(string(c)).Inc() }

// Published implements sse.Metrics.
func (m *Prometheus) Published(c routing.Channel, outcome string, took time.Duration) {
	m.published.WithLabelValues(string(c), outcome).Inc()
	if outcome == "published" {
		m.ingress.WithLabelValues(string(c)).Observe(took.Seconds())
	}
}

// ConsumerCreated implements bus.Metrics.
func (m *Prometheus) ConsumerCreated(took time.Duration) { m.consCreate.Observe(took.Seconds()) }

// ConsumerDeleted implements bus.Metrics.
func (m *Prometheus) ConsumerDeleted(took time.Duration) { m.consDelete.Observe(took.Seconds()) }

// ViewSkipped implements bus.Metrics.
func (m *Prometheus) ViewSkipped(view, reason string) {
	m.viewSkipped.WithLabelValues(view, reason).Inc()
}

// factory registers metric vectors on one registry.
type factory struct{ reg prometheus.Registerer }

func promauto(reg prometheus.Registerer) factory { return factory{reg} }

func (f factory) gauge(name, help string, labels ...string) *prometheus.GaugeVec {
	v := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
	f.reg.MustRegister(v)
	return v
}

func (f factory) counter(name, help string, labels ...string) *prometheus.CounterVec {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	f.reg.MustRegister(v)
	return v
}

func (f factory) histogram(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	v := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels)
	f.reg.MustRegister(v)
	return v
}
