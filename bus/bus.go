// Package bus is the event plane's only door to NATS: it connects (to the embedded server or an
// external cluster), ensures the streams and the context fan-in, publishes events, and opens the
// feed of events one SSE connection follows.
package bus

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsd/eventsd/event"
	"github.com/eventsd/eventsd/routing"
)

// Sentinel errors of the bus.
var (
	// ErrUnavailable is returned when NATS or JetStream cannot be reached.
	ErrUnavailable = errors.New("bus: NATS unavailable")
	// ErrCursorAhead is returned for a resume cursor past the last event of its stream.
	ErrCursorAhead = errors.New("bus: cursor is ahead of the stream")
	// ErrTooLarge is returned for an event that, with its headers, is over the NATS server's
	// payload limit, so no stream can store it.
	ErrTooLarge = errors.New("bus: event too large")
	// ErrNoStorage is returned when the server cannot reserve a stream's byte limit.
	ErrNoStorage = errors.New("bus: JetStream lacks the storage for the streams")
	// ErrStreamConflict is returned when a stream of the plane exists with a configuration it
	// cannot be updated to, or another stream holds its subjects.
	ErrStreamConflict = errors.New("bus: a stream in the way")
	// ErrStreamRecreated ends a feed whose stream was deleted and created again: its events
	// continue in the new stream, which a subscription with the feed's last cursor resumes with
	// the stream_recreated notice. It is an ErrUnavailable.
	ErrStreamRecreated = fmt.Errorf("%w: stream recreated", ErrUnavailable)
)

// Config configures a Bus. Only URL is required.
type Config struct {
	// URL is one or more comma-separated NATS server URLs.
	URL string
	// Name is the client name shown by the NATS server; default "eventsd".
	Name string
	// Auth holds the credentials and TLS files for an external server.
	Auth Auth
	// Streams are the stream settings EnsureStreams applies.
	Streams routing.StreamOptions
	// InactiveThreshold removes a connection's consumer this long after its process stopped
	// asking for events; default 10s.
	InactiveThreshold time.Duration
	// ReadAhead is how many events a connection's own consumer reads ahead of the connection:
	// what it pulls at once (one consumer per connection), and what it queues before it waits
	// for the connection to take them. Default 64.
	ReadAhead int
	// Timeout bounds each JetStream API call made where the caller set no deadline; default 5s.
	Timeout time.Duration
	// Delivery is DeliveryShared (default) or DeliveryConsumer.
	Delivery string
	// Queue bounds the events queued for one connection on the shared feed; a connection that
	// falls further behind is dropped from it and catches up again on a consumer of its own.
	// Default 1024.
	Queue int
	// OutageGrace is how long NATS may be away before every open feed ends, for its client to
	// resume by cursor elsewhere; until then Publish and Subscribe wait for it to come back.
	// Consumers pick up where they were after a reconnect, so a failover to another server of a
	// cluster within it goes unseen by clients. Default 2s.
	OutageGrace time.Duration
	// MaxCreating bounds the consumer creations in flight at once; more wait their turn, so a
	// reconnect storm cannot overflow the server's JetStream API queue. Default 64.
	MaxCreating int
	// Logger receives connection events; default discards.
	Logger *slog.Logger
	// Metrics observes consumer lifetimes; default none.
	Metrics Metrics
}

// Metrics observes the cost of per-connection consumers and what the bus passes over. Methods
// must be safe for concurrent use.
type Metrics interface {
	ConsumerCreated(took time.Duration)
	ConsumerDeleted(took time.Duration)
	// Skipped counts a stored event that no connection gets (reason "bad_subject",
	// "not_json", ...), on the channel its stream serves.
	Skipped(c routing.Channel, reason string)
	// ViewSkipped counts an event a view projector passed over because it can never be
	// applied (reason "too_large", "malformed", ...).
	ViewSkipped(view, reason string)
}

type nopMetrics struct{}

func (nopMetrics) ConsumerCreated(time.Duration)   {}
func (nopMetrics) ConsumerDeleted(time.Duration)   {}
func (nopMetrics) Skipped(routing.Channel, string) {}
func (nopMetrics) ViewSkipped(string, string)      {}

