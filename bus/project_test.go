package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsd/eventsd/routing"
)

// countView is a view with nothing of contexts in it: how many events of the COUNTED stream
// (counted.<user>.<type>) a user has, and the notes of the latest that fit in its bound.
type countView struct {
	Epoch uint64   `json:"epoch"`
	Seq   uint64   `json:"seq"`
	Count int      `json:"count"`
	Notes []string `json:"notes"`
}

// errNotJSON is what applyCount returns for an event that is not a JSON object.
var errNotJSON = errors.New("counts: event is not a JSON object")

// countKind keeps a countView per user, within 256 bytes, in batches of at most 4 events.
var countKind = viewKind[countView]{
	name:   "counts",
	stream: "COUNTED",
	token: func(subject string) (string, bool) {
		_, rest, _ := strings.Cut(subject, ".")
		user, _, ok := strings.Cut(rest, ".")
		return user, ok
	},
	key:      func(tok string, _ []byte) (string, bool) { return "u." + tok, true },
	subject:  func(tok string) string { return "counted." + tok + ".*" },
	filters:  func(tok string) []string { return []string{"counted." + tok + ".*"} },
	relevant: func(string) bool { return true },
	apply:    applyCount,
	at:       func(v *countView) (uint64, uint64) { return v.Epoch, v.Seq },
	reason: func(err error) string {
		if errors.Is(err, errNotJSON) {
			return "not_json"
		}
		return ""
	},
	maxViewBytes: 256,
	batchEvents:  4,
	batchBytes:   1 << 10,
}

// applyCount counts e and keeps its note, dropping the oldest notes until the view's JSON fits
// in maxBytes.
func applyCount(v *countView, maxBytes int, epoch uint64, e streamEvent) (bool, error) {
	var ev struct {
		Note string `json:"note"`
	}
	if json.Unmarshal(e.data, &ev) != nil {
		return false, errNotJSON
	}
	v.Epoch, v.Seq = epoch, e.seq
	v.Count++
	v.Notes = append(v.Notes, ev.Note)
	for len(v.Notes) > 0 {
		if data, _ := json.Marshal(v); len(data) <= maxBytes {
			break
		}
		v.Notes = v.Notes[1:]
	}
	return true, nil
}

// TestProjectorKeepsAnotherView: the projector is not tied to contexts. It keeps a count of
// each user's events of a stream of the test's own, in a bucket of its own that is bounded as
// the CONTEXTS bucket is: each view within its bound, an event it can never apply passed over
// and counted, and a view missing from the bucket rebuilt from the user's events.
func TestProjectorKeepsAnotherView(t *testing.T) {
	c := startCounts(t)
	if s, err := c.b.js.Stream(c.ctx, "KV_COUNTS"); err != nil {
		t.Fatal(err)
	} else if cfg := s.CachedInfo().Config; cfg.Discard != jetstream.DiscardOld || cfg.MaxBytes != countsMaxBytes {
		t.Fatalf("bucket discard %v, max bytes %d, want %v, %d", cfg.Discard, cfg.MaxBytes, jetstream.DiscardOld, countsMaxBytes)
	}
	var alice, mallory uint64
	for i := range 10 {
		alice = c.publish("alice", fmt.Sprintf(`{"note":"a%d"}`, i))
	}
	c.publish("bob", `not json`)
	bob := c.publish("bob", `{"note":"b"}`)
	for range 5 {
		mallory = c.publish("mallory", `{"note":"`+strings.Repeat("m", 100)+`"}`)
	}
	if v := c.await("u.alice", alice); v.Count != 10 {
		t.Fatalf("alice's view = %+v, want a count of 10", v)
	}
	if v := c.await("u.bob", bob); v.Count != 1 {
		t.Fatalf("bob's view = %+v, want a count of 1: the event that is not JSON passed over", v)
	}
	c.awaitSkip("counts/not_json")
	c.await("u.mallory", mallory)
	e, err := c.kv.Get(c.ctx, "u.mallory")
	if err != nil {
		t.Fatal(err)
	}
	var v countView
	if err := json.Unmarshal(e.Value(), &v); err != nil || v.Count != 5 || len(e.Value()) > countKind.maxViewBytes || len(v.Notes) == 0 {
		t.Fatalf("mallory's view = %s (%d bytes), want a count of 5 and some notes in at most %d bytes", e.Value(), len(e.Value()), countKind.maxViewBytes)
	}

	// A view missing from the bucket is rebuilt from the user's events before the next.
	if err := c.kv.Purge(c.ctx, "u.alice"); err != nil {
		t.Fatal(err)
	}
	if v := c.await("u.alice", c.publish("alice", `{"note":"again"}`)); v.Count != 11 {
		t.Fatalf("alice's view after it was purged = %+v, want a count of 11", v)
	}
}

