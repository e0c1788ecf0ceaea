package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/eventsd/eventsd/auth"
	"github.com/eventsd/eventsd/bus"
	"github.com/eventsd/eventsd/embedded"
	"github.com/eventsd/eventsd/internal/datadir"
	"github.com/eventsd/eventsd/metrics"
	"github.com/eventsd/eventsd/routing"
	"github.com/eventsd/eventsd/sse"
)

// config is everything eventsd is told on its command line or in EVENTSD_* variables.
type config struct {
	listen       string
	dataDir      string
	natsListen   string
	natsURL      string
	jwtSecret    string
	heartbeat    time.Duration
	retention    time.Duration
	maxBody      int64
	maxRunBody   int64
	runTimeout   time.Duration
	maxRunTime   time.Duration
	maxBytes     int64
	readTimeout  time.Duration
	writeTimeout time.Duration
	logFormat    string
	logLevel     string
	corsOrigins  []string
	publicURL    string

	tlsCert, tlsKey string
	h2c             bool

	natsCreds, natsNkey, natsUser, natsPassword string
	natsTLSCA, natsTLSCert, natsTLSKey          string
	replicas                                    int
	maxConnsPerUser, maxConns                   int
	ingressRate, ingressBurst                   int
	queue                                       int
	inactiveThreshold, natsGrace                time.Duration
	delivery                                    string
}

