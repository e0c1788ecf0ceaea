package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"

	"github.com/eventsd/eventsd/bus"
	"github.com/eventsd/eventsd/event"
	"github.com/eventsd/eventsd/routing"
)

func publishCommand(s stdio) *cli.Command {
	return &cli.Command{
		Name:  "publish",
		Usage: "publish events, over NATS or over eventsd's HTTP API; prints each stream sequence",
		UsageText: "eventsctl publish --channel agui --user alice --type RUN_STARTED --data '{\"threadId\":\"t1\",\"runId\":\"r1\"}'\n" +
			"   eventsctl publish --server http://127.0.0.1:8080 --token $TOKEN --channel a2a --user alice --data - < events.jsonl",
		Flags: append([]cli.Flag{
			required(stringFlag("channel", "", "agui, a2a, system or analytics")),
			required(userFlag()),
			stringFlag("type", "", "event type, e.g. RUN_STARTED (else the event's own \"type\")"),
			stringFlag("data", "{}", "the event JSON, or - to read one event per line from standard input"),
			stringFlag("thread", "", "agui: the AG-UI thread the events belong to (their top-level threadId)"),
			stringFlag("run", "", "agui: the run of the thread they belong to (their top-level runId)"),
			serverFlag(), tokenFlag(), dataDirFlag(),
		}, natsFlags()...),
		Action: func(c *cli.Context) error {
			ch, err := routing.ParsePublishChannel(c.String("channel"))
			if err != nil {
				return err
			}
			if ch != routing.AGUI && (c.String("thread") != "" || c.String("run") != "") {
				return fmt.Errorf("--thread and --run are for the agui channel, not %s", ch)
			}
			send, done, err := newSender(c, ch)
			if err != nil {
				return err
			}
			defer done()
			if c.String("data") != "-" {
				seq, err := publishOne(c, send, ch, []byte(c.String("data")))
				if err != nil {
					return err
				}
				_, err = fmt.Fprintln(c.App.Writer, seq)
				return err
			}
			return publishLines(c, s, send, ch)
		},
	}
}

// sender stores one encoded event and returns its sequence.
type sender func(ctx context.Context, ev *event.Raw) (uint64, error)

// newSender connects once, over HTTP with --server, else over NATS.
func newSender(c *cli.Context, ch routing.Channel) (sender, func(), error) {
	user := c.String("user")
	if server := c.String("server"); server != "" {
		token := c.String("token")
		if token == "" {
			return nil, nil, fmt.Errorf("--server needs --token (mint one with 'eventsctl token --user %s')", user)
		}
		hc, err := httpClient(c)
		if err != nil {
			return nil, nil, err
		}
		u := strings.TrimRight(server, "/") + "/api/v1/events/" + string(ch) + "?user=" + url.QueryEscape(user)
		return func(ctx context.Context, ev *event.Raw) (uint64, error) {
			return publishHTTP(ctx, hc, u, token, ev.Encode())
		}, hc.CloseIdleConnections, nil
	}
	cfg, err := natsConfig(c, "eventsctl")
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(c.Context, 10*time.Second)
	defer cancel()
	b, err := bus.Connect(ctx, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("%w (is eventsd running? set --nats-url, or --server to publish over HTTP)", err)
	}
	return func(ctx context.Context, ev *event.Raw) (uint64, error) {
		subject, err := routing.SubjectFor(ch, user, ev.Type)
		if err != nil {
			return 0, err
		}
		if err := ev.Stamp(ch == routing.AGUI, time.Now()); err != nil {
			return 0, err
		}
		ack, err := b.Publish(ctx, subject, ev.Encode(), "")
		return ack.Seq, err
	}, func() { _ = b.Close() }, nil
}

// publishOne checks one event against the catalog, attributes it to --thread and --run, and
// sends it.
func publishOne(c *cli.Context, send sender, ch routing.Channel, data []byte) (uint64, error) {
	ev, err := event.ParseAs(data, c.String("type"))
	if err == nil && ch == routing.AGUI {
		err = ev.Attribute(c.String("thread"), c.String("run"))
	}
	if err == nil {
		err = ev.Validate(ch)
	}
	if err != nil {
		return 0, fmt.Errorf("invalid event: %w", err)
	}
	return send(c.Context, ev)
}

// publishLines publishes one event per line of standard input, with a progress bar on a
// terminal. It stops at the first failure, naming its line.
func publishLines(c *cli.Context, s stdio, send sender, ch routing.Channel) error {
	var bar *progressbar.ProgressBar
	if isTerminal(s.err) {
		bar = progressbar.NewOptions(-1, progressbar.OptionSetWriter(s.err), progressbar.OptionSetDescription("publishing"),
			progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionClearOnFinish())
		defer bar.Finish()
	}
	lines := bufio.NewScanner(s.in)
	lines.Buffer(make([]byte, 0, 64<<10), 8<<20)
	n := 0
	for lineNo := 1; lines.Scan(); lineNo++ {
		line := bytes.TrimSpace(lines.Bytes())
		if len(line) == 0 {
			continue
		}
		seq, err := publishOne(c, send, ch, line)
		if err != nil {
			return fmt.Errorf("line %d: %w (%d published before it)", lineNo, err, n)
		}
		n++
		if bar != nil {
			_ = bar.Add(1)
		} else if _, err := fmt.Fprintln(c.App.Writer, seq); err != nil {
			return err
		}
	}
	if err := lines.Err(); err != nil {
		return fmt.Errorf("reading standard input: %w", err)
	}
	if bar != nil {
		fmt.Fprintf(s.err, "published %d events\n", n)
	}
	return nil
}

// publishHTTP posts one event to the ingress URL u with hc and returns its sequence.
func publishHTTP(ctx context.Context, hc *http.Client, u, token string, body []byte) (uint64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if err := httpError(resp); err != nil {
		return 0, err
	}
	var ack struct{ Seq uint64 }
	if err := json.NewDecoder(resp.Body).Decode(&ack); err != nil {
		return 0, fmt.Errorf("reading the answer: %w", err)
	}
	return ack.Seq, nil
}