// Auth is how eventsd proves itself to an external NATS server; empty fields are unused.
type Auth struct {
	CredsFile      string // a .creds file (JWT and nkey seed)
	NkeyFile       string // an nkey seed file
	User, Password string
	TLSCA          string // CA certificate that signs the servers' certificates
	TLSCert        string // client certificate, with TLSKey
	TLSKey         string
}

// Options returns the NATS connection options for a's credentials and TLS files.
func (a Auth) Options() ([]nats.Option, error) {
	var opts []nats.Option
	if a.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(a.CredsFile))
	}
	if a.NkeyFile != "" {
		opt, err := nats.NkeyOptionFromSeed(a.NkeyFile)
		if err != nil {
			return nil, fmt.Errorf("bus: nkey %s: %w", a.NkeyFile, err)
		}
		opts = append(opts, opt)
	}
	if a.User != "" {
		opts = append(opts, nats.UserInfo(a.User, a.Password))
	}
	if a.TLSCA != "" {
		opts = append(opts, nats.RootCAs(a.TLSCA))
	}
	if a.TLSCert != "" || a.TLSKey != "" {
		opts = append(opts, nats.ClientCert(a.TLSCert, a.TLSKey))
	}
	return opts, nil
}

// Bus is a connection to NATS JetStream shaped for the event plane.
type Bus struct {
	nc  *nats.Conn
	js  jetstream.JetStream
	cfg Config
	log *slog.Logger

	wg       sync.WaitGroup // every feed and the contexts projector
	creating chan struct{}  // a slot per consumer creation in flight

	mu     sync.Mutex
	feeds  map[*Feed]struct{} // open feeds, ended when NATS stays away
	outage *time.Timer        // set while NATS is away: it ends the feeds after the grace period
	away   time.Time          // when NATS went away, while it is
	closed bool               // Close has begun: no outage timer starts

	shared sharedFeeds
	bg     context.Context // the lifetime of the shared feeds
	stopBg context.CancelFunc

	contextViews contextsProjector // the contexts projector, once StartContexts has run
	threadViews  threadsProjector  // the threads projector, once StartThreads has run
	taskViews    tasksProjector    // the tasks projector, once StartTasks has run
	agents       agentList         // the agents' consumers, for their A2A cards

	watch  watcher           // recreates deleted streams, once EnsureStreams has run
	epochs map[string]uint64 // each stream's epoch as last seen; guarded by mu
}

// Connect connects to NATS. It fails if no server answers before ctx is done.
func Connect(ctx context.Context, cfg Config) (*Bus, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := &Bus{cfg: cfg, log: log, creating: make(chan struct{}, cfg.MaxCreating), feeds: map[*Feed]struct{}{},
		agents: agentList{turn: make(chan struct{}, 1)},
		shared: sharedFeeds{feeds: map[string]*sharedFeed{}, starting: map[string]chan struct{}{}}}
	authOpts, err := cfg.Auth.Options()
	if err != nil {
		return nil, err
	}
	opts := append([]nats.Option{
		nats.Name(cfg.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			}
			b.outageBegan()
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
			b.outageEnded()
		}),
	}, authOpts...)
	if deadline, ok := ctx.Deadline(); ok {
		opts = append(opts, nats.Timeout(time.Until(deadline)))
	}
	if b.nc, err = nats.Connect(cfg.URL, opts...); err != nil {
		return nil, fmt.Errorf("%w: connect %s: %v", ErrUnavailable, RedactURL(cfg.URL), err)
	}
	if b.js, err = jetstream.New(b.nc, jetstream.WithDefaultTimeout(cfg.Timeout)); err != nil {
		b.nc.Close()
		return nil, fmt.Errorf("bus: jetstream: %w", err)
	}
	b.bg, b.stopBg = context.WithCancel(context.Background())
	return b, nil
}