func flags(c *config) []cli.Flag {
	env := func(name string) []string {
		return []string{"EVENTSD_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))}
	}
	str := func(name, value, usage string, dst *string) cli.Flag {
		return &cli.StringFlag{Name: name, Value: value, Usage: usage, EnvVars: env(name), Destination: dst}
	}
	dur := func(name string, value time.Duration, usage string, dst *time.Duration) cli.Flag {
		return &cli.DurationFlag{Name: name, Value: value, Usage: usage, EnvVars: env(name), Destination: dst}
	}
	integer := func(name string, value int, usage string, dst *int) cli.Flag {
		return &cli.IntFlag{Name: name, Value: value, Usage: usage, EnvVars: env(name), Destination: dst}
	}
	return []cli.Flag{
		str("listen", "127.0.0.1:8080", "address to serve HTTP on (HTTPS with --tls-cert)", &c.listen),
		str("tls-cert", "", "PEM file of the HTTPS certificate, its chain after it (with --tls-key): eventsd serves HTTPS, HTTP/2 included, and reads both files again on SIGHUP", &c.tlsCert),
		str("tls-key", "", "PEM file of the HTTPS certificate's private key (with --tls-cert)", &c.tlsKey),
		&cli.BoolFlag{Name: "h2c", Usage: "serve HTTP/2 without TLS (prior knowledge) beside HTTP/1.1, for a proxy that speaks h2c to its backends (Envoy, Caddy); not with --tls-cert", EnvVars: env("h2c"), Destination: &c.h2c},
		&cli.GenericFlag{Name: "cors-origins", Value: &listValue{&c.corsOrigins}, EnvVars: env("cors-origins"),
			Usage: "origins whose pages may call the API from another origin, comma-separated (e.g. https://app.example.com; * alone: any origin, without credentials); none: same origin only"},
		str("public-url", "", "where clients reach this server (scheme://host[:port][/prefix]), for the endpoint URLs of A2A agent cards behind a proxy; none: each request's own scheme and host", &c.publicURL),
		str("data-dir", "./data", "directory for the embedded JetStream store, the generated JWT secret and NATS password", &c.dataDir),
		str("nats-listen", "127.0.0.1:4222", "the embedded NATS server's client address (0 for a free port)", &c.natsListen),
		str("nats-url", "", "use this external NATS server or cluster (comma-separated URLs) instead of the embedded one", &c.natsURL),
		str("jwt-secret", "", "HS256 secret for tokens (default: generated into the data directory)", &c.jwtSecret),
		dur("heartbeat", 15*time.Second, "idle time after which a stream gets a heartbeat frame", &c.heartbeat),
		dur("retention", 24*time.Hour, "how long streams keep events", &c.retention),
		&cli.Int64Flag{Name: "max-body", Value: sse.DefaultMaxBody, Usage: "largest ingress body in bytes; with its headers, an event must fit the NATS server's payload limit (1 MiB unless configured otherwise)", EnvVars: env("max-body"), Destination: &c.maxBody},
		&cli.Int64Flag{Name: "max-run-body", Usage: "largest AG-UI run request (POST /api/v1/agui/agents/{agent}/run) in bytes; with what a request adds, it must fit the NATS server's payload limit (0: as much as that allows, 8 MiB less 8 KiB on the embedded server)", EnvVars: env("max-run-body"), Destination: &c.maxRunBody},
		dur("run-timeout", 30*time.Second, "how long a run request waits for a runtime of its agent before the run ends in RUN_ERROR no_runtime", &c.runTimeout),
		dur("max-run-duration", sse.DefaultMaxRunDuration, "how long a run started over HTTP may last before it ends in RUN_ERROR run_timeout and its runtime is told to stop", &c.maxRunTime),
		&cli.Int64Flag{Name: "max-bytes", Value: routing.DefaultStreamOptions.MaxBytes, Usage: "size limit of each stream in bytes; past it the oldest events are discarded (0: no limit). The server reserves it per stream against its JetStream storage", EnvVars: env("max-bytes"), Destination: &c.maxBytes},
		dur("read-timeout", 10*time.Second, "time a request body may take to arrive; a body still trickling in after it is cut off (streams are not affected)", &c.readTimeout),
		dur("write-timeout", 10*time.Second, "a stream client that takes no frame for this long is disconnected", &c.writeTimeout),
		str("log-format", "text", "log format: text or json", &c.logFormat),
		str("log-level", "info", "log level: debug, info, warn or error", &c.logLevel),
		str("nats-creds", "", "NATS credentials file (with --nats-url)", &c.natsCreds),
		str("nats-nkey", "", "NATS nkey seed file (with --nats-url)", &c.natsNkey),
		str("nats-user", "", "NATS user (with --nats-password)", &c.natsUser),
		str("nats-password", "", "NATS password", &c.natsPassword),
		str("nats-tls-ca", "", "CA certificate file that signs the NATS servers' certificates", &c.natsTLSCA),
		str("nats-tls-cert", "", "client certificate file for NATS (with --nats-tls-key)", &c.natsTLSCert),
		str("nats-tls-key", "", "client key file for NATS", &c.natsTLSKey),
		integer("replicas", 1, "copies of each stream (3 recommended on a cluster)", &c.replicas),
		integer("max-conns-per-user", 32, "open streams one user may hold on this node (0: no limit): it guards the node's memory and file descriptors against one user's runaway tabs or scripts; a browser tab following agui, a2a and contexts holds 3", &c.maxConnsPerUser),
		integer("max-conns", 100_000, "open streams on this node (0: no limit)", &c.maxConns),
		integer("ingress-rate", 500, "publishes per second for one user, whoever publishes them, on this node (0: no limit)", &c.ingressRate),
		integer("ingress-burst", 1000, "publishes one user may make at once before --ingress-rate applies", &c.ingressBurst),
		str("delivery", "shared", "where live events come from: shared (one JetStream consumer per stream and node, fanned out in process) or consumer (one per connection)", &c.delivery),
		integer("queue", 1024, "events queued for one stream on the shared path; a client that falls further behind is dropped from the shared feed and catches up on a consumer of its own", &c.queue),
		dur("nats-grace", 2*time.Second, "how long NATS may be away before open streams end (their clients resume by id) and publishes and new streams get 503; a failover within a NATS cluster inside it goes unseen", &c.natsGrace),
		dur("inactive-threshold", 10*time.Second, "the server removes a stream's consumer this long after its eventsd stopped asking (if it died)", &c.inactiveThreshold),
	}
}

// check refuses a setting that cannot work, naming its flag, before anything starts.
func (c config) check() error {
	const minJWTSecret = 32 // HS256 wants a key as long as its hash
	for _, r := range []struct {
		flag  string
		value any
		ok    bool
		want  string
	}{
		{"heartbeat", c.heartbeat, c.heartbeat > 0, "a positive duration"},
		{"retention", c.retention, c.retention > 0, "a positive duration"},
		{"write-timeout", c.writeTimeout, c.writeTimeout > 0, "a positive duration"},
		{"nats-grace", c.natsGrace, c.natsGrace > 0, "a positive duration"},
		{"inactive-threshold", c.inactiveThreshold, c.inactiveThreshold > 0, "a positive duration"},
		{"max-body", c.maxBody, c.maxBody > 0, "a positive number of bytes"},
		{"max-run-body", c.maxRunBody, c.maxRunBody >= 0, "0 (what NATS carries) or a number of bytes"},
		{"run-timeout", c.runTimeout, c.runTimeout > 0, "a positive duration"},
		{"max-run-duration", c.maxRunTime, c.maxRunTime > 0, "a positive duration"},
		{"queue", c.queue, c.queue > 0, "a positive number of events"},
		{"replicas", c.replicas, c.replicas >= 1 && c.replicas <= 5, "1 to 5 (JetStream's range)"},
		{"max-conns", c.maxConns, c.maxConns >= 0, "0 (no limit) or more"},
		{"max-conns-per-user", c.maxConnsPerUser, c.maxConnsPerUser >= 0, "0 (no limit) or more"},
		{"ingress-rate", c.ingressRate, c.ingressRate >= 0, "0 (no limit) or more"},
		{"ingress-burst", c.ingressBurst, c.ingressRate == 0 || c.ingressBurst >= c.ingressRate, "at least --ingress-rate"},
		{"max-bytes", c.maxBytes, c.maxBytes >= 0, "0 (no limit) or a number of bytes"},
		{"read-timeout", c.readTimeout, c.readTimeout > 0, "a positive duration"},
		{"tls-cert", c.tlsCert, c.tlsCert == "" || c.tlsKey != "", "--tls-key with it"},
		{"tls-key", c.tlsKey, c.tlsKey == "" || c.tlsCert != "", "--tls-cert with it"},
		{"h2c", c.h2c, !c.h2c || c.tlsCert == "", "no --tls-cert with it: over TLS, HTTP/2 is on already (negotiated by ALPN)"},
		// The value is a secret: the message gives its length only.
		{"jwt-secret", fmt.Sprintf("of %d bytes", len(c.jwtSecret)), c.jwtSecret == "" || len(c.jwtSecret) >= minJWTSecret,
			fmt.Sprintf("at least %d bytes, best given in EVENTSD_JWT_SECRET, or none to use the one generated into the data directory", minJWTSecret)},
	} {
		if !r.ok {
			return fmt.Errorf("--%s %v: want %s", r.flag, r.value, r.want)
		}
	}
	if err := sse.CheckCORSOrigins(c.corsOrigins); err != nil {
		return fmt.Errorf("--cors-origins: %w", err)
	}
	if err := sse.CheckPublicURL(c.publicURL); err != nil {
		return fmt.Errorf("--public-url: %w", err)
	}
	return nil
}

// run parses args and serves until ctx is done, reloading the TLS certificate on SIGHUP.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c config
	app := &cli.App{
		Name:      "eventsd",
		Usage:     "real-time event plane: SSE streams of AG-UI, A2A, system and analytics events on NATS JetStream",
		UsageText: "eventsd [--listen ADDR] [--data-dir DIR] [--nats-url URL] [--tls-cert FILE --tls-key FILE] ...",
		Flags:     flags(&c),
		Writer:    stdout,
		ErrWriter: stderr,
		Action: func(*cli.Context) error {
			if err := c.check(); err != nil {
				return err
			}
			// Caught before eventsd says where it serves: from then on, SIGHUP reloads instead
			// of ending the process (its default action).
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			d, err := start(ctx, c, stdout, stderr)
			if err != nil {
				return err
			}
			for {
				select {
				case <-hup:
					d.reload()
				case <-ctx.Done():
					return d.shutdown()
				}
			}
		},
	}
	return app.RunContext(ctx, args)
}

