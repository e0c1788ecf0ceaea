package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/eventsd/eventsd/auth"
	"github.com/eventsd/eventsd/bus"
	"github.com/eventsd/eventsd/routing"
)

func tokenCommand() *cli.Command {
	return &cli.Command{
		Name:      "token",
		Usage:     "print a signed token for a user",
		UsageText: "eventsctl token --user alice [--role service] [--ttl 24h] [--data-dir ./data | --secret S]",
		Flags: append([]cli.Flag{
			required(stringFlag("user", "", "user id (the token's sub)")),
			&cli.StringSliceFlag{Name: "role", Usage: "role to grant: admin or service (repeatable)", EnvVars: env("role")},
			&cli.DurationFlag{Name: "ttl", Value: 24 * time.Hour, Usage: "how long the token is valid", EnvVars: env("ttl")},
		}, secretFlags()...),
		Action: func(c *cli.Context) error {
			secret, err := secretOf(c)
			if err != nil {
				return err
			}
			tok, err := auth.Mint(secret, c.String("user"), c.StringSlice("role"), c.Duration("ttl"))
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(c.App.Writer, tok)
			return err
		},
	}
}

// secretFlags are the flags secretOf reads.
func secretFlags() []cli.Flag {
	return []cli.Flag{
		dataDirFlag(),
		stringFlag("secret", "", "the HS256 secret eventsd was given with --jwt-secret"),
	}
}

// secretOf returns --secret, or the secret eventsd generated in --data-dir.
func secretOf(c *cli.Context) ([]byte, error) {
	if s := c.String("secret"); s != "" {
		return []byte(s), nil
	}
	secret, err := auth.LoadSecret(c.String("data-dir"))
	if err != nil {
		return nil, fmt.Errorf("%w (pass the --data-dir of eventsd, or --secret)", err)
	}
	return secret, nil
}

func subjectCommand() *cli.Command {
	return &cli.Command{
		Name:      "subject",
		Usage:     "print the NATS subject of a channel, user and type",
		UsageText: "eventsctl subject --channel agui --user alice@example.com --type RUN_STARTED",
		Flags: []cli.Flag{
			required(stringFlag("channel", "", "agui, a2a, system or analytics")),
			required(userFlag()), required(stringFlag("type", "", "event type, e.g. RUN_STARTED")),
		},
		Action: func(c *cli.Context) error {
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
		},
	}
}

func streamsCommand() *cli.Command {
	return &cli.Command{
		Name:      "streams",
		Usage:     "show the event plane's streams: subjects, messages, bytes, sequences, consumers, retention",
		UsageText: "eventsctl streams [--nats-url nats://127.0.0.1:4222] [--data-dir ./data]",
		Flags:     append(natsFlags(), dataDirFlag()),
		Action: func(c *cli.Context) error {
			cfg, err := natsConfig(c, "eventsctl")
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(c.Context, 10*time.Second)
			defer cancel()
			b, err := bus.Connect(ctx, cfg)
			if err != nil {
				return fmt.Errorf("%w (is eventsd running? set --nats-url)", err)
			}
			defer b.Close()
			w := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "STREAM\tSUBJECTS\tMESSAGES\tBYTES\tFIRST\tLAST\tCONSUMERS\tRETENTION")
			for _, spec := range routing.Streams(routing.DefaultStreamOptions) {
				st, err := b.Stream(ctx, spec.Name)
				if err != nil {
					return fmt.Errorf("%w (has eventsd started against this server?)", err)
				}
				fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\n", st.Name, strings.Join(st.Subjects, ","),
					st.Msgs, st.Bytes, st.FirstSeq, st.LastSeq, st.Consumers, st.MaxAge)
			}
			return w.Flush()
		},
	}
}

func connectionsCommand() *cli.Command {
	return &cli.Command{
		Name:      "connections",
		Usage:     "show live SSE connections: total and per user with an admin token, your own otherwise",
		UsageText: "eventsctl connections --server http://127.0.0.1:8080 --token $TOKEN",
		Flags:     []cli.Flag{required(serverFlag()), required(tokenFlag())},
		Action: func(c *cli.Context) error {
			var ans struct {
				Total *int           `json:"total"`
				Users map[string]int `json:"users"`
				User  string         `json:"user"`
				Count int            `json:"count"`
			}
			hc, err := httpClient(c)
			if err != nil {
				return err
			}
			defer hc.CloseIdleConnections()
			if err := get(c.Context, hc, c.String("server"), c.String("token"), "/api/v1/connections", &ans); err != nil {
				return err
			}
			if ans.Total == nil {
				_, err := fmt.Fprintf(c.App.Writer, "%s\t%d\n", ans.User, ans.Count)
				return err
			}
			users := make([]string, 0, len(ans.Users))
			for u := range ans.Users {
				users = append(users, u)
			}
			sort.Strings(users)
			w := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "USER\tCONNECTIONS")
			for _, u := range users {
				fmt.Fprintf(w, "%s\t%d\n", u, ans.Users[u])
			}
			fmt.Fprintf(w, "total\t%d\n", *ans.Total)
			return w.Flush()
		},
	}
}

const bashCompletion = `# eventsctl bash completion: source <(eventsctl completion bash)
_eventsctl() {
	local cur opts
	COMPREPLY=()
	cur="${COMP_WORDS[COMP_CWORD]}"
	if [[ "$cur" == "-"* ]]; then
		opts=$("${COMP_WORDS[@]:0:$COMP_CWORD}" "$cur" --generate-bash-completion 2>/dev/null)
	else
		opts=$("${COMP_WORDS[@]:0:$COMP_CWORD}" --generate-bash-completion 2>/dev/null)
	fi
	COMPREPLY=($(compgen -W "${opts}" -- "${cur}"))
}
complete -o bashdefault -o default -F _eventsctl eventsctl
`

func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print the shell completion script",
		UsageText: "source <(eventsctl completion bash)",
		Action: func(c *cli.Context) error {
			if sh := c.Args().First(); sh != "bash" && sh != "" {
				return fmt.Errorf("completion for %q: only bash is supported (zsh: autoload bashcompinit && bashcompinit first)", sh)
			}
			_, err := fmt.Fprint(c.App.Writer, bashCompletion)
			return err
		},
	}
}