// withDefaults fills in the defaults of what cfg leaves unset, and checks the rest.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.URL == "" {
		return cfg, fmt.Errorf("%w: no URL", ErrUnavailable)
	}
	switch cfg.Delivery {
	case "":
		cfg.Delivery = DeliveryShared
	case DeliveryShared, DeliveryConsumer:
	default:
		return cfg, fmt.Errorf("bus: delivery %q: want %s or %s", cfg.Delivery, DeliveryShared, DeliveryConsumer)
	}
	if cfg.Streams == (routing.StreamOptions{}) {
		cfg.Streams = routing.DefaultStreamOptions
	}
	if cfg.Metrics == nil {
		cfg.Metrics = nopMetrics{}
	}
	cfg.Name = cmp.Or(cfg.Name, "eventsd")
	positive(&cfg.InactiveThreshold, 10*time.Second)
	positive(&cfg.Timeout, 5*time.Second)
	positive(&cfg.OutageGrace, 2*time.Second)
	positive(&cfg.ReadAhead, 64)
	positive(&cfg.MaxCreating, 64)
	positive(&cfg.Queue, 1024)
	return cfg, nil
}

// positive sets *v to def unless it is above zero.
func positive[T int | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// RedactURL returns comma-separated NATS URLs with their passwords or tokens replaced, for
// printing and logging.
func RedactURL(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		switch {
		case err != nil:
			parts[i] = "<unparsable URL>" // it may hold credentials
		case u.User != nil:
			if _, ok := u.User.Password(); !ok { // a token in the user part
				u.User = url.User("xxxxx")
			}
			parts[i] = u.Redacted()
		}
	}
	return strings.Join(parts, ",")
}

// EnsureStreams creates the event plane's streams, or updates them to the configured settings.
// It is idempotent, and it sets up the context fan-in through the JetStream API, so it works the
// same against a cluster that eventsd does not operate.
//
// From then on, until the Bus closes, the bus watches the streams (JetStream's deletion
// advisories, and a check every 5 s): a deleted stream is created again, the feeds that
// followed it end (their clients resume with the stream_recreated notice), and the contexts
// views are rebuilt from a recreated CONTEXT stream.
func (b *Bus) EnsureStreams(ctx context.Context) error {
	if err := b.ensure(ctx); err != nil {
		return err
	}
	return b.startWatch(ctx)
}

// ensure creates or updates the streams and the bucket.
func (b *Bus) ensure(ctx context.Context) error {
	for _, spec := range routing.Streams(b.cfg.Streams) {
		if _, err := b.js.CreateOrUpdateStream(ctx, streamConfig(spec)); err != nil {
			return b.ensureFailed("stream "+spec.Name, err)
		}
	}
	if err := b.ensureBucket(ctx); err != nil {
		return b.ensureFailed("bucket "+routing.BucketContexts, err)
	}
	if err := b.ensureThreadsBucket(ctx); err != nil {
		return b.ensureFailed("bucket "+routing.BucketThreads, err)
	}
	if err := b.ensureTasksBucket(ctx); err != nil {
		return b.ensureFailed("bucket "+routing.BucketTasks, err)
	}
	return nil
}

// ensureFailed wraps a failure to create or update what (a stream or the bucket), telling
// apart a byte limit the server cannot reserve.
func (b *Bus) ensureFailed(what string, err error) error {
	if isAPIError(err, jsInsufficientResources, jsStorageExceeded) {
		return fmt.Errorf("%w: %s: %v (the server reserves its byte limit, %d bytes, against its JetStream storage: lower it or give JetStream more)",
			ErrNoStorage, what, err, b.cfg.Streams.MaxBytes)
	}
	if isAPIError(err, jsInvalidConfig, jsSubjectOverlap) {
		return fmt.Errorf("%w: %s: %v (a stream there already cannot take this configuration: remove it, or the stream whose subjects overlap, and start again)",
			ErrStreamConflict, what, err)
	}
	return fmt.Errorf("bus: ensure %s: %w", what, err)
}

// JetStream API error codes the bus tells apart (nats-server's JSInsufficientResourcesErr,
// JSStorageResourcesExceededErr, JSStreamInvalidConfigF and JSStreamSubjectOverlapErr).
const (
	jsInsufficientResources jetstream.ErrorCode = 10023
	jsStorageExceeded       jetstream.ErrorCode = 10047
	jsInvalidConfig         jetstream.ErrorCode = 10052 // an update that cannot be made (retention, say)
	jsSubjectOverlap        jetstream.ErrorCode = 10065
)

// isAPIError reports whether err is a JetStream API error with one of codes.
func isAPIError(err error, codes ...jetstream.ErrorCode) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && slices.Contains(codes, apiErr.ErrorCode)
}

