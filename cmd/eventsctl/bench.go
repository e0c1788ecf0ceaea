package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"

	"github.com/eventsd/eventsd/bench"
)

func benchCommand() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "measure a running eventsd on loopback: fan-out, many users, replay, context fan-in, each against plain NATS",
		UsageText: "eventsd --max-conns-per-user 0 --ingress-rate 0 &\n" +
			"   eventsctl bench --server http://127.0.0.1:8080 --data-dir ./data --scenario fanout --conns 1000 --events 1000\n" +
			"   eventsctl bench --server http://127.0.0.1:8080 --data-dir ./data --scenario idle --conns 10000 --http2 --h2-conns 100   # eventsd --h2c",
		Flags: slices.Concat([]cli.Flag{
			required(serverFlag()),
			stringFlag("scenario", "fanout,users,replay,context", "scenarios to run, comma-separated: fanout, users, replay, context, idle, churn"),
			&cli.IntFlag{Name: "conns", Value: 100, Usage: "connections (fanout, idle) or users (users)", EnvVars: env("conns")},
			&cli.IntFlag{Name: "events", Value: 1000, Usage: "events to publish", EnvVars: env("events")},
			&cli.IntFlag{Name: "rate", Usage: "events per second (0: as fast as accepted)", EnvVars: env("rate")},
			stringFlag("via", bench.ViaNATS, "publish straight to JetStream (nats) or through eventsd's HTTP ingress (http)"),
			&cli.IntFlag{Name: "window", Value: bench.DefaultWindow, Usage: "publishes awaiting acknowledgement at once, when publishing as fast as accepted", EnvVars: env("window")},
			&cli.DurationFlag{Name: "timeout", Value: time.Minute, Usage: "bound on each scenario", EnvVars: env("timeout")},
			&cli.BoolFlag{Name: "json", Usage: "one JSON object per scenario", EnvVars: env("json")},
			&cli.BoolFlag{Name: "http2", Usage: "idle: the streams over HTTP/2, spread over --h2-conns connections (TLS and ALPN to an https:// --server, h2c to an http:// one: eventsd --h2c); else, and in the other scenarios, each stream has an HTTP/1.1 connection", EnvVars: env("http2")},
			&cli.IntFlag{Name: "h2-conns", Value: 100, Usage: fmt.Sprintf("idle --http2: the HTTP/2 connections the streams share, at most %d streams each", bench.MaxStreamsPerConn), EnvVars: env("h2-conns")},
		}, secretFlags(), natsFlags()),
		Action: runBench,
	}
}

// runBench runs the scenarios --scenario names, one after the other, and prints their results.
func runBench(c *cli.Context) error {
	if err := checkBench(c); err != nil {
		return err
	}
	cfg, done, err := benchConfig(c)
	if err != nil {
		return err
	}
	defer done()
	var results []bench.Result
	for _, s := range strings.Split(c.String("scenario"), ",") {
		finish := showProgress(&cfg, c.App.ErrWriter, s)
		rs, err := runScenario(c, cfg, s)
		finish()
		if err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
		results = append(results, rs...)
	}
	return printResults(c.App.Writer, results, c.Bool("json"))
}

// benchConfig returns the benchmark's settings, connected to NATS; done closes what it opened.
func benchConfig(c *cli.Context) (cfg bench.Config, done func(), err error) {
	secret, err := secretOf(c)
	if err != nil {
		return cfg, nil, err
	}
	hc, err := httpClient(c)
	if err != nil {
		return cfg, nil, err
	}
	natsCfg, err := natsConfig(c, "eventsctl-bench")
	if err != nil {
		return cfg, nil, err
	}
	ctx, cancel := context.WithTimeout(c.Context, 10*time.Second)
	n, err := bench.ConnectNATS(ctx, natsCfg)
	cancel()
	if err != nil {
		return cfg, nil, fmt.Errorf("%w (set --nats-url)", err)
	}
	cfg = bench.Config{Server: strings.TrimRight(c.String("server"), "/"), Secret: secret, NATS: n, HTTPClient: hc,
		Timeout: c.Duration("timeout"), Window: c.Int("window"), Via: c.String("via")}
	return cfg, func() { n.Close(); hc.CloseIdleConnections() }, nil
}

