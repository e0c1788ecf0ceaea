// Package bench measures the event plane the way a user choosing an SSE hub would: events
// published into NATS, received over SSE by many connections, against the same load on plain
// NATS as the practical ceiling. Every scenario talks to loopback only, is bounded in count and
// time, and stops by itself.
package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventsd/eventsd/auth"
	"github.com/eventsd/eventsd/client"
	"github.com/eventsd/eventsd/routing"
)

// Config says where the plane is.
type Config struct {
	Server  string // eventsd's base URL
	Secret  []byte // to mint a token per simulated user
	NATS    *NATS  // publishes, and carries the plain NATS reference
	Timeout time.Duration
	// Window is how many JetStream publishes may await their acknowledgement when publishing
	// as fast as accepted; default DefaultWindow.
	Window int
	// Via is how events are published: ViaNATS (default, JetStream) or ViaHTTP (eventsd's
	// ingress, with a service token).
	Via string
	// Progress, when set, is told every 100ms how many of the events a scenario expects over
	// SSE have arrived.
	Progress func(done, total int)
	// HTTPClient sends the requests to eventsd; default http.DefaultClient. The streams, and
	// the publishes through the ingress, go over transports of their own, copies of its
	// *http.Transport (its TLS settings, for one) when it has one.
	HTTPClient *http.Client
}

// DefaultWindow is the publishing window unless Config says otherwise.
const DefaultWindow = 32

// Result is one scenario's figures.
type Result struct {
	Scenario     string  `json:"scenario"`
	Conns        int     `json:"conns"`
	Events       int     `json:"events"`
	Rate         int     `json:"rate,omitempty"` // events/s asked for; 0: as fast as accepted
	Delivered    int     `json:"delivered"`
	Lost         int     `json:"lost"`
	Duplicated   int     `json:"duplicated"`
	Seconds      float64 `json:"seconds"`
	DeliveredPS  float64 `json:"delivered_per_s"`
	PublishedPS  float64 `json:"published_per_s"`
	P50ms        float64 `json:"p50_ms"`
	P99ms        float64 `json:"p99_ms"`
	Maxms        float64 `json:"max_ms"`
	RawDelivered float64 `json:"raw_nats_delivered_per_s,omitempty"` // events/s, or cycles/s (churn)
	RawLost      int     `json:"raw_nats_lost,omitempty"`
	Ratio        float64 `json:"ratio_to_raw_nats,omitempty"`
	// Proto is the protocol the streams went over: "HTTP/1.1" or "HTTP/2.0", with "+TLS" over
	// TLS; TCPConns is how many connections they took.
	Proto    string `json:"proto,omitempty"`
	TCPConns int    `json:"tcp_conns,omitempty"`

	RSSPerConnKiB    float64 `json:"rss_per_conn_kib,omitempty"`          // idle
	RawRSSPerConnKiB float64 `json:"raw_nats_rss_per_conn_kib,omitempty"` // idle: a plain NATS subscriber
	IdleCPU          float64 `json:"idle_cpu_cores,omitempty"`            // idle
	ConsumersLeft    int     `json:"consumers_left"`                      // churn
}

// receiver counts what one connection gets.
type receiver struct {
	mu        sync.Mutex
	seen      []uint8
	latencies []time.Duration
	got       int
	dup       int
	last      time.Time
}

func newReceiver(expect int) *receiver { return &receiver{seen: make([]uint8, expect)} }

func (r *receiver) take(data []byte, now time.Time) {
	i, sent := field(data, `"i":`), field(data, `"sent":`)
	r.mu.Lock()
	defer r.mu.Unlock()
	if i < 0 || int(i) >= len(r.seen) {
		return
	}
	if r.seen[i] > 0 {
		r.dup++
		return
	}
	r.seen[i] = 1
	r.got++
	r.last = now
	r.latencies = append(r.latencies, now.Sub(time.Unix(0, sent)))
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got
}