func streamConfig(spec routing.StreamSpec) jetstream.StreamConfig {
	cfg := jetstream.StreamConfig{
		Name:         spec.Name,
		Subjects:     spec.Subjects,
		Storage:      jetstream.FileStorage,
		Retention:    jetstream.LimitsPolicy,
		Discard:      jetstream.DiscardOld,
		MaxAge:       spec.MaxAge,
		MaxBytes:     spec.MaxBytes,
		MaxMsgs:      -1,
		Replicas:     max(spec.Replicas, 1),
		Duplicates:   spec.Duplicates,
		MaxConsumers: spec.MaxConsumers,
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = -1
	}
	if spec.WorkQueue {
		cfg.Retention, cfg.Discard = jetstream.WorkQueuePolicy, jetstream.DiscardNew
		cfg.MaxMsgsPerSubject, cfg.DiscardNewPerSubject = routing.MaxRunsWaiting, true
	}
	for _, m := range spec.Sources {
		cfg.Sources = append(cfg.Sources, &jetstream.StreamSource{
			Name: m.Stream,
			SubjectTransforms: []jetstream.SubjectTransformConfig{
				{Source: m.From, Destination: m.To},
			},
		})
	}
	return cfg
}

// Ack is the answer to a publish: where the event was stored.
type Ack struct {
	Stream    string
	Seq       uint64
	Duplicate bool
}

// Publish stores one event on subject. A non-empty msgID de-duplicates retries within the
// streams' duplicate window.
func (b *Bus) Publish(ctx context.Context, subject string, data []byte, msgID string) (Ack, error) {
	if !b.waitConnected(ctx) {
		return Ack{}, fmt.Errorf("%w: publish %s: not connected", ErrUnavailable, subject)
	}
	var opts []jetstream.PublishOpt
	if msgID != "" {
		opts = append(opts, jetstream.WithMsgID(msgID))
	}
	if limit := b.MaxPayload(); int64(len(data)+len(msgID))+PublishOverhead > limit {
		return Ack{}, fmt.Errorf("%w: %d bytes, and the NATS server stores at most %d per event with its headers", ErrTooLarge, len(data), limit)
	}
	sent := time.Now()
	ack, err := b.js.Publish(ctx, subject, data, opts...)
	if errors.Is(err, jetstream.ErrNoStreamResponse) && b.recoverStreams(ctx, sent) {
		// The stream was deleted: publish again once it is back.
		ack, err = b.js.Publish(ctx, subject, data, opts...)
	}
	if errors.Is(err, nats.ErrMaxPayload) { // the limit changed under us: a reconnect to another server
		return Ack{}, fmt.Errorf("%w: %d bytes: %v", ErrTooLarge, len(data), err)
	}
	if err != nil {
		return Ack{}, b.wrap("publish "+subject, err)
	}
	return Ack{Stream: ack.Stream, Seq: ack.Sequence, Duplicate: ack.Duplicate}, nil
}

// PublishOverhead is room, in bytes, for the headers of a published event beside its
// Nats-Msg-Id: NATS counts headers and payload together against its payload limit.
const PublishOverhead = 512

// MaxPayload is the largest message, headers included, the NATS server accepts; 1 MiB unless
// the server is configured otherwise.
func (b *Bus) MaxPayload() int64 { return b.nc.MaxPayload() }

// wrap marks errors that mean NATS is out of reach with ErrUnavailable.
func (b *Bus) wrap(op string, err error) error {
	if b.nc.Status() != nats.CONNECTED || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("%w: %s: %v", ErrUnavailable, op, err)
	}
	return fmt.Errorf("bus: %s: %w", op, err)
}

// outageBegan ends every open feed if NATS is still away after the grace period.
func (b *Bus) outageBegan() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.outage == nil && !b.closed {
		b.outage = time.AfterFunc(b.cfg.OutageGrace, b.endFeeds)
		b.away = time.Now()
	}
}

// outageEnded keeps the feeds open: NATS is back within the grace period.
func (b *Bus) outageEnded() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.outage != nil {
		b.outage.Stop()
		b.outage, b.away = nil, time.Time{}
	}
}

