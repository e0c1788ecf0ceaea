package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/eventsd/eventsd/auth"
	"github.com/eventsd/eventsd/bus"
	"github.com/eventsd/eventsd/event"
	"github.com/eventsd/eventsd/routing"
	"github.com/eventsd/eventsd/sse"
)

func env(name string) []string {
	return []string{"EVENTSCTL_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))}
}

func stringFlag(name, value, usage string) *cli.StringFlag {
	return &cli.StringFlag{Name: name, Value: value, Usage: usage, EnvVars: env(name)}
}

func required(f *cli.StringFlag) *cli.StringFlag {
	f.Required = true
	return f
}

// Flags that several commands share; each call returns a new flag, so marking one required does
// not touch the others.
func serverFlag() *cli.StringFlag {
	return stringFlag("server", "", "eventsd base URL, e.g. http://127.0.0.1:8080")
}
func tokenFlag() *cli.StringFlag {
	return stringFlag("token", "", "bearer token (see 'eventsctl token')")
}
func natsURLFlag() *cli.StringFlag {
	return stringFlag("nats-url", "nats://127.0.0.1:4222", "NATS server URL(s), comma-separated")
}
func userFlag() *cli.StringFlag { return stringFlag("user", "", "user id") }
func typeFlag() *cli.StringFlag { return stringFlag("type", "", "event type, e.g. RUN_STARTED") }

func newApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:                 "eventsctl",
		Usage:                "mint tokens, publish events and follow streams of the event plane",
		Writer:               stdout,
		ErrWriter:            stderr,
		EnableBashCompletion: true,
		Commands: []*cli.Command{
			{
				Name:      "token",
				Usage:     "print a signed token for a user",
				UsageText: "eventsctl token --user alice [--role service] [--ttl 24h] [--data-dir ./data | --secret S]",
				Flags: []cli.Flag{
					required(stringFlag("user", "", "user id (the token's sub)")),
					&cli.StringSliceFlag{Name: "role", Usage: "role to grant: admin or service (repeatable)", EnvVars: env("role")},
					&cli.DurationFlag{Name: "ttl", Value: 24 * time.Hour, Usage: "how long the token is valid", EnvVars: env("ttl")},
					stringFlag("data-dir", "./data", "eventsd's data directory, which holds the generated secret"),
					stringFlag("secret", "", "the HS256 secret eventsd was given with --jwt-secret"),
				},
				Action: tokenCmd,
			},
			{
				Name:      "subject",
				Usage:     "print the NATS subject of a channel, user and type",
				UsageText: "eventsctl subject --channel agui --user alice@example.com --type RUN_STARTED",
				Flags: []cli.Flag{
					required(stringFlag("channel", "", "agui, a2a, system or analytics")),
					required(userFlag()), required(typeFlag()),
				},
				Action: subjectCmd,
			},
			{
				Name:  "publish",
				Usage: "publish one event, over NATS or over eventsd's HTTP API; prints the stream sequence",
				UsageText: "eventsctl publish --channel agui --user alice --type RUN_STARTED --data '{\"threadId\":\"t1\",\"runId\":\"r1\"}'\n" +
					"   eventsctl publish --server http://127.0.0.1:8080 --token $TOKEN --channel agui --user alice --type RUN_STARTED --data '{...}'",
				Flags: []cli.Flag{
					required(stringFlag("channel", "", "agui, a2a, system or analytics")),
					required(userFlag()), required(typeFlag()),
					stringFlag("data", "{}", "the event JSON (type and timestamp are filled in when absent)"),
					natsURLFlag(), serverFlag(), tokenFlag(),
				},
				Action: publishCmd,
			},
			{
				Name:      "tail",
				Usage:     "follow a channel over SSE",
				UsageText: "eventsctl tail --server http://127.0.0.1:8080 --token $TOKEN --channel agui [--last-event-id ID] [--json]",
				Flags: []cli.Flag{
					required(serverFlag()), required(tokenFlag()),
					required(stringFlag("channel", "", "agui, a2a, contexts or analytics")),
					stringFlag("last-event-id", "", "resume after this event id"),
					stringFlag("types", "", "only these event types, comma-separated"),
					&cli.BoolFlag{Name: "json", Usage: "one JSON line per event", EnvVars: env("json")},
				},
				Action: tailCmd,
			},
		},
	}
}