// daemon is a running eventsd.
type daemon struct {
	httpURL       string // https:// with TLS
	natsURL       string
	srv           *http.Server
	served        chan error
	cancelStreams context.CancelFunc
	handler       *sse.Handler
	bus           *bus.Bus
	nats          *embedded.Server // nil with an external server
	certs         *certFiles       // nil without TLS
	log           *slog.Logger
}

// start brings eventsd up: NATS, streams, HTTP.
func start(ctx context.Context, c config, stdout, stderr io.Writer) (_ *daemon, err error) {
	log, err := newLogger(c.logFormat, c.logLevel, stderr)
	if err != nil {
		return nil, err
	}
	d := &daemon{log: log, served: make(chan error, 1)}
	if c.tlsCert != "" { // first: a certificate that does not load stops eventsd before anything starts
		if d.certs, err = loadCertFiles(c.tlsCert, c.tlsKey, log); err != nil {
			return nil, err
		}
	}
	secret := []byte(c.jwtSecret)
	if len(secret) == 0 {
		if secret, err = auth.LoadOrCreateSecret(c.dataDir); err != nil {
			return nil, err
		}
	}
	defer func() {
		if err != nil {
			d.stopNATS()
		}
	}()
	natsAuth, err := d.startNATS(c)
	if err != nil {
		return nil, err
	}
	m := metrics.New(func() bool { return d.bus.Connected() })
	if err := d.connect(ctx, &c, natsAuth, m); err != nil {
		return nil, err
	}
	d.handler, err = sse.NewHandler(sse.Config{
		Broker:          d.bus,
		Verifier:        auth.NewVerifier(secret),
		Heartbeat:       c.heartbeat,
		WriteTimeout:    c.writeTimeout,
		MaxBody:         c.maxBody,
		MaxRunBody:      c.maxRunBody,
		RunTimeout:      c.runTimeout,
		MaxRunDuration:  c.maxRunTime,
		ReadTimeout:     c.readTimeout,
		Logger:          log,
		Metrics:         m,
		MaxConnsPerUser: c.maxConnsPerUser,
		MaxConns:        c.maxConns,
		IngressRate:     c.ingressRate,
		IngressBurst:    c.ingressBurst,
		CORSOrigins:     c.corsOrigins,
		PublicURL:       strings.TrimSuffix(c.publicURL, "/"),
	})
	if err != nil {
		return nil, err
	}
	d.handler.Router().Handle("/metrics", m.Handler())
	if err := d.serve(ctx, c.listen, c.h2c, c.writeTimeout); err != nil {
		return nil, err
	}
	d.announce(c, stdout)
	return d, nil
}