// TestProjectorReplaysAnotherView: restarted, as when its stream or its bucket is recreated,
// the projector of the counts replays the stream from its first event, and so does a new
// node's: once either has reached a new event, no view was written again and no event passed
// over again.
func TestProjectorReplaysAnotherView(t *testing.T) {
	c := startCounts(t)
	var last uint64
	for i := range 6 {
		c.publish("alice", fmt.Sprintf(`{"note":"a%d"}`, i))
		c.publish("bob", `not json`) // batches of 4 hold both users' events
		last = c.publish("bob", fmt.Sprintf(`{"note":"b%d"}`, i))
	}
	c.await("u.bob", last)
	for range 6 {
		c.awaitSkip("counts/not_json")
	}
	keys := []string{"u.alice", "u.bob"}
	written := c.revisions(keys...)

	c.p.pos.restart()
	c.await("u.carol", c.publish("carol", `{"note":"c"}`))
	if got := c.revisions(keys...); !maps.Equal(got, written) {
		t.Fatalf("after a restart the views' revisions are %v, want %v", got, written)
	}

	c.p.stop()
	_ = c.b.Close()
	b, err := Connect(c.ctx, Config{URL: c.b.cfg.URL, Metrics: c.b.cfg.Metrics})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	c.start(b)
	c.await("u.dave", c.publish("dave", `{"note":"d"}`))
	if got := c.revisions(keys...); !maps.Equal(got, written) {
		t.Fatalf("after a node restart the views' revisions are %v, want %v", got, written)
	}
	if len(c.skipped) > 0 {
		t.Fatalf("skipped %s again", <-c.skipped)
	}
}

// countsMaxBytes is the byte limit of the streams and buckets of startCounts.
const countsMaxBytes = 1 << 20

// counts is a Bus with the COUNTED stream, the COUNTS bucket and a projector of countKind.
type counts struct {
	t       *testing.T
	ctx     context.Context
	b       *Bus
	p       *projector[countView]
	kv      jetstream.KeyValue
	skipped chan string // what the projector passed over, as "view/reason"
}

// startCounts starts an embedded server and a Bus with the COUNTED stream, the COUNTS bucket
// and a projector of countKind, until the test ends.
func startCounts(t *testing.T) *counts {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	c := &counts{t: t, ctx: ctx, skipped: make(chan string, 16)}
	opts := routing.DefaultStreamOptions
	opts.MaxBytes = countsMaxBytes
	b := startUnwatched(t, ctx, Config{Metrics: skipLog{c: c.skipped}, Streams: opts})
	if _, err := b.js.CreateStream(ctx, jetstream.StreamConfig{Name: "COUNTED", Subjects: []string{"counted.*.*"}}); err != nil {
		t.Fatal(err)
	}
	c.start(b)
	return c
}

// start creates the COUNTS bucket if need be and starts a projector of countKind on b, until
// the test ends or the test stops it.
func (c *counts) start(b *Bus) {
	c.t.Helper()
	if err := b.ensureViewBucket(c.ctx, "COUNTS", "each user's count of events"); err != nil {
		c.t.Fatal(err)
	}
	kv, err := b.js.KeyValue(c.ctx, "COUNTS")
	if err != nil {
		c.t.Fatal(err)
	}
	p := &projector[countView]{}
	if err := p.start(c.ctx, b, countKind, kv); err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(p.stop) // before the Bus closes: Close waits for it
	c.b, c.p, c.kv = b, p, kv
}

// publish stores data as an event of user's and returns its sequence.
func (c *counts) publish(user, data string) uint64 {
	c.t.Helper()
	ack, err := c.b.js.Publish(c.ctx, "counted."+user+".NOTE", []byte(data))
	if err != nil {
		c.t.Fatal(err)
	}
	return ack.Sequence
}

// await waits until the view under key reflects the event at seq, and returns it.
func (c *counts) await(key string, seq uint64) countView {
	c.t.Helper()
	w, err := c.kv.Watch(c.ctx, key)
	if err != nil {
		c.t.Fatal(err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case e, ok := <-w.Updates():
			var v countView
			if !ok {
				c.t.Fatalf("the watch of %s ended", key)
			}
			if e != nil && json.Unmarshal(e.Value(), &v) == nil && v.Seq >= seq {
				return v
			}
		case <-c.ctx.Done():
			c.t.Fatalf("the view %s never reflected the event at %d", key, seq)
		}
	}
}

// awaitSkip waits until the projector passes an event over, for want ("view/reason").
func (c *counts) awaitSkip(want string) {
	c.t.Helper()
	select {
	case got := <-c.skipped:
		if got != want {
			c.t.Fatalf("skipped %s, want %s", got, want)
		}
	case <-c.ctx.Done():
		c.t.Fatalf("nothing skipped, want %s", want)
	}
}

// revisions returns the revision of the view under each of keys.
func (c *counts) revisions(keys ...string) map[string]uint64 {
	c.t.Helper()
	revs := map[string]uint64{}
	for _, key := range keys {
		e, err := c.kv.Get(c.ctx, key)
		if err != nil {
			c.t.Fatalf("view %s: %v", key, err)
		}
		revs[key] = e.Revision()
	}
	return revs
}

// skipLog sends what projectors pass over to c, as "view/reason".
type skipLog struct {
	nopMetrics
	c chan string
}

func (s skipLog) ViewSkipped(view, reason string) {
	select {
	case s.c <- view + "/" + reason:
	default: // full: the test has seen too many already
	}
}