// runScenario runs the scenario s, which checkBench has let through.
func runScenario(c *cli.Context, cfg bench.Config, s string) ([]bench.Result, error) {
	conns, events, rate := c.Int("conns"), c.Int("events"), c.Int("rate")
	one := func(r bench.Result, err error) ([]bench.Result, error) { return []bench.Result{r}, err }
	switch s {
	case "fanout":
		return one(cfg.Fanout(c.Context, conns, events, rate))
	case "users":
		return one(cfg.Users(c.Context, conns, events, rate))
	case "replay":
		return one(cfg.Replay(c.Context, events))
	case "idle":
		if c.Bool("http2") {
			return one(cfg.IdleHTTP2(c.Context, conns, c.Int("h2-conns"), 5*time.Second))
		}
		return one(cfg.Idle(c.Context, conns, 5*time.Second))
	case "churn":
		return one(cfg.Churn(c.Context, 32, 10*time.Second))
	case "context":
		a, x, err := cfg.Context(c.Context, events, max(rate, 200))
		return []bench.Result{a, x}, err
	}
	return nil, fmt.Errorf("unknown scenario %q", s)
}

// printResults writes one JSON object per result, or a table for people.
func printResults(out io.Writer, results []bench.Result, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(out)
		for _, r := range results {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "scenario\tconns\tproto\ttcp conns\tevents\trate\tdelivered/s\tpublished/s\tp50 ms\tp99 ms\tmax ms\tlost\tdup\traw NATS/s\traw lost\tratio\tKiB/conn\traw KiB/conn\tidle CPU\tconsumers left\t")
	for _, r := range results {
		fmt.Fprintf(w, "%s\t%d\t%s\t%d\t%d\t%d\t%.0f\t%.0f\t%.2f\t%.2f\t%.2f\t%d\t%d\t%.0f\t%d\t%.2f\t%.1f\t%.1f\t%.3f\t%d\t\n", r.Scenario, r.Conns, r.Proto, r.TCPConns,
			r.Events, r.Rate, r.DeliveredPS, r.PublishedPS, r.P50ms, r.P99ms, r.Maxms, r.Lost, r.Duplicated, r.RawDelivered, r.RawLost, r.Ratio,
			r.RSSPerConnKiB, r.RawRSSPerConnKiB, r.IdleCPU, r.ConsumersLeft)
	}
	return w.Flush()
}

// scenarios are the names --scenario takes.
var scenarios = []string{"fanout", "users", "replay", "context", "idle", "churn"}

// checkBench refuses flags that cannot make a run, before anything connects.
func checkBench(c *cli.Context) error {
	for _, s := range strings.Split(c.String("scenario"), ",") {
		if !slices.Contains(scenarios, s) {
			return fmt.Errorf("--scenario: unknown scenario %q: want %s", s, strings.Join(scenarios, ", "))
		}
	}
	if via := c.String("via"); via != bench.ViaNATS && via != bench.ViaHTTP {
		return fmt.Errorf("--via %q: want nats or http", via)
	}
	for _, f := range []struct {
		flag string
		min  int
	}{{"conns", 1}, {"events", 1}, {"window", 1}, {"rate", 0}, {"h2-conns", 1}} {
		if v := c.Int(f.flag); v < f.min {
			return fmt.Errorf("--%s %d: want %d or more", f.flag, v, f.min)
		}
	}
	if c.Bool("http2") {
		if !slices.Contains(strings.Split(c.String("scenario"), ","), "idle") {
			return fmt.Errorf("--http2 is for the idle scenario: add idle to --scenario %q", c.String("scenario"))
		}
		if err := bench.CheckHTTP2(c.Int("conns"), c.Int("h2-conns")); err != nil {
			return fmt.Errorf("--conns %d, --h2-conns %d: %w", c.Int("conns"), c.Int("h2-conns"), err)
		}
	}
	if d := c.Duration("timeout"); d <= 0 {
		return fmt.Errorf("--timeout %s: want a positive duration", d)
	}
	return nil
}

// showProgress gives cfg a progress bar for the scenario on w when w is a terminal; finish
// clears it.
func showProgress(cfg *bench.Config, w io.Writer, scenario string) (finish func()) {
	cfg.Progress = nil
	if !isTerminal(w) {
		return func() {}
	}
	var bar *progressbar.ProgressBar
	cfg.Progress = func(done, total int) {
		if bar == nil {
			bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(w), progressbar.OptionSetDescription(scenario),
				progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionClearOnFinish())
		}
		_ = bar.Set(done)
	}
	return func() {
		if bar != nil {
			_ = bar.Finish()
		}
	}
}