// startNATS starts the embedded NATS server unless --nats-url names one, and returns how to
// log in to NATS.
func (d *daemon) startNATS(c config) (bus.Auth, error) {
	d.natsURL = c.natsURL
	if d.natsURL != "" {
		return bus.Auth{
			CredsFile: c.natsCreds, NkeyFile: c.natsNkey, User: c.natsUser, Password: c.natsPassword,
			TLSCA: c.natsTLSCA, TLSCert: c.natsTLSCert, TLSKey: c.natsTLSKey,
		}, nil
	}
	host, port, err := splitNATSListen(c.natsListen)
	if err != nil {
		return bus.Auth{}, err
	}
	password, err := datadir.ReadOrCreate(c.dataDir, datadir.NATSPasswordFile)
	if err != nil {
		return bus.Auth{}, err
	}
	d.nats, err = embedded.Start(embedded.Options{Host: host, Port: port, StoreDir: filepath.Join(c.dataDir, "jetstream"),
		User: datadir.NATSUser, Password: password})
	if err != nil {
		return bus.Auth{}, err
	}
	d.natsURL = d.nats.ClientURL()
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		d.log.Warn("the embedded NATS server listens beyond loopback, where its password and events travel in clear text: "+
			"on a network, use a NATS cluster with TLS (--nats-url with --nats-tls-*)", "addr", net.JoinHostPort(host, strconv.Itoa(port)))
	}
	return bus.Auth{User: datadir.NATSUser, Password: password}, nil
}

