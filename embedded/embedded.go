// Package embedded runs a JetStream-enabled nats-server inside the process, so that eventsd works
// on one machine with nothing else installed, and NATS-native producers can still reach it with
// its one user's password.
package embedded

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// ErrNotReady is returned when the server does not accept connections in time.
var ErrNotReady = errors.New("embedded: server not ready")

// ErrNoCredentials is returned by Start without a user and password: the server holds every
// user's events, so it never runs open.
var ErrNoCredentials = errors.New("embedded: no user and password")

// Options configure the embedded server.
type Options struct {
	// Host is the address the server listens on for NATS clients; default 127.0.0.1.
	Host string
	// Port is the client port; 0 picks a free one.
	Port int
	// StoreDir is where JetStream keeps its files.
	StoreDir string
	// User and Password are the credentials every client must present; both are required.
	User, Password string
	// ReadyTimeout bounds the wait for the server to accept connections; default 10s.
	ReadyTimeout time.Duration
	// MaxPayload is the largest message the server takes; default DefaultMaxPayload.
	MaxPayload int32
}

// DefaultMaxPayload is the embedded server's largest message: 8 MiB, NATS's recommended
// ceiling, so that a long AG-UI conversation fits one run request. A NATS server's own default
// is 1 MiB.
const DefaultMaxPayload = 8 << 20

// Server is a running embedded nats-server.
type Server struct {
	ns             *server.Server
	user, password string
}

// Start starts the server and returns once it accepts client connections.
func Start(o Options) (*Server, error) {
	if o.StoreDir == "" {
		return nil, errors.New("embedded: no store directory")
	}
	if o.User == "" || o.Password == "" {
		return nil, ErrNoCredentials
	}
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	port := o.Port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 10 * time.Second
	}
	if o.MaxPayload <= 0 {
		o.MaxPayload = DefaultMaxPayload
	}
	ns, err := server.NewServer(&server.Options{
		ServerName:            "eventsd-embedded",
		Host:                  o.Host,
		Port:                  port,
		JetStream:             true,
		StoreDir:              o.StoreDir,
		Username:              o.User,
		Password:              o.Password,
		NoLog:                 true,
		NoSigs:                true,
		DisableShortFirstPing: true,
		MaxPayload:            o.MaxPayload,
	})
	if err != nil {
		return nil, fmt.Errorf("embedded: %w", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(o.ReadyTimeout) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("%w after %s (is %s:%d free?)", ErrNotReady, o.ReadyTimeout, o.Host, o.Port)
	}
	return &Server{ns: ns, user: o.User, password: o.Password}, nil
}

// ClientURL is the nats:// URL clients connect to, without credentials: safe to print.
func (s *Server) ClientURL() string {
	return s.ns.ClientURL()
}

// AuthURL is ClientURL with the user and password in it, nats://<user>:<password>@host:port,
// for clients that take only a URL. It holds the password: do not print or log it.
func (s *Server) AuthURL() string {
	u := url.URL{Scheme: "nats", User: url.UserPassword(s.user, s.password), Host: strings.TrimPrefix(s.ns.ClientURL(), "nats://")}
	return u.String()
}

// Port is the port it listens on for clients: the one it picked when Options.Port was 0, for
// starting it again on the same address.
func (s *Server) Port() int {
	return s.ns.Addr().(*net.TCPAddr).Port
}

// Shutdown stops the server and waits until it has stopped.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}
