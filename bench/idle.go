package bench

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/eventsd/eventsd/bus"
	"github.com/eventsd/eventsd/routing"
)

// processStats reads eventsd's resident memory and CPU seconds from its /metrics.
func (c Config) processStats(ctx context.Context) (rss, cpu float64, err error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.Server+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	s := bufio.NewScanner(resp.Body)
	for s.Scan() {
		name, value, _ := strings.Cut(s.Text(), " ")
		switch name {
		case "process_resident_memory_bytes":
			rss, _ = strconv.ParseFloat(value, 64)
		case "process_cpu_seconds_total":
			cpu, _ = strconv.ParseFloat(value, 64)
		}
	}
	return rss, cpu, s.Err()
}

// Idle opens conns idle connections, one user each, and reports what they cost eventsd: resident
// memory per connection, and CPU while they idle for window.
func (c Config) Idle(ctx context.Context, conns int, window time.Duration) (Result, error) {
	res := Result{Scenario: "idle", Conns: conns}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	rss0, _, err := c.processStats(ctx)
	if err != nil {
		return res, err
	}
	run := time.Now().UnixNano()
	rs := make([]*receiver, conns)
	paths, toks := make([]string, conns), make([]string, conns)
	for i := range conns {
		tok, err := c.token(fmt.Sprintf("idle-%d-%d", run, i))
		if err != nil {
			return res, err
		}
		rs[i], paths[i], toks[i] = newReceiver(1), "/api/v1/stream/agui", tok
	}
	var wg sync.WaitGroup
	streamCtx, stopStreams := context.WithCancel(ctx)
	defer func() { stopStreams(); wg.Wait() }()
	if err := c.openMany(streamCtx, paths, toks, rs, &wg); err != nil {
		return res, err
	}
	_, cpu0, err := c.processStats(ctx)
	if err != nil {
		return res, err
	}
	select {
	case <-time.After(window):
	case <-ctx.Done():
		return res, ctx.Err()
	}
	rss1, cpu1, err := c.processStats(ctx)
	if err != nil {
		return res, err
	}
	res.RSSPerConnKiB = (rss1 - rss0) / float64(conns) / 1024
	res.IdleCPU = (cpu1 - cpu0) / window.Seconds()
	return res, nil
}

// Churn connects and disconnects in parallel workers until d has passed: each cycle opens a
// stream, waits until it is live, and closes it. It reports cycles per second, connect latency
// and the per-connection consumers left on the server afterwards.
func (c Config) Churn(ctx context.Context, workers int, d time.Duration) (Result, error) {
	res := Result{Scenario: "churn", Conns: workers}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	tok, err := c.token(fmt.Sprintf("churn-%d", time.Now().UnixNano()))
	if err != nil {
		return res, err
	}
	var mu sync.Mutex
	var lat []time.Duration
	var failed int
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for time.Now().Before(deadline) && ctx.Err() == nil {
				t0 := time.Now()
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.Server+"/api/v1/stream/agui", nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := http.DefaultClient.Do(req)
				took := time.Since(t0)
				mu.Lock()
				if err != nil || resp.StatusCode != http.StatusOK {
					failed++
				} else {
					lat = append(lat, took)
				}
				mu.Unlock()
				if err == nil {
					resp.Body.Close()
				}
			}
		})
	}
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	res.Delivered = len(lat)
	res.Lost = failed
	res.DeliveredPS = float64(len(lat)) / res.Seconds
	res.setLatencies(lat)
	// Consumers go as each connection's handler ends; give them a bounded moment.
	for wait := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		left, err := c.connectionConsumers(ctx)
		if err != nil {
			return res, err
		}
		res.ConsumersLeft = left
		if left == 0 || time.Now().After(wait) {
			break
		}
	}
	return res, nil
}

// connectionConsumers counts AGUI consumers that belong to connections (not the shared feed).
func (c Config) connectionConsumers(ctx context.Context) (int, error) {
	names, err := c.Bus.ConsumerNames(ctx, routing.StreamAGUI)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, name := range names {
		if !strings.HasPrefix(name, bus.HubConsumerPrefix) {
			n++
		}
	}
	return n, nil
}