// connect connects the bus, ensures the streams, checks --max-body and --max-run-body against
// the server's payload limit (setting --max-run-body where it is 0) and starts the contexts and
// threads projectors.
func (d *daemon) connect(ctx context.Context, c *config, natsAuth bus.Auth, m *metrics.Prometheus) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	streams := routing.DefaultStreamOptions
	streams.MaxAge = c.retention
	streams.Replicas = c.replicas
	streams.MaxBytes = c.maxBytes
	streams.RunTimeout = c.runTimeout
	var err error
	d.bus, err = bus.Connect(ctx, bus.Config{
		URL: d.natsURL, Auth: natsAuth, Streams: streams, Logger: d.log, Metrics: m,
		InactiveThreshold: c.inactiveThreshold, OutageGrace: c.natsGrace, Delivery: c.delivery, Queue: c.queue,
	})
	if err != nil {
		return err
	}
	if err := d.ensureStreams(ctx, c.maxBytes); err != nil {
		return err
	}
	limit := d.bus.MaxPayload()
	if c.maxBody+bus.PublishOverhead+sse.StampOverhead+sse.MaxMsgID > limit {
		return fmt.Errorf("--max-body %d: the NATS server stores at most %d bytes per event, headers and added fields included: want at most %d",
			c.maxBody, limit, limit-bus.PublishOverhead-sse.StampOverhead-sse.MaxMsgID)
	}
	if c.maxRunBody == 0 {
		c.maxRunBody = limit - bus.PublishOverhead - sse.RunOverhead
	}
	if c.maxRunBody+bus.PublishOverhead+sse.RunOverhead > limit {
		return fmt.Errorf("--max-run-body %d: the NATS server carries at most %d bytes per message, what a run request adds included: want at most %d (or 0)",
			c.maxRunBody, limit, limit-bus.PublishOverhead-sse.RunOverhead)
	}
	if err := d.bus.StartContexts(ctx); err != nil {
		return err
	}
	if err := d.bus.StartThreads(ctx); err != nil {
		return err
	}
	return d.bus.StartTasks(ctx)
}

// ensureStreams creates or updates the streams, waiting for JetStream until ctx is done.
func (d *daemon) ensureStreams(ctx context.Context, maxBytes int64) error {
	// A cluster that has just started may not have elected its JetStream leader yet, and
	// drops requests meanwhile: each attempt gets a short deadline of its own.
	for {
		attempt, cancelAttempt := context.WithTimeout(ctx, 3*time.Second)
		err := d.bus.EnsureStreams(attempt)
		cancelAttempt()
		if err == nil {
			return nil
		}
		if errors.Is(err, bus.ErrNoStorage) { // waiting will not change it
			return fmt.Errorf("--max-bytes %d: %w", maxBytes, err)
		}
		if errors.Is(err, bus.ErrStreamConflict) { // nor this
			return err
		}
		if ctx.Err() != nil {
			return err
		}
		d.log.Info("waiting for JetStream", "err", err)
		time.Sleep(250 * time.Millisecond)
	}
}

