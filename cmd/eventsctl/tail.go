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

	"github.com/eventsd/eventsd/client"
	"github.com/eventsd/eventsd/routing"
)

func tailCommand(s stdio) *cli.Command {
	return &cli.Command{
		Name:  "tail",
		Usage: "follow a channel over SSE, reconnecting with the last event id when the connection drops",
		UsageText: "eventsctl tail --server http://127.0.0.1:8080 --token $TOKEN --channel agui [--types RUN_STARTED,RUN_FINISHED] [--since 10m | --last-event-id ID] [--json]\n" +
			"   eventsctl tail --server http://127.0.0.1:8080 --token $ADMIN_TOKEN --channel contexts --all-users",
		Flags: []cli.Flag{
			required(serverFlag()), required(tokenFlag()),
			required(stringFlag("channel", "", "agui, a2a, contexts or analytics")),
			stringFlag("last-event-id", "", "resume after this event id"),
			stringFlag("types", "", "only these event types, comma-separated"),
			&cli.DurationFlag{Name: "since", Usage: "start with the events of this long ago, e.g. 10m", EnvVars: env("since")},
			&cli.BoolFlag{Name: "all-users", Usage: "every user's events (admin tokens only)", EnvVars: env("all-users")},
			&cli.BoolFlag{Name: "json", Usage: "one JSON line per event", EnvVars: env("json")},
		},
		Action: func(c *cli.Context) error {
			ch, err := routing.ParseStreamChannel(c.String("channel"))
			if err != nil {
				return err
			}
			if since := c.Duration("since"); since < 0 {
				return fmt.Errorf("--since %s: want a duration of 0 or more (how long ago)", since)
			}
			hc, err := httpClient(c)
			if err != nil {
				return err
			}
			defer hc.CloseIdleConnections()
			t := tailer{
				hc:     hc,
				url:    streamURL(c.String("server"), ch, c.String("types"), c.Duration("since"), c.Bool("all-users")),
				token:  c.String("token"),
				lastID: c.String("last-event-id"),
				out:    s.out, log: s.err,
				json:  c.Bool("json"),
				color: isTerminal(s.out),
			}
			return t.run(c.Context)
		},
	}
}

func streamURL(server string, ch routing.Channel, types string, since time.Duration, allUsers bool) string {
	u := strings.TrimRight(server, "/") + "/api/v1/stream/" + string(ch)
	if ch == routing.Analytics {
		u = strings.TrimRight(server, "/") + "/api/v1/analytics/stream"
	}
	q := url.Values{}
	if types != "" {
		q.Set("types", types)
	}
	if since > 0 {
		q.Set("since", time.Now().Add(-since).UTC().Format(time.RFC3339Nano))
	}
	if allUsers {
		q.Set("all_users", "true")
	}
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

// tailer follows one stream across reconnects.
type tailer struct {
	hc                 *http.Client
	url, token, lastID string
	out, log           io.Writer
	json, color        bool
}

func (t *tailer) run(ctx context.Context) error {
	f, err := client.NewFollower(client.FollowerConfig{URL: t.url, Token: t.token, LastEventID: t.lastID, HTTPClient: t.hc, OnRetry: t.retrying})
	if err != nil {
		return err
	}
	err = f.Follow(ctx, t.print)
	if ctx.Err() != nil {
		return nil
	}
	return withHint(err)
}

// retrying says on the log why the stream is reconnecting, when and from where.
func (t *tailer) retrying(r client.Retry) {
	why := r.Err.Error()
	if errors.Is(r.Err, client.ErrStreamEnded) {
		why = "the server ended the stream"
	}
	fmt.Fprintf(t.log, "eventsctl: connection lost (%s); reconnecting in %s", why, r.Wait)
	if r.LastEventID != "" {
		fmt.Fprintf(t.log, " with Last-Event-ID %s", r.LastEventID)
	}
	fmt.Fprintln(t.log)
}

// print writes one frame: its data with --json, else a line for people.
func (t *tailer) print(f client.Frame) error {
	if t.json {
		_, err := fmt.Fprintln(t.out, f.Data)
		return err
	}
	_, err := fmt.Fprintln(t.out, humanLine(f, t.color))
	return err
}

// humanLine formats a frame as "time  TYPE  payload", the type coloured by protocol on a terminal.
func humanLine(f client.Frame, color bool) string {
	var outer struct {
		Protocol string          `json:"protocol"`
		Event    json.RawMessage `json:"event"`
	}
	data := []byte(f.Data)
	protocol := ""
	if json.Unmarshal(data, &outer) == nil && outer.Protocol != "" {
		protocol, data = outer.Protocol, outer.Event
	}
	var fields map[string]json.RawMessage
	_ = json.Unmarshal(data, &fields)
	var typ string
	_ = json.Unmarshal(fields["type"], &typ)
	if f.Event != "" && typ == "" {
		typ = f.Event
	}
	at := time.Now()
	var ms int64
	var ts string
	if json.Unmarshal(fields["timestamp"], &ms) == nil && ms > 0 {
		at = time.UnixMilli(ms)
	} else if json.Unmarshal(fields["timestamp"], &ts) == nil {
		if parsed, err := time.Parse(time.RFC3339Nano, ts); err == nil {
			at = parsed
		}
	}
	delete(fields, "type")
	delete(fields, "timestamp")
	payload, _ := json.Marshal(fields)
	short := string(payload)
	if len(short) > 120 {
		short = short[:117] + "..."
	}
	label := typ
	if protocol != "" {
		label = protocol + " " + typ
	}
	if color {
		label = colorOf(protocol, typ) + label + "\x1b[0m"
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s  %-28s  %s", at.Local().Format("15:04:05.000"), label, short)
	return b.String()
}

func colorOf(protocol, typ string) string {
	switch {
	case strings.Contains(typ, "ERROR") || strings.Contains(typ, "FAILED"):
		return "\x1b[31m" // red
	case protocol == "system" || typ == "resync":
		return "\x1b[33m" // yellow
	case protocol == "a2a":
		return "\x1b[35m" // magenta
	}
	return "\x1b[36m" // cyan
}