// field reads the integer after key in data, or -1.
func field(data []byte, key string) int64 {
	i := bytes.Index(data, []byte(key))
	if i < 0 {
		return -1
	}
	rest := data[i+len(key):]
	j := bytes.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
	if j < 0 {
		j = len(rest)
	}
	n, err := strconv.ParseInt(string(rest[:j]), 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// streams are SSE connections the benchmark reads, closed together.
type streams struct {
	c       Config
	ctx     context.Context
	stop    context.CancelFunc
	clients []*http.Client // taken in turn, one for each stream
	next    atomic.Int64   // the client of the next stream
	dialled atomic.Int64   // connections the clients opened
	mu      sync.Mutex
	proto   string         // of the first stream's answer
	wg      sync.WaitGroup // their readers
}

// streams returns an empty set whose connections end with ctx or close. With h2conns 0 its
// streams go over HTTP/1.1, a connection each; else over HTTP/2, spread over h2conns
// connections: a client of its own for each, taken in turn.
func (c Config) streams(ctx context.Context, h2conns int) *streams {
	s := &streams{c: c}
	s.ctx, s.stop = context.WithCancel(ctx)
	if h2conns == 0 {
		s.clients = []*http.Client{c.streamClient(false, &s.dialled)}
		return s
	}
	s.clients = make([]*http.Client, h2conns)
	for i := range s.clients {
		s.clients[i] = c.streamClient(true, &s.dialled)
	}
	return s
}

// close ends every stream and waits for their readers. It is safe to call more than once.
func (s *streams) close() {
	s.stop()
	s.wg.Wait()
	for _, hc := range s.clients {
		hc.CloseIdleConnections()
	}
}

// describe fills res's figures of the connections: their protocol and how many there were.
func (s *streams) describe(res *Result) {
	s.mu.Lock()
	defer s.mu.Unlock()
	res.Proto, res.TCPConns = s.proto, int(s.dialled.Load())
}

// open opens an SSE connection and feeds its data frames to r until the set closes. It returns
// once the connection is live.
func (s *streams) open(path, tok, lastID string, r *receiver) error {
	req, err := http.NewRequestWithContext(s.ctx, http.MethodGet, s.c.Server+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	hc := s.clients[int(s.next.Add(1)-1)%len(s.clients)]
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return fmt.Errorf("GET %s: %s (is eventsd run with --max-conns-per-user 0?)", path, resp.Status)
	}
	s.mu.Lock()
	if s.proto == "" {
		s.proto = protoOf(resp)
	}
	s.mu.Unlock()
	s.wg.Go(func() {
		defer resp.Body.Close()
		rd := client.NewReader(bufio.NewReaderSize(resp.Body, 64<<10), 1<<20)
		for {
			f, err := rd.Next()
			if err != nil {
				return
			}
			if f.Event == "" {
				r.take([]byte(f.Data), time.Now())
			}
		}
	})
	return nil
}

// openAgui opens an agui stream for each token, feeding rs[i]. The first stream of each
// client opens before the others: an HTTP/2 client then has its connection, and the server's
// limit on the streams it carries, before they share it, rather than dialling one for each.
func (s *streams) openAgui(toks []string, rs []*receiver) error {
	first := min(len(s.clients), len(toks))
	if err := s.openAll(toks[:first], rs[:first]); err != nil {
		return err
	}
	return s.openAll(toks[first:], rs[first:])
}

// openAll opens an agui stream for each token, feeding rs[i], at most 64 at a time.
func (s *streams) openAll(toks []string, rs []*receiver) error {
	sem := make(chan struct{}, 64)
	errs := make(chan error, len(toks))
	var opening sync.WaitGroup
	for i := range toks {
		opening.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := s.open(aguiPath, toks[i], "", rs[i]); err != nil {
				errs <- err
			}
		})
	}
	opening.Wait()
	close(errs)
	return <-errs
}

// aguiPath is the stream every scenario but context reads.
const aguiPath = "/api/v1/stream/agui"

// token mints a token for a benchmark user.
func (c Config) token(user string) (string, error) {
	return auth.Mint(c.Secret, user, nil, time.Hour)
}

// newUser names a user of this scenario's run alone, so that no stored event of an earlier run
// reaches its streams, and mints its token.
func (c Config) newUser(scenario string) (user, tok string, err error) {
	user = fmt.Sprintf("bench-%s-%d", scenario, time.Now().UnixNano())
	tok, err = c.token(user)
	return user, tok, err
}

// track reports the receivers' progress to c.Progress every 100ms until the returned stop.
func (c Config) track(rs []*receiver, want func(i int) int) (stop func()) {
	if c.Progress == nil {
		return func() {}
	}
	total := 0
	for i := range rs {
		total += want(i)
	}
	report := func() {
		done := 0
		for _, r := range rs {
			done += r.count()
		}
		c.Progress(done, total)
	}
	quit, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-quit:
				report()
				return
			case <-tick.C:
				report()
			}
		}
	}()
	return func() { close(quit); <-finished }
}

// deliver publishes events for user(i) (see publish) and waits until every receiver has
// want(i) of them or ctx ends, reporting progress. It returns when publishing started and how
// long it took.
func (c Config) deliver(ctx context.Context, rs []*receiver, want func(i int) int, events, rate int, user func(i int) string) (time.Time, time.Duration, error) {
	defer c.track(rs, want)()
	start := time.Now()
	took, err := c.publish(ctx, events, rate, user)
	if err == nil {
		wait(ctx, rs, want)
	}
	return start, took, err
}