// waitConnected reports whether NATS is connected, waiting for it to come back while it has been
// away for less than the grace period: a publish or a new stream during a failover to another
// server of the cluster goes through rather than failing.
func (b *Bus) waitConnected(ctx context.Context) bool {
	if b.Connected() {
		return true
	}
	if b.nc.IsClosed() {
		return false
	}
	back := b.nc.StatusChanged(nats.CONNECTED)
	defer b.nc.RemoveStatusListener(back)
	if b.Connected() { // it came back before back was listening
		return true
	}
	b.mu.Lock()
	since := b.away
	b.mu.Unlock()
	if since.IsZero() { // the disconnect is not handled yet: it has only just happened
		since = time.Now()
	}
	grace := time.NewTimer(time.Until(since.Add(b.cfg.OutageGrace)))
	defer grace.Stop()
	select {
	case <-back:
	case <-grace.C:
	case <-ctx.Done():
	}
	return b.Connected()
}

// endFeeds ends every open feed with ErrUnavailable: NATS has been away for the grace period,
// and a client is better served resuming by cursor, on this node once NATS is back or on
// another, than waiting on a stream that delivers nothing.
func (b *Bus) endFeeds() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for f := range b.feeds {
		f.sub.End(fmt.Errorf("%w: connection lost", ErrUnavailable))
	}
}

// Connected reports whether the NATS connection is up.
func (b *Bus) Connected() bool { return b.nc.Status() == nats.CONNECTED }

// Ready reports whether NATS is connected and every stream exists.
func (b *Bus) Ready(ctx context.Context) error {
	if s := b.nc.Status(); s != nats.CONNECTED {
		return fmt.Errorf("%w: connection is %s", ErrUnavailable, s)
	}
	for _, spec := range routing.Streams(b.cfg.Streams) {
		if _, err := b.js.Stream(ctx, spec.Name); err != nil {
			return b.wrap("stream "+spec.Name, err)
		}
	}
	return nil
}

// StreamState is a summary of one stream.
type StreamState struct {
	Name      string
	Subjects  []string
	Msgs      uint64
	Bytes     uint64
	FirstSeq  uint64
	LastSeq   uint64
	Consumers int
	MaxAge    time.Duration
}

// Stream returns the current state of the named stream.
func (b *Bus) Stream(ctx context.Context, name string) (StreamState, error) {
	s, err := b.js.Stream(ctx, name)
	if err != nil {
		return StreamState{}, b.wrap("stream "+name, err)
	}
	info := s.CachedInfo()
	return StreamState{
		Name: name, Subjects: info.Config.Subjects,
		Msgs: info.State.Msgs, Bytes: info.State.Bytes,
		FirstSeq: info.State.FirstSeq, LastSeq: info.State.LastSeq,
		Consumers: info.State.Consumers, MaxAge: info.Config.MaxAge,
	}, nil
}

// Close stops the contexts projector and the stream watcher, waits for every feed to stop,
// then drains the NATS connection.
func (b *Bus) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.outageEnded()
	b.contextViews.stop()
	b.threadViews.stop()
	b.taskViews.stop()
	b.stopBg()
	waited := make(chan struct{})
	go func() { b.wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		// A consumer still recreating itself waits on the server; closing the connection ends
		// its requests.
		b.log.Warn("closing NATS with consumers still stopping")
		b.nc.Close()
		<-waited
	}
	if b.nc.IsClosed() {
		return nil
	}
	closed := make(chan struct{})
	b.nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := b.nc.Drain(); err != nil {
		b.nc.Close()
		return fmt.Errorf("bus: drain: %w", err)
	}
	<-closed
	return nil
}

// PublishEvent publishes a typed event for user on its channel and returns where it was
// stored. A zero timestamp is set to now. AG-UI and A2A events reach the contexts channel
// through the streams' fan-in, not through a second publish.
func (b *Bus) PublishEvent(ctx context.Context, user string, ev event.Event) (Ack, error) {
	subject, err := routing.SubjectFor(ev.Channel(), user, ev.EventType())
	if err != nil {
		return Ack{}, err
	}
	data, err := event.Encode(ev, time.Now())
	if err != nil {
		return Ack{}, fmt.Errorf("bus: encode %s: %w", ev.EventType(), err)
	}
	return b.Publish(ctx, subject, data, "")
}
