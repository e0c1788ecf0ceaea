package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/eventsd/eventsd/bus"
	"github.com/eventsd/eventsd/client"
	"github.com/eventsd/eventsd/internal/datadir"
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
func dataDirFlag() *cli.StringFlag {
	return stringFlag("data-dir", "./data", "eventsd's data directory, which holds the JWT secret and the NATS password it generated")
}

// natsFlags are the flags natsConfig reads, with --data-dir.
func natsFlags() []cli.Flag {
	return []cli.Flag{
		stringFlag("nats-url", "nats://127.0.0.1:4222", "NATS server URL(s), comma-separated; nats://user:password@host:port carries credentials"),
		stringFlag("nats-user", "", "NATS user (default: "+datadir.NATSUser+" when --nats-password is given)"),
		stringFlag("nats-password", "", "NATS password (default: the embedded server's, read from --data-dir)"),
	}
}

// natsConfig returns the bus settings for --nats-url. The credentials are --nats-user and
// --nats-password when given, else those in the URL, else the embedded server's from the
// password file eventsd generated in --data-dir. A --nats-url named without a --data-dir that
// holds one is a server of the user's own, reached without credentials.
func natsConfig(c *cli.Context, name string) (bus.Config, error) {
	cfg := bus.Config{URL: c.String("nats-url"), Name: name}
	if user, password := c.String("nats-user"), c.String("nats-password"); user != "" || password != "" {
		cfg.Auth = bus.Auth{User: cmp.Or(user, datadir.NATSUser), Password: password}
		return cfg, nil
	}
	for u := range strings.SplitSeq(cfg.URL, ",") {
		if parsed, err := url.Parse(strings.TrimSpace(u)); err == nil && parsed.User != nil {
			return cfg, nil
		}
	}
	password, err := datadir.Read(c.String("data-dir"), datadir.NATSPasswordFile)
	if errors.Is(err, os.ErrNotExist) && c.IsSet("nats-url") && !c.IsSet("data-dir") {
		return cfg, nil // a server of its own, which may take clients without credentials
	}
	if err != nil {
		return cfg, fmt.Errorf("NATS credentials: %w (pass the --data-dir of eventsd, --nats-user and --nats-password, or a --nats-url that holds them)", err)
	}
	cfg.Auth = bus.Auth{User: datadir.NATSUser, Password: password}
	return cfg, nil
}
func userFlag() *cli.StringFlag { return stringFlag("user", "", "user id") }

// io is what the commands read and write; tests give their own.
type stdio struct {
	in       io.Reader
	out, err io.Writer
}

func newApp(in io.Reader, stdout, stderr io.Writer) *cli.App {
	s := stdio{in: in, out: stdout, err: stderr}
	return &cli.App{
		Name:                 "eventsctl",
		Usage:                "mint tokens, publish events, follow streams and inspect the event plane",
		Writer:               stdout,
		ErrWriter:            stderr,
		EnableBashCompletion: true,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Usage: "file of 'name = value' lines giving defaults for any flag", EnvVars: env("config"), Value: defaultConfigPath()},
			stringFlag("ca", "", "CA certificate file (PEM) that signed eventsd's certificate, for an https:// --server with a private CA"),
			&cli.BoolFlag{Name: "h2c", Usage: "speak HTTP/2 without TLS to an http:// --server, an eventsd run with --h2c", EnvVars: env("h2c")},
		},
		Before: func(c *cli.Context) error {
			if err := loadConfig(c.String("config"), c.IsSet("config")); err != nil {
				return err
			}
			return configGlobals(c, "ca", "h2c")
		},
		Commands: []*cli.Command{
			tokenCommand(), subjectCommand(), publishCommand(s), tailCommand(s),
			streamsCommand(), connectionsCommand(), benchCommand(), completionCommand(),
		},
	}
}

func defaultConfigPath() string {
	dir, err := os.UserConfigDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "eventsctl", "config")
}

// loadConfig reads "name = value" lines (# starts a comment) and sets EVENTSCTL_<NAME> for
// each name not already in the environment: flags beat the environment, which beats the file.
// A missing file is an error only when it was named explicitly.
func loadConfig(path string, explicit bool) error {
	if path == "" {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		if !explicit && os.IsNotExist(err) {
			return nil
		}
		return fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for n := 1; s.Scan(); n++ {
		line := strings.TrimSpace(s.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		if !ok {
			return fmt.Errorf("config %s:%d: want 'name = value', e.g. 'server = http://127.0.0.1:8080'", path, n)
		}
		key := env(strings.TrimSpace(name))[0]
		if _, set := os.LookupEnv(key); !set {
			os.Setenv(key, strings.Trim(strings.TrimSpace(value), `"`))
		}
	}
	return s.Err()
}

// configGlobals gives the global flags named the values the config file set: their
// environment variables are read when the global flags are parsed, before the file is.
func configGlobals(c *cli.Context, names ...string) error {
	for _, name := range names {
		if v, ok := os.LookupEnv(env(name)[0]); ok && !c.IsSet(name) {
			if err := c.Set(name, v); err != nil {
				return fmt.Errorf("config: %s = %q: %w", name, v, err)
			}
		}
	}
	return nil
}

// httpClient returns the client of every request to eventsd's HTTP API, as the global --ca
// and --h2c say.
func httpClient(c *cli.Context) (*http.Client, error) {
	hc, err := client.NewHTTPClient(client.TransportConfig{CAFile: c.String("ca"), H2C: c.Bool("h2c")})
	if err != nil {
		return nil, fmt.Errorf("--ca: %w", err)
	}
	return hc, nil
}

// isTerminal reports whether w is a terminal.
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// get sends an authenticated GET to eventsd with hc and decodes the JSON answer into v.
func get(ctx context.Context, hc *http.Client, server, token, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(server, "/")+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%w (is eventsd running at %s?)", err, server)
	}
	defer resp.Body.Close()
	if err := httpError(resp); err != nil {
		return err
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// httpError turns an error answer from eventsd into an error that quotes it.
func httpError(resp *http.Response) error {
	return withHint(client.CheckResponse(resp))
}

// withHint adds to eventsd's 401 answer how to get a token.
func withHint(err error) error {
	var answer *client.HTTPError
	if errors.As(err, &answer) && answer.StatusCode == http.StatusUnauthorized {
		return fmt.Errorf("%w (mint a token with 'eventsctl token --user <id>')", err)
	}
	return err
}