func tokenCmd(c *cli.Context) error {
	secret := []byte(c.String("secret"))
	if len(secret) == 0 {
		var err error
		if secret, err = auth.LoadSecret(c.String("data-dir")); err != nil {
			return fmt.Errorf("%w (start eventsd once with --data-dir %s, or pass --secret)", err, c.String("data-dir"))
		}
	}
	tok, err := auth.Mint(secret, c.String("user"), c.StringSlice("role"), c.Duration("ttl"))
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(c.App.Writer, tok)
	return err
}

func subjectCmd(c *cli.Context) error {
	ch, err := routing.ParsePublishChannel(c.String("channel"))
	if err != nil {
		return err
	}
	subject, err := routing.SubjectFor(ch, c.String("user"), c.String("type"))
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(c.App.Writer, subject)
	return err
}

func publishCmd(c *cli.Context) error {
	ch, err := routing.ParsePublishChannel(c.String("channel"))
	if err != nil {
		return err
	}
	ev, err := event.ParseAs([]byte(c.String("data")), c.String("type"))
	if err == nil {
		err = ev.Validate(ch)
	}
	if err != nil {
		return fmt.Errorf("--data: %w", err)
	}
	var seq uint64
	if server := c.String("server"); server != "" {
		seq, err = publishHTTP(c.Context, server, c.String("token"), ch, c.String("user"), ev.Encode())
	} else {
		seq, err = publishNATS(c.Context, c.String("nats-url"), ch, c.String("user"), ev)
	}
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(c.App.Writer, seq)
	return err
}

func publishNATS(ctx context.Context, natsURL string, ch routing.Channel, user string, ev *event.Raw) (uint64, error) {
	subject, err := routing.SubjectFor(ch, user, ev.Type)
	if err != nil {
		return 0, err
	}
	if err := ev.Stamp(ch == routing.AGUI, time.Now()); err != nil {
		return 0, fmt.Errorf("--data: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	b, err := bus.Connect(ctx, bus.Config{URL: natsURL, Name: "eventsctl"})
	if err != nil {
		return 0, fmt.Errorf("%w (is eventsd running? set --nats-url)", err)
	}
	defer b.Close()
	ack, err := b.Publish(ctx, subject, ev.Encode(), "")
	return ack.Seq, err
}

func publishHTTP(ctx context.Context, server, token string, ch routing.Channel, user string, body []byte) (uint64, error) {
	u := strings.TrimRight(server, "/") + "/api/v1/events/" + string(ch) + "?user=" + url.QueryEscape(user)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
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

// httpError turns an error answer from eventsd into an error that quotes it.
func httpError(resp *http.Response) error {
	if resp.StatusCode < 300 {
		return nil
	}
	var e struct{ Error, Field string }
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(body, &e) != nil || e.Error == "" {
		e.Error = strings.TrimSpace(string(body))
	}
	if e.Field != "" {
		return fmt.Errorf("eventsd answered %s: %s (field %s)", resp.Status, e.Error, e.Field)
	}
	return fmt.Errorf("eventsd answered %s: %s", resp.Status, e.Error)
}

func tailCmd(c *cli.Context) error {
	ch, err := routing.ParseStreamChannel(c.String("channel"))
	if err != nil {
		return err
	}
	u := strings.TrimRight(c.String("server"), "/") + "/api/v1/stream/" + string(ch)
	if ch == routing.Analytics {
		u = strings.TrimRight(c.String("server"), "/") + "/api/v1/analytics/stream"
	}
	if t := c.String("types"); t != "" {
		u += "?types=" + url.QueryEscape(t)
	}
	req, err := http.NewRequestWithContext(c.Context, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.String("token"))
	if id := c.String("last-event-id"); id != "" {
		req.Header.Set("Last-Event-ID", id)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := httpError(resp); err != nil {
		return err
	}
	r := sse.NewReader(resp.Body, 8<<20)
	for {
		f, err := r.Next()
		switch {
		case errors.Is(err, io.EOF), c.Context.Err() != nil:
			return nil
		case err != nil:
			return err
		}
		if f.Event == "heartbeat" {
			continue
		}
		if c.Bool("json") {
			_, err = fmt.Fprintln(c.App.Writer, f.Data)
		} else if f.Event != "" {
			_, err = fmt.Fprintf(c.App.Writer, "[%s] %s\n", f.Event, f.Data)
		} else {
			_, err = fmt.Fprintf(c.App.Writer, "%s  %s\n", f.ID, f.Data)
		}
		if err != nil {
			return err
		}
	}
}
