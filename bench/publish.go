package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsd/eventsd/auth"
	"github.com/eventsd/eventsd/routing"
)

// Ways to publish: straight to JetStream, or through eventsd's HTTP ingress.
const (
	ViaNATS = "nats"
	ViaHTTP = "http"
)

// benchType is the AG-UI type of every benchmark event: a CUSTOM event named "bench", valid on
// every publish path.
const benchType = "CUSTOM"

// payload is a 128-byte AG-UI CUSTOM event carrying its index and send time.
func payload(i int) []byte {
	b := fmt.Appendf(nil, `{"type":"CUSTOM","name":"bench","value":{"i":%d,"sent":%d,"pad":"`, i, time.Now().UnixNano())
	for len(b) < 125 {
		b = append(b, 'x')
	}
	return append(b, '"', '}', '}')
}

// pace waits until event i of a run that started at start is due at rate per second; rate 0
// never waits. Sleeping until the due time keeps the average rate even when single sleeps
// overshoot.
func pace(ctx context.Context, start time.Time, i, rate int) error {
	if rate <= 0 {
		return nil
	}
	ahead := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate)))
	if ahead <= 0 {
		return nil
	}
	select {
	case <-time.After(ahead):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// window is how many publishes may be in flight at once.
func (c Config) window() int {
	if c.Window > 0 {
		return c.Window
	}
	return DefaultWindow
}

// publish sends n AG-UI events, event i for user(i), at rate per second, or with rate 0 as
// fast as they are accepted: at most Window await their answer at once, and an event is
// stamped with its send time only once it can go. It goes through JetStream, or through
// eventsd's ingress with Via "http". It returns how long it took.
func (c Config) publish(ctx context.Context, n, rate int, user func(i int) string) (time.Duration, error) {
	if c.Via == ViaHTTP {
		return c.publishHTTP(ctx, n, rate, user)
	}
	subjects := map[string]string{}
	inFlight := make([]jetstream.PubAckFuture, c.window())
	start := time.Now()
	for i := range n {
		if err := pace(ctx, start, i, rate); err != nil {
			return 0, err
		}
		u := user(i)
		subject, ok := subjects[u]
		if !ok {
			var err error
			if subject, err = routing.SubjectFor(routing.AGUI, u, benchType); err != nil {
				return 0, err
			}
			subjects[u] = subject
		}
		slot := i % len(inFlight)
		if f := inFlight[slot]; f != nil {
			if err := acknowledged(ctx, f); err != nil {
				return 0, err
			}
		}
		var err error
		if inFlight[slot], err = c.NATS.publishAsync(subject, payload(i)); err != nil {
			return 0, err
		}
	}
	if err := c.NATS.waitPublished(ctx); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// acknowledged waits for the server's answer to a publish.
func acknowledged(ctx context.Context, f jetstream.PubAckFuture) error {
	select {
	case <-f.Ok():
		return nil
	case err := <-f.Err():
		return fmt.Errorf("publish: %w", err)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// publishHTTP is publish through POST /api/v1/events/agui?user=..., with Window requests in
// flight at once and a service token.
func (c Config) publishHTTP(ctx context.Context, n, rate int, user func(i int) string) (time.Duration, error) {
	tok, err := auth.Mint(c.Secret, "bench-publisher", []string{auth.RoleService}, time.Hour)
	if err != nil {
		return 0, err
	}
	window := c.window()
	t := c.transport()
	t.MaxIdleConns, t.MaxIdleConnsPerHost = window, window
	client := &http.Client{Transport: t}
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range window {
		wg.Go(func() {
			for i := range next {
				if err := c.post(ctx, client, tok, user(i), payload(i)); err != nil {
					cancel(err)
				}
			}
		})
	}
	start := time.Now()
	for i := range n {
		if pace(ctx, start, i, rate) != nil {
			break
		}
		select {
		case next <- i:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(next)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// post publishes one AG-UI event for user through the ingress.
func (c Config) post(ctx context.Context, client *http.Client, tok, user string, data []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Server+"/api/v1/events/agui?user="+url.QueryEscape(user), bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST ingress: %s: %s (is eventsd run with --ingress-rate 0?)", resp.Status, bytes.TrimSpace(body))
	}
	return nil
}

// publishCore sends n events on subject(i) with plain NATS, which stores nothing: the
// reference load. rate is as for publish.
func (c Config) publishCore(ctx context.Context, n, rate int, subject func(i int) string) (time.Duration, error) {
	start := time.Now()
	for i := range n {
		if err := pace(ctx, start, i, rate); err != nil {
			return 0, err
		}
		if err := c.NATS.corePublish(subject(i), payload(i)); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}