// wait returns when every receiver has want(i) events or ctx ends.
func wait(ctx context.Context, rs []*receiver, want func(i int) int) {
	for {
		done := true
		for i, r := range rs {
			if r.count() < want(i) {
				done = false
				break
			}
		}
		if done || ctx.Err() != nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// summarize fills a Result from the receivers.
func summarize(res *Result, rs []*receiver, want func(i int) int, start time.Time, published time.Duration) {
	var lat []time.Duration
	last := start
	for i, r := range rs {
		r.mu.Lock()
		res.Delivered += r.got
		res.Duplicated += r.dup
		res.Lost += want(i) - r.got
		lat = append(lat, r.latencies...)
		if r.last.After(last) {
			last = r.last
		}
		r.mu.Unlock()
	}
	res.Seconds = last.Sub(start).Seconds()
	if res.Seconds > 0 {
		res.DeliveredPS = float64(res.Delivered) / res.Seconds
	}
	if published > 0 {
		res.PublishedPS = float64(res.Events) / published.Seconds()
	}
	res.setLatencies(lat)
}

// setLatencies fills the p50, p99 and max figures from lat, which it sorts.
func (res *Result) setLatencies(lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	res.P50ms, res.P99ms, res.Maxms = ms(lat[len(lat)/2]), ms(lat[len(lat)*99/100]), ms(lat[len(lat)-1])
}

// Fanout runs conns connections of one user; events are published once each, every connection gets
// every event. Then the same over plain NATS subscribers.
func (c Config) Fanout(ctx context.Context, conns, events, rate int) (Result, error) {
	res := Result{Scenario: "fanout", Conns: conns, Events: events, Rate: rate}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	user, tok, err := c.newUser("fanout")
	if err != nil {
		return res, err
	}
	rs, toks := make([]*receiver, conns), make([]string, conns)
	for i := range rs {
		rs[i], toks[i] = newReceiver(events), tok
	}
	ss := c.streams(ctx, 0)
	defer ss.close()
	if err := ss.openAgui(toks, rs); err != nil {
		return res, err
	}
	ss.describe(&res)
	all := func(int) int { return events }
	start, took, err := c.deliver(ctx, rs, all, events, rate, func(int) string { return user })
	if err != nil {
		return res, err
	}
	summarize(&res, rs, all, start, took)
	ss.close()

	rawSubject := fmt.Sprintf("bench.raw.%d", time.Now().UnixNano())
	subjects := make([]string, conns) // every subscriber on the one subject
	for i := range subjects {
		subjects[i] = rawSubject
	}
	return res, c.reference(ctx, &res, subjects, rate, func(int) string { return rawSubject }, all)
}

// reference runs the same load over plain NATS, the practical ceiling: subscriber i listens on
// subjects[i] with a NATS connection of its own, event i goes to subject(i), and subscriber i
// should get want(i) events. It fills res's plain NATS figures.
func (c Config) reference(ctx context.Context, res *Result, subjects []string, rate int, subject func(i int) string, want func(i int) int) error {
	raw := make([]*receiver, len(subjects))
	for i := range raw {
		r := newReceiver(res.Events)
		raw[i] = r
		stop, err := c.NATS.coreSubscribe(subjects[i], func(data []byte) { r.take(data, time.Now()) })
		if err != nil {
			return err
		}
		defer stop()
	}
	start := time.Now()
	took, err := c.publishCore(ctx, res.Events, rate, subject)
	if err != nil {
		return err
	}
	wait(ctx, raw, want)
	ref := Result{Events: res.Events}
	summarize(&ref, raw, want, start, took)
	res.RawLost = ref.Lost
	if ref.DeliveredPS > 0 {
		res.RawDelivered, res.Ratio = ref.DeliveredPS, res.DeliveredPS/ref.DeliveredPS
	}
	return nil
}

// Users runs one connection for each of users users; events go to users drawn by a fixed-seed RNG.
func (c Config) Users(ctx context.Context, users, events, rate int) (Result, error) {
	res := Result{Scenario: "users", Conns: users, Events: events, Rate: rate}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	run := time.Now().UnixNano()
	rng := rand.New(rand.NewPCG(1, 2))
	target := make([]int, events)
	perUser := make([]int, users)
	for i := range target {
		target[i] = rng.IntN(users)
		perUser[target[i]]++
	}
	rs := make([]*receiver, users)
	toks, names := make([]string, users), make([]string, users)
	for u := range users {
		names[u] = fmt.Sprintf("bench-%d-%d", run, u)
		tok, err := c.token(names[u])
		if err != nil {
			return res, err
		}
		rs[u], toks[u] = newReceiver(events), tok
	}
	ss := c.streams(ctx, 0)
	defer ss.close()
	if err := ss.openAgui(toks, rs); err != nil {
		return res, err
	}
	ss.describe(&res)
	want := func(u int) int { return perUser[u] }
	start, took, err := c.deliver(ctx, rs, want, events, rate, func(i int) string { return names[target[i]] })
	if err != nil {
		return res, err
	}
	summarize(&res, rs, want, start, took)
	ss.close()

	rawSubjects := make([]string, users)
	for u := range rawSubjects {
		rawSubjects[u] = fmt.Sprintf("bench.raw.%d.%d", run, u)
	}
	return res, c.reference(ctx, &res, rawSubjects, rate, func(i int) string { return rawSubjects[target[i]] }, want)
}

// Replay has a connection resume from a cursor events behind and read until it is live.
func (c Config) Replay(ctx context.Context, events int) (Result, error) {
	res := Result{Scenario: "replay", Conns: 1, Events: events}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	user, tok, err := c.newUser("replay")
	if err != nil {
		return res, err
	}
	subject, _ := routing.SubjectFor(routing.AGUI, user, benchType)
	seq, err := c.NATS.publish(ctx, subject, payload(-1))
	if err != nil {
		return res, err
	}
	cursor, err := c.cursorOf(ctx, tok, seq)
	if err != nil {
		return res, err
	}
	if _, err := c.publish(ctx, events, 0, func(int) string { return user }); err != nil {
		return res, err
	}
	r := newReceiver(events)
	ss := c.streams(ctx, 0)
	defer ss.close()
	start := time.Now()
	if err := ss.open(aguiPath, tok, cursor, r); err != nil {
		return res, err
	}
	ss.describe(&res)
	all := func(int) int { return events }
	stopTracking := c.track([]*receiver{r}, all)
	wait(ctx, []*receiver{r}, all)
	stopTracking()
	summarize(&res, []*receiver{r}, all, start, 0)
	res.P50ms, res.P99ms, res.Maxms = 0, 0, 0 // send times are from before the connection
	ss.close()

	// The same events read by a plain JetStream consumer, without eventsd.
	start = time.Now()
	if err := c.NATS.readStored(ctx, routing.StreamAGUI, subject, seq+1, events); err != nil {
		return res, err
	}
	res.RawDelivered = float64(events) / time.Since(start).Seconds()
	res.Ratio = res.DeliveredPS / res.RawDelivered
	return res, nil
}

// cursorOf learns the SSE id of the event at seq by resuming from the stream's start.
func (c Config) cursorOf(ctx context.Context, tok string, seq uint64) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.Server+aguiPath+"?last_event_id=0-0", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := c.client().Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	rd := client.NewReader(resp.Body, 1<<20)
	for {
		f, err := rd.Next()
		if err != nil {
			return "", fmt.Errorf("finding the cursor of %d: %w", seq, err)
		}
		if seqText, _, ok := strings.Cut(f.ID, "-"); ok && seqText == strconv.FormatUint(seq, 10) {
			return f.ID, nil
		}
	}
}

// Context measures the delay an AG-UI event takes to reach a contexts stream against an agui stream.
func (c Config) Context(ctx context.Context, events, rate int) (agui, contexts Result, err error) {
	agui = Result{Scenario: "context/agui", Conns: 1, Events: events, Rate: rate}
	contexts = Result{Scenario: "context/contexts", Conns: 1, Events: events, Rate: rate}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	user, tok, err := c.newUser("context")
	if err != nil {
		return agui, contexts, err
	}
	ra, rc := newReceiver(events), newReceiver(events)
	ss := c.streams(ctx, 0)
	defer ss.close()
	if err := ss.open(aguiPath, tok, "", ra); err != nil {
		return agui, contexts, err
	}
	if err := ss.open("/api/v1/stream/contexts?types="+benchType, tok, "", rc); err != nil {
		return agui, contexts, err
	}
	ss.describe(&agui)
	ss.describe(&contexts)
	all := func(int) int { return events }
	start, took, err := c.deliver(ctx, []*receiver{ra, rc}, all, events, rate, func(int) string { return user })
	if err != nil {
		return agui, contexts, err
	}
	summarize(&agui, []*receiver{ra}, all, start, took)
	summarize(&contexts, []*receiver{rc}, all, start, took)
	return agui, contexts, nil
}
