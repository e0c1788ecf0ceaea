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
	resp, err := c.client().Do(req)
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

// Idle opens conns idle streams over HTTP/1.1, a connection and a user each, and reports what
// they cost eventsd: resident memory per stream, and CPU while they idle for window. Then as
// many idle plain NATS subscribers, each on a connection of its own: with eventsd's embedded
// NATS server, its resident memory grows by what NATS alone needs per connection.
func (c Config) Idle(ctx context.Context, conns int, window time.Duration) (Result, error) {
	return c.idle(ctx, Result{Scenario: "idle", Conns: conns}, 0, window)
}

// IdleHTTP2 is Idle with the streams over HTTP/2, spread evenly over conns connections (at most
// as many as streams): over TLS, negotiated by ALPN, for an https:// server; else h2c, for an
// eventsd run with --h2c. Its scenario is "idle/h2"; the figures per stream are measured as
// Idle's. It refuses more than MaxStreamsPerConn streams a connection, and fails when the
// server's limit on streams made the client open more connections than conns.
func (c Config) IdleHTTP2(ctx context.Context, streams, conns int, window time.Duration) (Result, error) {
	res := Result{Scenario: "idle/h2", Conns: streams}
	if err := CheckHTTP2(streams, conns); err != nil {
		return res, err
	}
	return c.idle(ctx, res, min(conns, streams), window)
}

// idle runs Idle for res.Conns streams, over HTTP/2 on h2conns connections when h2conns > 0.
func (c Config) idle(ctx context.Context, res Result, h2conns int, window time.Duration) (Result, error) {
	conns := res.Conns
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	rss0, _, err := c.processStats(ctx)
	if err != nil {
		return res, err
	}
	run := time.Now().UnixNano()
	rs, toks := make([]*receiver, conns), make([]string, conns)
	for i := range conns {
		tok, err := c.token(fmt.Sprintf("idle-%d-%d", run, i))
		if err != nil {
			return res, err
		}
		rs[i], toks[i] = newReceiver(1), tok
	}
	ss := c.streams(ctx, h2conns)
	defer ss.close()
	if err := ss.openAgui(toks, rs); err != nil {
		if h2conns > 0 && !strings.HasPrefix(c.Server, "https://") {
			err = fmt.Errorf("%w (HTTP/2 over http:// is h2c: is eventsd run with --h2c?)", err)
		}
		return res, err
	}
	ss.describe(&res)
	if h2conns > 0 && res.TCPConns != h2conns {
		return res, fmt.Errorf("%d streams took %d HTTP/2 connections, not %d: does the server allow fewer than %d streams a connection?",
			conns, res.TCPConns, h2conns, (conns+h2conns-1)/h2conns)
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
	ss.close()
	return res, c.idleNATS(ctx, &res, run, rss1)
}

// idleNATS fills res's plain NATS figures: the resident memory res.Conns idle subscribers add
// to eventsd's, from rss0.
func (c Config) idleNATS(ctx context.Context, res *Result, run int64, rss0 float64) error {
	for i := range res.Conns {
		stop, err := c.NATS.coreSubscribe(fmt.Sprintf("bench.idle.%d.%d", run, i), func([]byte) {})
		if err != nil {
			return err
		}
		defer stop()
	}
	rss1, _, err := c.processStats(ctx)
	if err != nil {
		return err
	}
	res.RawRSSPerConnKiB = (rss1 - rss0) / float64(res.Conns) / 1024
	if res.RawRSSPerConnKiB > 0 {
		res.Ratio = res.RSSPerConnKiB / res.RawRSSPerConnKiB
	}
	return nil
}

// Churn connects and disconnects in parallel workers until d has passed: each cycle opens a
// stream, waits until it is live, and closes it. It reports cycles per second, connect latency
// and the per-connection consumers left on the server afterwards; then the same cycles on plain
// NATS (connect, subscribe, round trip, close).
func (c Config) Churn(ctx context.Context, workers int, d time.Duration) (Result, error) {
	res := Result{Scenario: "churn", Conns: workers}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	_, tok, err := c.newUser("churn")
	if err != nil {
		return res, err
	}
	hc := c.streamClient(false, nil)
	defer hc.CloseIdleConnections()
	lat, failed, secs := cycle(ctx, workers, d, func() error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.Server+aguiPath, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET: %s", resp.Status)
		}
		return nil
	})
	res.Seconds = secs
	res.Delivered = len(lat)
	res.Lost = failed
	res.DeliveredPS = float64(len(lat)) / secs
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

	subject := fmt.Sprintf("bench.churn.%d", time.Now().UnixNano())
	raw, _, secs := cycle(ctx, workers, d, func() error {
		stop, err := c.NATS.coreSubscribe(subject, func([]byte) {})
		if err == nil {
			stop()
		}
		return err
	})
	res.RawDelivered = float64(len(raw)) / secs
	res.Ratio = res.DeliveredPS / res.RawDelivered
	return res, nil
}

// cycle runs fn in parallel workers until d has passed and returns how long each successful
// call took, how many failed, and the seconds it ran.
func cycle(ctx context.Context, workers int, d time.Duration, fn func() error) (lat []time.Duration, failed int, secs float64) {
	var mu sync.Mutex
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for time.Now().Before(deadline) && ctx.Err() == nil {
				t0 := time.Now()
				err := fn()
				took := time.Since(t0)
				mu.Lock()
				if err != nil {
					failed++
				} else {
					lat = append(lat, took)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return lat, failed, time.Since(start).Seconds()
}

// connectionConsumers counts AGUI consumers that belong to connections (not the shared feed's,
// nor a view projector's).
func (c Config) connectionConsumers(ctx context.Context) (int, error) {
	names, err := c.NATS.consumerNames(ctx, routing.StreamAGUI)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, name := range names {
		if !strings.HasPrefix(name, bus.SharedConsumerPrefix) && !strings.HasPrefix(name, bus.ViewConsumerPrefix) {
			n++
		}
	}
	return n, nil
}