// serve listens on addr and serves the handler until shutdown: HTTPS with HTTP/2 (by ALPN)
// when there is a certificate, else HTTP/1.1, with HTTP/2 by prior knowledge too when h2c.
func (d *daemon) serve(ctx context.Context, addr string, h2c bool, writeTimeout time.Duration) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	streamCtx, cancelStreams := context.WithCancel(context.WithoutCancel(ctx))
	d.cancelStreams = cancelStreams
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetHTTP2(d.certs != nil)
	protocols.SetUnencryptedHTTP2(h2c)
	d.srv = &http.Server{
		Handler:           d.handler,
		Protocols:         &protocols,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		BaseContext:       func(net.Listener) context.Context { return streamCtx },
		ErrorLog:          slog.NewLogLogger(d.log.Handler(), slog.LevelWarn),
		// A stream's write deadline only queues its reset: a client that stops reading its
		// connection would hold every stream on it, and a shutdown waiting for them, for ever.
		// A connection that takes no byte for this long is closed, its streams with it.
		HTTP2: &http.HTTP2Config{WriteByteTimeout: writeTimeout},
	}
	scheme, serve := "http", func() error { return d.srv.Serve(ln) }
	if d.certs != nil {
		d.srv.TLSConfig = d.certs.tlsConfig()
		scheme, serve = "https", func() error { return d.srv.ServeTLS(ln, "", "") }
	}
	go func() { d.served <- serve() }()
	d.httpURL = scheme + "://" + ln.Addr().String()
	return nil
}

// announce prints where eventsd serves and, when it generated the JWT secret, how to mint a
// token.
func (d *daemon) announce(c config, stdout io.Writer) {
	fmt.Fprintf(stdout, "eventsd: %s on %s\n", strings.ToUpper(strings.SplitN(d.httpURL, ":", 2)[0]), d.httpURL)
	if d.nats != nil {
		fmt.Fprintf(stdout, "eventsd: embedded NATS on %s (store %s)\n", d.natsURL, filepath.Join(c.dataDir, "jetstream"))
	} else {
		fmt.Fprintf(stdout, "eventsd: NATS at %s\n", bus.RedactURL(d.natsURL))
	}
	if c.jwtSecret == "" {
		fmt.Fprintf(stdout, "eventsd: mint a token with: go run ./cmd/eventsctl token --user alice --data-dir %s\n", c.dataDir)
	}
}

// shutdown stops accepting, ends open streams (deleting their consumers), drains NATS and stops
// the embedded server, in that order.
func (d *daemon) shutdown() error {
	// Streams first, so that they end for "shutdown": ending the requests' contexts first
	// would end those on HTTP/2, which watch their request's context, as if their clients left.
	d.handler.Close()
	d.cancelStreams()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	err := d.srv.Shutdown(ctx)
	if serr := <-d.served; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return errors.Join(err, d.stopNATS())
}

func (d *daemon) stopNATS() error {
	var err error
	if d.bus != nil {
		err = d.bus.Close()
	}
	if d.nats != nil {
		d.nats.Shutdown()
	}
	return err
}

// splitNATSListen reads --nats-listen: host:port, or a bare port ("0" for a free one).
func splitNATSListen(s string) (string, int, error) {
	host, portText, err := net.SplitHostPort(s)
	if err != nil {
		host, portText = "127.0.0.1", s
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("--nats-listen %q: want host:port or a port number", s)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return host, port, nil
}

// listValue is a flag of comma-separated entries: spaces around them and empty ones are dropped.
type listValue struct{ dst *[]string }

// Set implements cli.Generic.
func (v *listValue) Set(s string) error {
	*v.dst = nil
	for e := range strings.SplitSeq(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			*v.dst = append(*v.dst, e)
		}
	}
	return nil
}

// String implements cli.Generic.
func (v *listValue) String() string {
	if v == nil || v.dst == nil {
		return ""
	}
	return strings.Join(*v.dst, ",")
}

func newLogger(format, level string, w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}
